#pragma once
// `ml3 compare`: fresh policies trained by several methods -- learned losses
// (any number of loss files), REINFORCE, PPO, behaviour cloning, PPO from the
// clone: every policy-training algorithm of the registry -- with the same
// initialisations, goals, batch size and update budget, each baseline's
// learning rate optionally swept on the `train` split first; curves with 95%
// bands, a table with bootstrap confidence intervals over seeds and plain
// statements of which differences are significant. `ml3 meta-test` is the
// special case of one learned loss against the baselines of a meta-training
// config (src/compare/meta_test.h); both run the same method loop and statistics
// (src/compare/compare.cpp). LibTorch-free.
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"

namespace ml3 {

// The schema of a compare config: seed, threads, torch_threads, env.*,
// policy.*, value.*, compare.*, sweep.* and, for each (name, kind) method,
// methods.<name>.kind / sweep_lrs / lr_chosen_by plus the sections of the
// algorithm `kind` (those of `ml3 train --config` with algorithm: kind).
Schema compare_schema(const std::string& env_name, const std::vector<std::pair<std::string, std::string>>& methods);
// Loads a compare config: env.name and the methods (the names under
// `methods:` in the file and the overrides, each with its `kind`) pick the
// schema, then the file, then the overrides.
Config load_compare_config(const std::string& path, const std::vector<std::string>& overrides);

struct CompareArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string split;    // test | ood; empty: the config's compare.split
  std::string out_dir;  // default runs/<config name> (runs/<config name>_<split> with --split)
  bool force = false, quiet = false;
  bool no_sweep = false;  // use the configured learning rates (sweep.enabled=false)
};
// Writes config.yaml, results.json, results.md, curves.json and curves.png
// into the output folder; returns results.json's text.
std::string run_compare(const CompareArgs& args);

// results.md of a results.json (ml3 compare and ml3 meta-test print it).
std::string compare_markdown(const std::string& results_json);

}  // namespace ml3
