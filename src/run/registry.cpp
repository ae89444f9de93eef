// The algorithm registry: one line per algorithm. Each entry is defined in
// the algorithm's own file (src/policy/, src/ml3/, src/testbeds/).
#include "src/run/algorithm.h"

#include "core/error.h"

namespace ml3 {

const PolicyRuleHooks& AlgorithmEntry::rule() const {
  if (const auto* r = std::get_if<PolicyRuleHooks>(&hooks)) return *r;
  throw Error("algorithm '" + name + "' is a meta-learning problem (ml3 meta-train), not a policy-training rule");
}

const MetaProblemHooks& AlgorithmEntry::problem() const {
  if (const auto* p = std::get_if<MetaProblemHooks>(&hooks)) return *p;
  throw Error("algorithm '" + name + "' trains policies (ml3 train); it is not a meta-learning problem");
}

namespace {
// An entry's kind matches its command, and its required hook is there.
AlgorithmEntry checked(AlgorithmEntry e) {
  const bool ok = e.command == Command::Train ? e.is_rule() && e.rule().make_update
                                              : !e.is_rule() && e.problem().make;
  if (!ok || !e.declare) throw Error("internal: registry entry '" + e.name + "' is incomplete for its command");
  return e;
}
}  // namespace

AlgorithmEntry ppo_algorithm();
AlgorithmEntry reinforce_algorithm();
AlgorithmEntry learned_loss_algorithm();
AlgorithmEntry bc_algorithm();
AlgorithmEntry ppo_from_bc_algorithm();
AlgorithmEntry dapg_algorithm();
AlgorithmEntry shaping_only_algorithm();
AlgorithmEntry ml3_algorithm();
AlgorithmEntry sine_algorithm();
AlgorithmEntry mountain_car_algorithm();
AlgorithmEntry mbrl_algorithm();
AlgorithmEntry lpo_algorithm();

const std::vector<AlgorithmEntry>& algorithm_registry() {
  static const std::vector<AlgorithmEntry> registry = {
      checked(ppo_algorithm()),           // ml3 train
      checked(reinforce_algorithm()),     // ml3 train
      checked(learned_loss_algorithm()),  // ml3 train --loss FILE
      checked(bc_algorithm()),            // ml3 train: behaviour cloning of a demonstrations file
      checked(ppo_from_bc_algorithm()),   // ml3 train: PPO started from that clone
      checked(dapg_algorithm()),          // ml3 train: that, plus a decaying cloning term
      checked(shaping_only_algorithm()),  // ml3 train: a learned loss's target network run as the policy
      checked(ml3_algorithm()),           // ml3 meta-train: a loss for policies
      checked(sine_algorithm()),          // ml3 meta-train: the paper's sine regression testbed (and shaped sine)
      checked(mountain_car_algorithm()),  // ml3 meta-train: mountain car with an intermediate goal
      checked(lpo_algorithm()),           // ml3 meta-train: a drift for PPO, by ES over whole lifetimes
      checked(mbrl_algorithm()),          // ml3 meta-train: the model-based reacher (loss through a learned dynamics model)
  };
  return registry;
}

}  // namespace ml3
