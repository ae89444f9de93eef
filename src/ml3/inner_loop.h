#pragma once
// ML3 machinery (LibTorch): learned-loss features, the differentiable inner
// step and inner optimiser, and the REINFORCE task loss of the outer step.
#include "models/learned_loss.h"
#include "src/ml3/sections.h"
#include "src/policy/pg.h"

namespace ml3 {

// The learned loss of a `loss.*` section for an environment's sizes.
LearnedLossSpec loss_spec(const LossSection& l, const EnvSpec& env);

// Learned-loss features of a minibatch under the policy's current outputs.
LossFeatureInputs loss_inputs(const Minibatch& mb, const PolicyEval& ev);

// theta' = theta - alpha * d M_phi(features(mb, theta)) / d theta, with
// create_graph so theta' is a differentiable function of phi (and theta).
// If `stats_update` is set, the loss's normalisation statistics absorb the
// batch's features first.
Params inner_step(const LearnedLoss& loss, const Params& phi, const GaussianPolicy& policy, const Params& theta,
                  const Minibatch& mb, double alpha, bool create_graph, double* inner_loss = nullptr);

// How a learned loss is applied to a batch -- at meta-train time (through
// create_graph) and when it trains a policy (ml3 train --loss, meta-test)
// alike: `steps` optimiser steps on the whole batch, plain SGD (one step: the
// paper's inner step) or Adam.
struct InnerOptimizer {
  bool adam = false;
  double lr = 0.5;
  int steps = 1;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // From the config's choice: "sgd" or "adam".
  static InnerOptimizer named(const std::string& name, double lr, int steps);
};
// Adam's moments and step count for one policy (kept across batches, like an
// optimiser's state; empty for SGD).
struct InnerState {
  Params m, v;
  int64_t t = 0;
  void reset(const Params& theta);
  InnerState detached() const;
  // Into/out of a checkpoint under `prefix` (`count`: the policy's tensors).
  void save(Archive& a, const std::string& prefix) const;
  void load(const Archive& a, const std::string& prefix, size_t count);
};
// theta after opt.steps steps on M_phi over `mb`; `state` is updated. With
// create_graph, theta' and the state are differentiable functions of phi.
// first_loss (optional) receives M_phi before the first step.
Params inner_update(const LearnedLoss& loss, const Params& phi, const GaussianPolicy& policy, const Params& theta,
                    const Minibatch& mb, const InnerOptimizer& opt, InnerState* state, bool create_graph,
                    double* first_loss = nullptr);

// REINFORCE advantages of a batch with reward-to-go (compute_rtg): A =
// reward-to-go minus its per-timestep mean over episodes, normalised over the
// valid rows (0 elsewhere); sets b.advantages and b.returns (= b.rtg).
void compute_reinforce_advantages(Batch& b);

// REINFORCE task loss on fresh rollouts of theta': -mean(log pi'(a|s) A),
// A of compute_reinforce_advantages.
Tensor task_loss(const GaussianPolicy& policy, const Params& theta, const Batch& fresh);

}  // namespace ml3
