#pragma once
// ML3 for policies: `ml3 meta-train` (learn a loss that replaces the
// policy-gradient objective) and `ml3 meta-test` (train fresh policies with
// the learned loss alone, against REINFORCE and PPO with the same batch size,
// update count and seeds). LibTorch-free API; the machinery is in ml3_core.h.
#include <string>
#include <vector>

#include "core/config.h"

namespace ml3 {

// Every key of a policy meta-learning config (env.* depend on env.name).
Schema meta_schema(const std::string& env_name);
Config load_meta_config(const std::string& path, const std::vector<std::string>& overrides);

struct MetaTrainArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string out_dir, resume_dir;
  bool force = false, quiet = false;
  int stop_after = -1;
};
// Writes a run folder (config.yaml, metrics, checkpoints, loss.ml3, plot,
// summary.json); returns summary.json's text ("" when stopped early).
std::string run_meta_train(const MetaTrainArgs& args);

struct MetaTestArgs {
  std::string loss_file, config_path;
  std::vector<std::string> overrides;
  std::string split = "test", out_dir;
  bool force = false, quiet = false;
};
// Writes results.json, curves.json and curves.png into the output folder and
// returns results.json's text.
std::string run_meta_test(const MetaTestArgs& args);
// The human-readable table of a results.json.
std::string meta_test_table(const std::string& results_json);

}  // namespace ml3
