#pragma once
// ML3 machinery (LibTorch): the learned loss as a policy objective, the
// differentiable inner step, and the REINFORCE task loss of the outer step.
#include "models/learned_loss.h"
#include "src/pg.h"

namespace ml3 {

// Learned-loss features of a minibatch under the policy's current outputs.
LossFeatureInputs loss_inputs(const Minibatch& mb, const PolicyEval& ev);

// theta' = theta - alpha * d M_phi(features(mb, theta)) / d theta, with
// create_graph so theta' is a differentiable function of phi (and theta).
// If `stats_update` is set, the loss's normalisation statistics absorb the
// batch's features first.
Params inner_step(const LearnedLoss& loss, const Params& phi, const GaussianPolicy& policy, const Params& theta,
                  const Minibatch& mb, double alpha, bool create_graph, double* inner_loss = nullptr);

// REINFORCE task loss on fresh rollouts of theta': -mean(log pi'(a|s) A),
// A = reward-to-go minus its per-timestep mean over episodes, normalised.
Tensor task_loss(const GaussianPolicy& policy, const Params& theta, const Batch& fresh);

}  // namespace ml3
