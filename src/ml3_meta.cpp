// ML3 for policies: meta-training a learned loss that replaces the
// policy-gradient objective, over a pool of policies at different stages of
// learning (the `ml3` algorithm of `ml3 meta-train`). The core pieces --
// features, the differentiable inner step and the REINFORCE task loss -- are
// declared in src/ml3_core.h.
#include "src/ml3_meta_trainer.h"

namespace ml3 {

namespace {
using ml3meta::Ml3MetaTrainer;

void declare_ml3(Schema& s, const std::string&) {
  declare<PolicySection>(s, "policy.", PolicySection{{64, 64}, "tanh", -0.5, -5.0, 1.0, false});
  declare<ValueSection>(s, "value.");
  declare<LossSection>(s, "loss.");
  declare<MetaSection>(s, "meta.");
  declare<ShapingSection>(s, "shaping.");
  declare<MetaTestSection>(s, "meta_test.");
  declare_baselines(s);
}

void check_ml3(const Config& c, const std::string& source) {
  if (c.get_bool("policy.obs_norm"))
    throw Error(source + ": key 'policy.obs_norm': meta-learning trains policies on raw observations; set it to false");
  parse_loss_features(c.get_string("loss.features"));
}

}  // namespace

AlgorithmEntry ml3_algorithm() {
  AlgorithmEntry e;
  e.name = "ml3";
  e.command = Command::MetaTrain;
  e.description = "ML3: a learned loss that replaces the policy-gradient objective (Bechtle et al. 2021)";
  e.declare = declare_ml3;
  e.check = check_ml3;
  e.make = [](const Config& c, const std::string& run_dir) -> std::unique_ptr<Algorithm> {
    return std::make_unique<Ml3MetaTrainer>(c, run_dir);
  };
  e.meta_test = run_policy_meta_test;
  e.meta_test_table = policy_meta_test_table;
  return e;
}

}  // namespace ml3
