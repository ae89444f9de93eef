// The ML3 machinery shared by meta-training and by training with a loss file:
// learned-loss features, the (differentiable) inner optimiser, the task loss.
#include "src/ml3/inner_loop.h"

#include <torch/torch.h>

namespace ml3 {

LearnedLossSpec loss_spec(const LossSection& l, const EnvSpec& env) {
  LearnedLossSpec s;
  s.features = parse_loss_features(l.features);
  s.hidden = l.hidden;
  s.activation = parse_activation(l.activation);
  s.init_scale = l.init_scale;
  if (l.target) s.target_hidden = l.target_hidden, s.target_weight = l.target_weight;
  s.anchor_weight = l.anchor_weight;
  s.anchor_clip = l.anchor_clip;
  s.obs_dim = env.obs_dim, s.act_dim = env.act_dim, s.goal_dim = env.goal_dim;
  return s;
}

LossFeatureInputs loss_inputs(const Minibatch& mb, const PolicyEval& ev) {
  LossFeatureInputs in;
  in.obs = mb.raw_obs;
  in.goal = mb.goals;
  in.action = mb.actions;
  in.reward = mb.rewards;
  in.rtg = mb.rtg;
  in.time = mb.time_frac;
  in.mean = ev.mean;
  in.logp = ev.logp;
  in.old_logp = mb.old_logp;
  in.advantages = mb.advantages;
  return in;
}

Params inner_step(const LearnedLoss& loss, const Params& phi, const GaussianPolicy& policy, const Params& theta,
                  const Minibatch& mb, double alpha, bool create_graph, double* inner_loss) {
  const PolicyEval ev = policy_eval(policy, theta, mb);
  const Tensor l = loss.loss(loss_inputs(mb, ev), phi);
  if (inner_loss) *inner_loss = l.item<double>();
  // allow_unused: with features that do not include log_prob, the log-std
  // does not enter the loss (its gradient is zero).
  const auto g = torch::autograd::grad({l}, theta, {}, create_graph, create_graph, /*allow_unused=*/true);
  Params out;
  for (size_t i = 0; i < theta.size(); ++i) out.push_back(g[i].defined() ? theta[i] - alpha * g[i] : theta[i]);
  return out;
}

void compute_reinforce_advantages(Batch& b) {
  // Per-timestep baseline: mean reward-to-go over the episodes at that step.
  const Tensor mask = b.mask;
  const Tensor base = (b.rtg * mask).sum(1, true) / mask.sum(1, true).clamp_min(1.0);
  const Tensor keep = mask.reshape({-1}).nonzero().squeeze(-1);
  Tensor adv = ((b.rtg - base) * mask).reshape({-1}).index_select(0, keep);
  adv = (adv - adv.mean()) / (adv.std() + 1e-8);
  b.advantages = torch::zeros({b.T * b.N}, adv.options()).index_copy(0, keep, adv).reshape({b.T, b.N});
  b.returns = b.rtg;
}

Tensor task_loss(const GaussianPolicy& policy, const Params& theta, const Batch& fresh) {
  Batch b = fresh;
  compute_reinforce_advantages(b);
  const Minibatch mb = flatten_batch(b);
  const PolicyEval ev = policy_eval(policy, theta, mb);
  return -(ev.logp * mb.advantages.to(ev.logp.scalar_type())).mean();
}

// ---- the inner optimiser ---------------------------------------------------------
namespace {
// The gradient of M_phi at theta; undefined entries (parameters the loss does
// not reach, e.g. the log-std without the log_prob feature) become zeros.
std::vector<Tensor> loss_grad(const LearnedLoss& loss, const Params& phi, const GaussianPolicy& policy,
                              const Params& theta, const Minibatch& mb, bool create_graph, double* value) {
  const PolicyEval ev = policy_eval(policy, theta, mb);
  const Tensor l = loss.loss(loss_inputs(mb, ev), phi);
  if (value) *value = l.item<double>();
  auto g = torch::autograd::grad({l}, theta, {}, create_graph, create_graph, /*allow_unused=*/true);
  for (size_t i = 0; i < g.size(); ++i)
    if (!g[i].defined()) g[i] = torch::zeros_like(theta[i]);
  return g;
}
}  // namespace

InnerOptimizer InnerOptimizer::named(const std::string& name, double lr, int steps) {
  InnerOptimizer o;
  o.adam = name == "adam";
  o.lr = lr;
  o.steps = steps;
  return o;
}

void InnerState::save(Archive& a, const std::string& prefix) const {
  a.put_f64(prefix + "adam_t", {static_cast<double>(t)});
  if (t > 0) put_params(a, prefix + "adam_m/", m), put_params(a, prefix + "adam_v/", v);
}

void InnerState::load(const Archive& a, const std::string& prefix, size_t count) {
  *this = InnerState();
  t = static_cast<int64_t>(a.get_f64(prefix + "adam_t").at(0));
  if (t > 0) {
    m = clone_params(get_params(a, prefix + "adam_m/", count), false);
    v = clone_params(get_params(a, prefix + "adam_v/", count), false);
  }
}

void InnerState::reset(const Params& theta) {
  m.clear(), v.clear();
  for (const auto& p : theta) {
    m.push_back(torch::zeros_like(p).detach());
    v.push_back(torch::zeros_like(p).detach());
  }
  t = 0;
}

InnerState InnerState::detached() const {
  InnerState out;
  out.m = clone_params(m, false);
  out.v = clone_params(v, false);
  out.t = t;
  return out;
}

Params inner_update(const LearnedLoss& loss, const Params& phi, const GaussianPolicy& policy, const Params& theta,
                    const Minibatch& mb, const InnerOptimizer& opt, InnerState* state, bool create_graph,
                    double* first_loss) {
  if (!opt.adam) {
    // Plain SGD: `steps` steps of inner_step (one step: exactly the original ML3 inner step).
    Params th = theta;
    for (int s = 0; s < opt.steps; ++s) th = inner_step(loss, phi, policy, th, mb, opt.lr, create_graph, s ? nullptr : first_loss);
    return th;
  }
  // Adam, written with tensor ops so that, with create_graph, theta' and the
  // moments stay differentiable functions of phi. The square root takes
  // v_hat + eps^2 (not sqrt(v_hat) + eps) so its derivative stays finite where
  // a gradient is exactly zero.
  if (state->m.size() != theta.size()) state->reset(theta);
  Params th = theta;
  const double b1 = opt.beta1, b2 = opt.beta2, eps2 = opt.eps * opt.eps;
  for (int s = 0; s < opt.steps; ++s) {
    const auto g = loss_grad(loss, phi, policy, th, mb, create_graph, s ? nullptr : first_loss);
    ++state->t;
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(state->t));
    const double bc2 = 1.0 - std::pow(b2, static_cast<double>(state->t));
    Params next;
    for (size_t i = 0; i < th.size(); ++i) {
      state->m[i] = b1 * state->m[i] + (1.0 - b1) * g[i];
      state->v[i] = b2 * state->v[i] + (1.0 - b2) * g[i] * g[i];
      next.push_back(th[i] - (opt.lr / bc1) * state->m[i] / (state->v[i] / bc2 + eps2).sqrt());
    }
    th = std::move(next);
  }
  return th;
}

}  // namespace ml3
