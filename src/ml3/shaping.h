#pragma once
// Shaping of ML3 meta-training: the extra information used only at
// meta-train time (the loss file never needs it). It owns the goal
// demonstrations, the ring buffer of expert-labelled visited states, the
// fitting of the loss's target network T to both, and the imitation error
// the meta-objective adds to the task loss. Included by the meta-trainer
// (src/ml3/meta_trainer.h) only.
#include <torch/torch.h>

#include <string>

#include "core/archive.h"
#include "src/ml3/inner_loop.h"
#include "src/ml3/sections.h"
#include "src/policy/pg.h"

namespace ml3::ml3meta {

class Shaping {
 public:
  // Loads shaping.demos (checked against `env`) and checks the shaping keys
  // against the loss (`loss.*`); throws ml3::Error naming the key.
  Shaping(const ShapingSection& s, const LossSection& loss_section, const LearnedLoss& loss, const EnvSpec& env,
          uint64_t seed);
  // The target network's optimiser, then loss.target_prefit_steps cloning
  // steps of T on the demonstrations (call once the loss is initialised).
  void init_target(const LearnedLoss& loss, Params& phi);

  bool shaped() const { return labels_ || demo_obs_.defined(); }
  // shaping.expert_labels: rollouts record the expert's actions; remember() them.
  bool expert_labels() const { return labels_; }
  // How the meta-objective is shaped, as the loss file records it.
  std::string kind() const;
  // T fitted only (false: its part of the meta-gradient is dropped).
  bool target_meta_gradient() const { return sec_.target_meta_gradient; }
  // The task loss's weight in a shaped meta-objective (shaping.rl_weight).
  double rl_weight() const { return sec_.rl_weight; }
  // shaping.imitation_weight, annealed over shaping.anneal_iterations.
  double weight(int it) const;

  // The expert-labelled rows of a batch into the ring buffer of visited states.
  void remember(const Minibatch& mb);
  // The updated policy's squared action error that shapes the task loss: on
  // the states it visited (`visited`) with expert labels or with T's (held
  // constant), or on shaping.demo_rows demonstrated rows drawn from Rng(seed).
  Tensor imitation_error(const GaussianPolicy& policy, const LearnedLoss& loss, const Params& phi,
                         const Params& theta, const Minibatch& visited, uint64_t seed) const;
  // shaping.target_fit_steps steps of T after meta-iteration `it`; the error
  // of the last (NaN when none).
  double fit_target(int it, const LearnedLoss& loss, Params& phi);

  void save(Archive& a, const LearnedLoss& loss) const;
  void load(const Archive& a, const LearnedLoss& loss, const Params& phi);

 private:
  Tensor demo_rows(uint64_t seed) const;
  double target_step(uint64_t seed, const LearnedLoss& loss, Params& phi);

  ShapingSection sec_;
  int prefit_steps_ = 0;        // loss.target_prefit_steps
  uint64_t seed_ = 0;
  Tensor demo_obs_, demo_act_;  // demonstrated rows, undefined when there are none
  bool labels_ = false;         // shaping.expert_labels
  Tensor buf_obs_, buf_act_;    // expert-labelled visited states (ring buffer)
  int64_t buf_n_ = 0, buf_pos_ = 0;
  Adam target_adam_;            // of the target network's own fitting steps
};

}  // namespace ml3::ml3meta
