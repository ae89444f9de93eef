#pragma once
// Goal demonstrations: episodes of the scripted expert (or a user's own),
// stored in a versioned, checksummed ml3 archive of kind "demos" (layout byte
// by byte: docs/demos.md).
//
//   Demonstrations d = record_demos("reacher", options, Split::Train, 100, 0, 2);
//   save_demos("reacher.demos", d);
//   Demonstrations back = load_demos("reacher.demos", &env->spec());  // validated
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "envs/env.h"

namespace ml3 {

constexpr int kDemosFormatVersion = 1;

struct DemoEpisode {
  std::vector<float> goal;          // goal_dim
  std::vector<float> observations;  // episode_steps x obs_dim, row-major: the observation each action was taken in
  std::vector<float> actions;       // episode_steps x act_dim: as sent to the environment, within [act_low, act_high]
  std::vector<float> rewards;       // episode_steps: reward of each step
  float final_distance = 0;         // EnvSpec::distance_meaning at the end of the episode
  bool success = false;             // final_distance < the environment's success threshold
  // Optional (empty in files recorded before ml3 stored them; all episodes
  // have them or none): the observation after the last step (obs_dim; Minari
  // episodes hold episode_steps + 1 observations), and with action_noise > 0
  // the actions the environment executed (episode_steps x act_dim).
  std::vector<float> final_observation;
  std::vector<float> executed_actions;
};

struct Demonstrations {
  std::string env;  // environment name (EnvSpec::name)
  int obs_dim = 0, act_dim = 0, goal_dim = 0, episode_steps = 0;
  std::vector<double> act_low, act_high;  // act_dim each
  Split split = Split::Train;             // the split the goals were drawn from
  uint64_t seed = 0;                      // seed of goals and initial states
  // Standard deviation of the noise added to the executed actions while
  // recording (0: the expert's own episodes). With noise, `actions` are the
  // expert's unperturbed actions in the visited states (labels), not the
  // executed ones, and rewards/success are those of the perturbed episodes.
  double action_noise = 0;
  // Informational: the environment's resolved options (key -> value) the
  // episodes were recorded with; not validated.
  std::map<std::string, std::string> env_options;
  // False for episodes imported without their outcome (a Minari dataset
  // without ml3's episode attributes): final_distance and success are then 0
  // and mean nothing.
  bool outcomes_known = true;
  std::vector<DemoEpisode> episodes;
};

struct DemoSummary {
  int episodes = 0;
  double success_rate = 0, final_distance_mean = 0;
};
DemoSummary summarize(const Demonstrations& demos);

// The scripted expert on goals 0..episodes-1 of (split, seed), the same
// episodes as run_expert (with action_noise: perturbed as run_expert_episodes
// describes); bit-identical for any thread count.
Demonstrations record_demos(const std::string& env_name, const Config& env_options, Split split, int episodes,
                            uint64_t seed, int threads, double action_noise = 0.0);

// Validates (as load_demos does) and writes atomically (temp file + rename).
void save_demos(const std::string& path, const Demonstrations& demos);

// Reads and validates: kind and format version, every metadata key and blob
// with the types and shapes the metadata promises, finite values, actions
// within the declared bounds (tolerance 1e-6 relative) and, when `expect` is
// given, the environment name and observation / action / goal sizes. Every
// failure is one ml3::Error naming the file, the entry and what was expected.
Demonstrations load_demos(const std::string& path, const EnvSpec* expect = nullptr);

}  // namespace ml3
