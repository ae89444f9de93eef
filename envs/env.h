#pragma once
// Goal-conditioned MuJoCo environments with a Gymnasium-shaped interface.
//
//   Env env = make_env("reacher", config);
//   auto obs = env->reset(seed, task);
//   StepResult r = env->step(action);   // obs, reward, terminated, truncated, info
//
// Environments never terminate early; episodes are truncated at
// spec().episode_steps (a time limit, not a terminal state: learners bootstrap
// the value of the truncated state, see compute_gae in src/policy/pg.cpp).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/config.h"

namespace ml3 {

struct EnvSpec {
  std::string name;
  int obs_dim = 0;
  std::vector<std::string> obs_names;  // what each observation value is (obs_dim names)
  int act_dim = 0;
  int goal_dim = 2;
  std::vector<double> act_low, act_high;
  int episode_steps = 0;
  int frame_skip = 0;
  double timestep = 0.0;           // MuJoCo timestep; control period = timestep * frame_skip
  double success_threshold = 0.0;  // success: distance() < threshold at the end of the episode
  std::string distance_meaning;    // what distance() measures, e.g. "fingertip to goal"
  std::string model_file;          // MJCF the environment was built from
};

// A task is a goal position: x, y in the table/arena plane (goal_dim 2), or a
// point in space (goal_dim 3, e.g. a 3-D reach or a place target).
struct Task {
  std::vector<double> goal;
};

enum class Split { Train, Test, Ood };
Split parse_split(const std::string& name);  // "train" | "test" | "ood"
const char* split_name(Split split);

struct StepInfo {
  double distance = 0.0;  // see EnvSpec::distance_meaning
  bool success = false;   // distance < success_threshold
};

struct StepResult {
  std::vector<double> obs;
  double reward = 0.0;
  bool terminated = false;
  bool truncated = false;
  StepInfo info;
};

// Complete simulation state: restoring it and replaying the same actions
// reproduces a rollout bit for bit.
struct EnvState {
  std::vector<double> qpos, qvel, act, qacc_warmstart, goal;
  double time = 0.0;
  int step = 0;
};

// A region of goal positions: an annulus sector around `center` in x-y; for
// environments with goal_dim 3, times the height interval [z_min, z_max].
struct GoalRegion {
  double center[2] = {0.0, 0.0};
  double r_min = 0.0, r_max = 1.0;
  double theta_min = 0.0, theta_max = 6.283185307179586;
  double z_min = 0.0, z_max = 0.0;
};

class Env {
 public:
  virtual ~Env() = default;
  virtual const EnvSpec& spec() const = 0;

  // Gymnasium-shaped API (allocates the result vectors).
  std::vector<double> reset(uint64_t seed, const Task& task);
  StepResult step(const std::vector<double>& action);

  // Allocation-free API used by the batched environment and learners.
  // `obs` must hold spec().obs_dim values.
  virtual void reset(uint64_t seed, const Task& task, double* obs) = 0;
  // Actions outside [act_low, act_high] are clipped (as MuJoCo's ctrlrange
  // does); a non-finite action raises ml3::Error.
  virtual void step(const double* action, double* obs, double* reward, bool* terminated,
                    bool* truncated, StepInfo* info) = 0;

  virtual EnvState get_state() const = 0;
  virtual void set_state(const EnvState& state) = 0;
  virtual void observe(double* obs) const = 0;
  virtual double distance() const = 0;
  virtual const std::vector<double>& goal() const = 0;

  // Scripted expert: the action it would take in the current state.
  virtual void expert_action(double* action) const = 0;
  // Goal region of a split; tasks are sampled from it (see sample_tasks).
  virtual GoalRegion goal_region(Split split) const = 0;
  // Throws ml3::Error when the goal is outside the reachable workspace.
  virtual void check_task(const Task& task) const = 0;
};

// Reproducible goals: task i of (split, seed) is the same whatever n is.
std::vector<Task> sample_tasks(const Env& env, Split split, uint64_t seed, int n);
// Deterministic evaluation (ml3 eval, the runner's evaluations, ml3-deploy,
// the model-based reacher): episode i of (split, seed) runs goal i of
// sample_tasks(split, seed) from the initial state of seed
// mix_seed(eval_reset_stream(seed), i). The one owner of that rule.
constexpr uint64_t kEvalStream = 0xE7A1;
inline uint64_t eval_reset_stream(uint64_t seed) { return mix_seed(seed, kEvalStream); }

// ---- registry (envs/registry.cpp) ---------------------------------------------
struct EnvEntry {
  std::string name;
  std::string description;
  Schema schema;  // every option with its default (keys without the "env." prefix)
  std::unique_ptr<Env> (*make)(const Config& options);
};
const std::vector<EnvEntry>& env_registry();
// The entry of environment class E (built from its options; static schema()).
template <class E>
EnvEntry env_entry(const char* name, const char* description) {
  return {name, description, E::schema(),
          [](const Config& options) -> std::unique_ptr<Env> { return std::make_unique<E>(options); }};
}
const EnvEntry& find_env(const std::string& name);  // throws with the list of names
// Builds an environment from options (a Config with the entry's schema).
std::unique_ptr<Env> make_env(const std::string& name, const Config& options);
// Builds an environment with its defaults plus `key=value` overrides.
std::unique_ptr<Env> make_env(const std::string& name, const std::vector<std::string>& overrides = {});
// Options of environment `name`: its defaults, then the env: section of the
// YAML file `config_file` (if not empty), then `env.key=value` overrides.
Config env_options(const std::string& name, const std::string& config_file,
                   const std::vector<std::string>& overrides);

}  // namespace ml3
