#pragma once
// One runner, many algorithms. An Algorithm is what changes between
// `ml3 train` with PPO, REINFORCE or a learned loss and `ml3 meta-train` of a
// policy loss or of the sine testbed: how one iteration works, what state a
// checkpoint holds and what the summary says. Everything around it -- the run
// folder, --resume, --stop-after, metrics files, checkpoint cadence, the
// NaN guard, the progress line, summary.json and the plot -- is the runner's
// (src/run/runner.cpp), which never asks which algorithm it runs. Algorithms are
// chosen by the config's `algorithm` key through one registry
// (src/run/registry.cpp). LibTorch-free.
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "core/archive.h"
#include "core/config.h"
#include "core/error.h"

namespace ml3 {

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  // "train reacher ppo": the progress line's label.
  virtual std::string label() const = 0;
  virtual int iterations() const = 0;
  virtual int checkpoint_every() const = 0;
  // Metrics columns in order ("iteration" and "wall_seconds" included; the
  // runner fills wall_seconds).
  virtual std::vector<std::string> columns() const = 0;
  // One iteration (1-based); returns its metrics row. Throws NonFiniteError
  // (training stops, nothing of the iteration is kept) or ml3::Error.
  virtual nlohmann::json iterate(int iteration) = 0;
  // Evaluation every eval_every() iterations and after the last one (0: none);
  // its values are merged into that iteration's row.
  virtual int eval_every() const { return 0; }
  virtual nlohmann::json evaluate() { return nlohmann::json::object(); }
  // The text after the label in the progress line, from the last row.
  virtual std::string progress_text(const nlohmann::json& row) const = 0;
  // Complete state after an iteration (resume gives the same numbers as an
  // uninterrupted run).
  virtual void save(Archive& a) const = 0;
  virtual void load(const Archive& a) = 0;
  // Artifacts written with every checkpoint (e.g. loss.ml3), atomically.
  virtual void write_artifacts(const std::string& run_dir, int iteration) const {
    (void)run_dir, (void)iteration;
  }
  // summary.json after the last iteration (the runner adds wall_seconds,
  // iterations and plot).
  virtual nlohmann::json summary(double wall_seconds) = 0;
  // Plot of metrics.csv: kind for tools/plot.py ("curve", "meta"), file name, title.
  struct Plot {
    std::string kind, file, title;
  };
  virtual Plot plot() const = 0;
  // Whether its iterations are spread over the ranks of a distributed run
  // (src/run/dist.h); the runner refuses the others when there are several ranks.
  virtual bool spreads_over_ranks() const { return false; }
};

// ---- the registry ---------------------------------------------------------------
namespace dist {
class Comm;  // src/run/dist.h
}
class PolicyUpdate;  // src/policy/trainer.h (LibTorch)
struct PolicyModels;

enum class Command { Train, MetaTrain };

// A policy-training algorithm (`ml3 train`): an update rule that the one
// PolicyTrainer runs.
struct PolicyRuleHooks {
  // The update rule (PPO, REINFORCE, learned loss ...); required.
  std::unique_ptr<PolicyUpdate> (*make_update)(const Config& c, const std::string& prefix,
                                               const PolicyModels& models) = nullptr;
  // Training with an artifact of meta-training (a learned loss): binds the
  // artifact file and the meta-training settings it needs into the
  // algorithm's config (`meta` is the meta-training config). Such a rule is
  // the method under test in meta-test; the others are its baselines.
  void (*bind_artifact)(Config& c, const std::string& artifact, const Config& meta) = nullptr;
  // Checks the rule's input files (a loss file, a demonstrations file)
  // against the config's environment before any work, and describes them
  // for reports ({"file", "shaped", ...}); null: none.
  nlohmann::json (*inputs)(const Config& c) = nullptr;
  // A baseline of `ml3 meta-test` (baselines.<name>.*). Rules that need more
  // than the environment (bc: a demonstrations file) are compared in
  // `ml3 compare` only.
  bool meta_test_baseline = true;
  // The config key of the rule's learning rate (what `ml3 compare` sweeps;
  // empty: none).
  std::string lr_key;
};

// A meta-learning problem (`ml3 meta-train`): a whole Algorithm, and the
// tools for the artifact it produces.
struct MetaProblemHooks {
  // The algorithm, on the process group `comm` (one process: world 1); required.
  std::unique_ptr<Algorithm> (*make)(const Config& c, const std::string& run_dir, dist::Comm& comm) = nullptr;
  // `ml3 meta-test` of the artifact (null: none).
  std::string (*meta_test)(const std::string& artifact, const Config& c, const std::string& split,
                           const std::string& out_dir, bool force, bool quiet) = nullptr;
  // Whether meta_test spreads its runs over the ranks of a distributed run
  // (the others refuse to run on several ranks).
  bool meta_test_spreads_over_ranks = false;
  // The human-readable form of meta_test's JSON (null: print the JSON).
  std::string (*meta_test_table)(const std::string& json) = nullptr;
  // `ml3 landscape` of the artifact, `points` samples per axis: JSON for
  // tools/plot.py's `landscape` mode ({"one_d": [...], "two_d": [...]}); null:
  // the problem has none.
  std::string (*landscape)(const std::string& artifact, const Config& c, int points) = nullptr;
};

struct AlgorithmEntry {
  std::string name;  // the config's `algorithm` value
  Command command;   // Train: a PolicyRuleHooks; MetaTrain: a MetaProblemHooks
  std::string description;
  bool needs_env = true;  // env.name and env.* keys
  RunSection run_defaults;  // defaults of seed, threads, torch_threads
  // The algorithm's own config sections. Policy-training algorithms declare
  // the sections of their update rule under `prefix` (the runner's train.*,
  // policy.* and value.* are common to all of them; meta-test puts baselines
  // under baselines.<name>.); meta-learning problems declare everything.
  void (*declare)(Schema& s, const std::string& prefix) = nullptr;
  // Extra checks of a loaded config (e.g. combinations of keys); `source`
  // names the file for the message.
  void (*check)(const Config& c, const std::string& source) = nullptr;

  // The hooks of its kind: a policy-training rule or a meta-learning
  // problem, never both (src/run/registry.cpp checks them against `command`).
  std::variant<PolicyRuleHooks, MetaProblemHooks> hooks;
  bool is_rule() const { return std::holds_alternative<PolicyRuleHooks>(hooks); }
  // The hooks, for an entry of that kind (throws ml3::Error otherwise).
  const PolicyRuleHooks& rule() const;
  const MetaProblemHooks& problem() const;
  // Registration: makes the entry that kind and returns its hooks to fill in.
  PolicyRuleHooks& define_rule() { return std::get_if<PolicyRuleHooks>(&hooks) ? std::get<PolicyRuleHooks>(hooks) : hooks.emplace<PolicyRuleHooks>(); }
  MetaProblemHooks& define_problem() { return std::get_if<MetaProblemHooks>(&hooks) ? std::get<MetaProblemHooks>(hooks) : hooks.emplace<MetaProblemHooks>(); }
};

const std::vector<AlgorithmEntry>& algorithm_registry();
// Throws ml3::Error listing the algorithms of `command` (with "did you mean").
const AlgorithmEntry& find_algorithm(const std::string& name);
const char* command_name(Command c);

// The full schema of an algorithm (top-level keys, env.* for `env_name`, and
// its sections).
Schema algorithm_schema(const AlgorithmEntry& entry, const std::string& env_name);
// Loads a config: `algorithm` (default: ppo for train, ml3 for meta-train) and
// env.name from the file or the overrides pick the schema; then the file,
// then the overrides.
Config load_config(Command command, const std::string& path, const std::vector<std::string>& overrides);
// The algorithm entry of a loaded config.
const AlgorithmEntry& entry_of(const Config& c);
// Builds the algorithm of a resolved config (policy training or meta-learning)
// on the process group `comm`.
std::unique_ptr<Algorithm> make_algorithm(const Config& c, const std::string& run_dir, dist::Comm& comm);

// Policy training (src/policy/trainer.cpp): the sections every policy-training
// algorithm shares (train.*, policy.*, value.*; debug.*), and the trainer that
// runs an entry's update rule.
void declare_policy_run(Schema& s);
void declare_policy_debug(Schema& s);
std::unique_ptr<Algorithm> make_policy_trainer(const Config& c, const AlgorithmEntry& entry);

// ---- the runner ------------------------------------------------------------------
struct RunArgs {
  Command command = Command::Train;
  std::string config_path;
  std::vector<std::string> overrides;
  std::string out_dir;     // default runs/<config file stem>
  std::string resume_dir;  // continue this run from checkpoints/last.ckpt
  bool force = false;      // replace an existing run folder
  int stop_after = -1;     // stop (with a checkpoint) after this iteration
  bool quiet = false;      // no progress line
};
struct RunResult {
  std::string run_dir;
  std::string summary;  // summary.json's text ("" when stopped early)
};
RunResult run(const RunArgs& args);
// The checkpoint the runner writes after iteration `iteration`: metadata
// (format, iteration, wall_seconds, algorithm, the resolved config as YAML,
// env) and the algorithm's state.
Archive checkpoint_archive(const Algorithm& algo, const Config& cfg, int iteration, double wall_seconds);

// ---- ml3 landscape ----------------------------------------------------------------
struct LandscapeArgs {
  std::string loss_file, config_path, out_dir;  // out_dir default runs/<config stem>_landscape
  std::vector<std::string> overrides;
  int points = 61;
  bool force = false;
};
// Writes landscape.json, landscape_1d.csv, landscape_2d.csv and landscape.png
// (atomically) into the output folder; returns a JSON summary (files, the
// minima of each curve and surface).
std::string run_landscape(const LandscapeArgs& args);

// ---- ml3 eval ------------------------------------------------------------------
// Deterministic evaluation of a policy checkpoint of `ml3 train`.
struct EvalArgs {
  std::string run_dir, checkpoint, split = "test";
  int episodes = 100, threads = 0;  // threads 0: the run's config
  uint64_t seed = 0;
  std::vector<std::string> env_overrides;  // env.key=value (e.g. another model)
};
// Returns a JSON object (success_rate, final_distance_mean, return_mean, ...).
std::string run_eval(const EvalArgs& args);

}  // namespace ml3
