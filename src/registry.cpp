// The algorithm registry: one line per algorithm. Each entry is defined in
// the algorithm's own file (src/algos/, src/ml3_meta.cpp, src/sine/).
#include "src/algorithm.h"

namespace ml3 {

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

const std::vector<AlgorithmEntry>& algorithm_registry() {
  static const std::vector<AlgorithmEntry> registry = {
      ppo_algorithm(),           // ml3 train
      reinforce_algorithm(),     // ml3 train
      learned_loss_algorithm(),  // ml3 train --loss FILE
      bc_algorithm(),            // ml3 train: behaviour cloning of a demonstrations file
      ppo_from_bc_algorithm(),   // ml3 train: PPO started from that clone
      dapg_algorithm(),          // ml3 train: that, plus a decaying cloning term
      shaping_only_algorithm(),  // ml3 train: a learned loss's target network run as the policy
      ml3_algorithm(),           // ml3 meta-train: a loss for policies
      sine_algorithm(),          // ml3 meta-train: the paper's sine regression testbed (and shaped sine)
      mountain_car_algorithm(),  // ml3 meta-train: mountain car with an intermediate goal
      mbrl_algorithm(),          // ml3 meta-train: the model-based reacher (loss through a learned dynamics model)
  };
  return registry;
}

}  // namespace ml3
