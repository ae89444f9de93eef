#pragma once
// `ml3 train` / `ml3 eval`: the policy trainer with run folders, metrics,
// checkpoints (atomic, checksummed), resume, progress and plots. This header
// is LibTorch-free so the CLI compiles fast.
#include <string>
#include <vector>

#include "core/config.h"

namespace ml3 {

// Schema pieces shared with meta-training: policy.* and value.* networks;
// optim.*, pg.*, ppo.* of the policy-gradient learners.
void add_policy_keys(Schema& s);
void add_pg_keys(Schema& s);

// The full training schema for an environment (env.* keys depend on it).
Schema train_schema(const std::string& env_name);
// Loads a config whose schema depends on the environment: env.name (from the
// file or the overrides, required) picks schema(env), then file, overrides.
Config load_env_config(const std::string& path, const std::vector<std::string>& overrides,
                       Schema (*schema)(const std::string& env_name));
// Loads a training config: env.name from the file/overrides picks the schema.
Config load_train_config(const std::string& path, const std::vector<std::string>& overrides);

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string out_dir;     // default runs/<config file stem>
  std::string resume_dir;  // continue this run
  bool force = false;      // replace an existing run folder
  int stop_after = -1;     // stop (with a checkpoint) after this iteration
  bool quiet = false;      // no progress line
};

struct TrainSummary {
  std::string run_dir;
  std::string json;  // summary.json contents
};
TrainSummary run_train(const TrainArgs& args);

struct EvalArgs {
  std::string run_dir, checkpoint, split = "test";
  int episodes = 100, threads = 0;  // threads 0: the run's config
  uint64_t seed = 0;
  std::vector<std::string> env_overrides;  // env.key=value (e.g. another model)
};
// Returns a JSON object (success_rate, final_distance_mean, return_mean, ...).
std::string run_eval(const EvalArgs& args);

}  // namespace ml3
