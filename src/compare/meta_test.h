#pragma once
// `ml3 meta-test` of a learned policy loss: fresh policies trained with the
// loss alone (the registry's learned_loss algorithm) and with the baselines
// (every other policy-training algorithm, configured by its baselines.<name>.
// sections), with the same initialisations, goals, batch size and update
// count; evaluated on a goal split. The special case of `ml3 compare`
// (src/compare/compare.h): the same method loop (src/compare/methods.h),
// statistics and outputs. LibTorch-free.
#include <string>

#include "core/config.h"

namespace ml3 {

// baselines.<name>.* for every policy-training algorithm that can be a
// baseline (its own sections, learning rates not annealed).
void declare_baselines(Schema& s);

// Writes results.json, results.md, curves.json and curves.png into `out_dir` (default
// runs/<meta-train config>_meta_test_<split>) and returns results.json's text.
// episodes_per_update: the batch the loss was meta-trained with.
std::string run_policy_meta_test(const std::string& loss_file, const Config& cfg, const std::string& split,
                                 int episodes_per_update, const std::string& out_dir, bool force, bool quiet);
// The human-readable form of a results.json (results.md).
std::string policy_meta_test_table(const std::string& results_json);

}  // namespace ml3
