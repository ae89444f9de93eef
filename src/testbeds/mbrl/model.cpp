// The model-based reacher (src/testbeds/mbrl/mbrl.h): the reacher through
// the learned model (differentiable rollouts, task and learned losses), data
// in MuJoCo, the dynamics ensemble's fit and errors, and the loss and model
// files.
#include "src/testbeds/mbrl/internal.h"

namespace ml3::mbrl {


Tensor tip_of(const Tensor& s, const Kinematics& k) {
  const Tensor q0 = s.select(-1, 0), q01 = q0 + s.select(-1, 1);
  return torch::stack({k.bx + k.l1 * torch::cos(q0) + k.l2 * torch::cos(q01),
                       k.by + k.l1 * torch::sin(q0) + k.l2 * torch::sin(q01)},
                      -1);
}

Tensor model_input(const Tensor& s, const Tensor& a) {
  const Tensor q0 = s.select(-1, 0), q1 = s.select(-1, 1);
  return torch::cat({torch::stack({torch::cos(q0), torch::sin(q0), q1, torch::cos(q1), torch::sin(q1)}, -1),
                     s.narrow(-1, 2, 2), a},
                    -1);
}

// The reacher's observation from a state and a goal (envs/reacher/reacher.h).
Tensor obs_of(const Tensor& s, const Tensor& g, const Kinematics& k) {
  const Tensor q0 = s.select(-1, 0), q1 = s.select(-1, 1);
  return torch::cat({torch::stack({torch::cos(q0), torch::cos(q1), torch::sin(q0), torch::sin(q1)}, -1), g,
                     s.narrow(-1, 2, 2), tip_of(s, k) - g},
                    -1);
}

Tensor scaled(const Tensor& obs) {
  return obs * torch::from_blob(const_cast<double*>(kObsScale), {kObs}, torch::kFloat64).to(obs.scalar_type());
}

// State and fingertip from observations [..., 10].
Tensor state_from_obs(const Tensor& o) {
  return torch::stack({torch::atan2(o.select(-1, 2), o.select(-1, 0)), torch::atan2(o.select(-1, 3), o.select(-1, 1)),
                       o.select(-1, 6), o.select(-1, 7)},
                      -1);
}
Tensor tip_from_obs(const Tensor& o) { return o.narrow(-1, 8, 2) + o.narrow(-1, 4, 2); }
// s' - s with the angle differences wrapped to (-pi, pi].
Tensor state_change(const Tensor& s, const Tensor& s1) {
  const Tensor d = s1 - s;
  const Tensor dq = d.narrow(-1, 0, 2);
  return torch::cat({torch::atan2(torch::sin(dq), torch::cos(dq)), d.narrow(-1, 2, 2)}, -1);
}

Tensor safe_norm(const Tensor& x) { return (x.pow(2).sum(-1) + 1e-12).sqrt(); }

Tensor policy_action(const FunctionalMlp& net, const Tensor& obs, const Params& w) {
  return torch::tanh(batched_mlp_forward(net, scaled(obs).unsqueeze(1), w)).squeeze(1);
}

// P policies (batched parameters) through the model from s0 [P, 4] toward goals g [P, 2].
Rollout model_rollout(const Problem& pb, const Params& w, const Tensor& s0, const Tensor& g) {
  Tensor s = s0;
  std::vector<Tensor> ss{s}, os, as;
  for (int t = 0; t < pb.horizon; ++t) {
    const Tensor o = obs_of(s, g, pb.kin);
    const Tensor a = policy_action(pb.policy, o, w);
    s = s + pb.model.predict(model_input(s, a));
    ss.push_back(s), os.push_back(o), as.push_back(a);
  }
  return {torch::stack(ss, 1), torch::stack(os, 1), torch::stack(as, 1)};
}

// Per policy [P]: 10 |tip_T - g| + mean_t |tip_t - g| + 1e-4 mean_t |qdot_t| over t = 0..T.
Tensor task_loss(const Rollout& r, const Tensor& g, const Kinematics& k) {
  const Tensor dist = safe_norm(tip_of(r.states, k) - g.unsqueeze(1));
  const Tensor vel = safe_norm(r.states.narrow(2, 2, 2));
  return 10.0 * dist.select(1, dist.size(1) - 1) + dist.mean(1) + 1e-4 * vel.mean(1);
}

// Per policy [P]: mean over t < T of softplus(M_phi(scaled obs_t, a_t, 10 |tip_t - g| detached)).
Tensor learned_loss(const FunctionalMlp& net, const Params& phi, const Rollout& r, const Tensor& g, const Kinematics& k) {
  const int64_t T = r.actions.size(1);
  const Tensor d = safe_norm(tip_of(r.states.narrow(1, 0, T), k) - g.unsqueeze(1)).detach().unsqueeze(2);
  const Tensor rows = torch::cat({scaled(r.obs), r.actions, 10.0 * d}, 2);
  return torch::softplus(net.forward(rows, phi)).squeeze(2).mean(1);
}

FunctionalMlp policy_net(const MbrlSection& s) {
  std::vector<int> sizes{kObs};
  sizes.insert(sizes.end(), s.policy_hidden.begin(), s.policy_hidden.end());
  sizes.push_back(kAct);
  return FunctionalMlp(sizes, Activation::Tanh, true);
}
std::vector<int> loss_sizes(const std::vector<int>& hidden) {
  std::vector<int> sizes{kObs + kAct + 1};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(1);
  return sizes;
}

Tensor obs_tensor(const Episodes& e, int T) {
  return torch::from_blob(const_cast<double*>(e.obs.data()), {e.count, T + 1, kObs}, torch::kFloat64).clone();
}
Tensor act_tensor(const Episodes& e, int T) {
  return torch::from_blob(const_cast<double*>(e.act.data()), {e.count, T, kAct}, torch::kFloat64).clone();
}
void append(Episodes& to, const Episodes& from) {
  to.obs.insert(to.obs.end(), from.obs.begin(), from.obs.end());
  to.act.insert(to.act.end(), from.act.begin(), from.act.end());
  to.count += from.count;
}

// Least-squares forward kinematics from the observed fingertips; the largest residual (m).
Kinematics fit_kinematics(const Tensor& obs, double* max_residual) {
  torch::NoGradGuard ng;
  const Tensor o = obs.reshape({-1, kObs});
  const Tensor s = state_from_obs(o), tip = tip_from_obs(o);
  const Tensor q0 = s.select(1, 0), q01 = q0 + s.select(1, 1);
  const Tensor one = torch::ones_like(q0), zero = torch::zeros_like(q0);
  const Tensor ax = torch::stack({one, zero, torch::cos(q0), torch::cos(q01)}, 1);
  const Tensor ay = torch::stack({zero, one, torch::sin(q0), torch::sin(q01)}, 1);
  const Tensor A = torch::cat({ax, ay}, 0), b = torch::cat({tip.select(1, 0), tip.select(1, 1)}, 0).unsqueeze(1);
  const Tensor x = torch::linalg_solve(A.t().mm(A), A.t().mm(b)).squeeze(1);
  Kinematics k{x[0].item<double>(), x[1].item<double>(), x[2].item<double>(), x[3].item<double>()};
  if (max_residual) *max_residual = (A.mm(x.unsqueeze(1)) - b).abs().max().item<double>();
  return k;
}

// Transitions of episodes: model inputs [N, 8] and state changes [N, 4] (float32).
std::pair<Tensor, Tensor> transitions(const Tensor& obs, const Tensor& act) {
  const int64_t T = act.size(1);
  const Tensor s = state_from_obs(obs);
  const Tensor x = model_input(s.narrow(1, 0, T), act).reshape({-1, kModelIn});
  const Tensor y = state_change(s.narrow(1, 0, T), s.narrow(1, 1, T)).reshape({-1, kState});
  return {x.to(torch::kFloat32), y.to(torch::kFloat32)};
}

// `epochs` passes of Gaussian-NLL Adam steps; each member sees its own
// permutation (seeded by `seed`). Returns the last epoch's mean NLL.
double fit_model(DynamicsEnsemble& m, Adam& opt, const Tensor& x, const Tensor& y, int epochs, int batch, double lr,
                 uint64_t seed) {
  const int64_t n = x.size(0), E = m.spec().members, b = std::min<int64_t>(batch, n);
  Rng rng(seed);
  double last = 0;
  for (int ep = 0; ep < epochs; ++ep) {
    Tensor perm = torch::empty({E, n}, torch::kInt64);
    auto acc = perm.accessor<int64_t, 2>();
    for (int64_t e = 0; e < E; ++e) {
      for (int64_t i = 0; i < n; ++i) acc[e][i] = i;
      for (int64_t i = n - 1; i > 0; --i) std::swap(acc[e][i], acc[e][static_cast<int64_t>(rng.uniform() * (i + 1))]);
    }
    double sum = 0;
    int steps = 0;
    for (int64_t start = 0; start + b <= n; start += b) {
      const Tensor idx = perm.narrow(1, start, b);
      const Tensor loss = m.nll(x.index({idx}), y.index({idx}));
      const auto grads = torch::autograd::grad({loss}, m.params());
      opt.step(m.params(), grads, lr);
      sum += loss.item<double>(), ++steps;
    }
    last = sum / std::max(steps, 1);
    if (!std::isfinite(last)) throw NonFiniteError(fmt::format("non-finite dynamics model fit (NLL {})", last));
  }
  return last;
}

// Held-out errors against MuJoCo: one-step (per state dimension, RMSE, and
// the zero-change baseline) and open-loop over the horizon (the model rolled
// out from each episode's start with its recorded actions).
nlohmann::json model_errors(const DynamicsEnsemble& m, const Kinematics& k, const Tensor& obs, const Tensor& act) {
  torch::NoGradGuard ng;
  const int64_t T = act.size(1);
  const auto [x, y] = transitions(obs, act);
  const Tensor pred = m.predict(x);
  auto rmse = [](const Tensor& d) {
    const Tensor r = d.pow(2).mean(0).sqrt().to(torch::kFloat64);
    return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
  };
  const Tensor s = state_from_obs(obs).to(torch::kFloat32), tips = tip_from_obs(obs).to(torch::kFloat32);
  Tensor sm = s.select(1, 0);
  std::vector<Tensor> tip_err;
  for (int64_t t = 0; t < T; ++t) {
    sm = sm + m.predict(model_input(sm, act.select(1, t).to(torch::kFloat32)));
    tip_err.push_back(safe_norm(tip_of(sm, k) - tips.select(1, t + 1)));
  }
  const Tensor errs = torch::stack(tip_err, 1);  // [n, T]
  const Tensor s_next = s.narrow(1, 1, T).reshape({-1, kState});
  const Tensor s_prev = s.narrow(1, 0, T).reshape({-1, kState});
  const Tensor one_tip = safe_norm(tip_of(s_prev + pred, k) - tip_of(s_next, k));
  const Tensor zero_tip = safe_norm(tip_of(s_prev, k) - tip_of(s_next, k));
  return {{"state", {"q0", "q1", "qdot0", "qdot1"}},
          {"one_step_rmse", rmse(pred - y)},
          {"one_step_rmse_zero_change", rmse(y)},
          {"one_step_fingertip_error_mean", one_tip.mean().item<double>()},
          {"one_step_fingertip_error_mean_zero_change", zero_tip.mean().item<double>()},
          {"horizon", T},
          {"horizon_fingertip_error_mean", errs.select(1, T - 1).mean().item<double>()},
          {"horizon_fingertip_error_median", errs.select(1, T - 1).median().item<double>()},
          {"fingertip_error_mean_over_steps", errs.mean().item<double>()},
          {"horizon_state_rmse", rmse(sm - s.select(1, T))},
          {"episodes", obs.size(0)}};
}

nlohmann::json kinematics_json(const Kinematics& k) { return {{"bx", k.bx}, {"by", k.by}, {"l1", k.l1}, {"l2", k.l2}}; }
Kinematics kinematics_of(const nlohmann::json& j, const std::string& path) {
  try {
    return {j.at("bx").get<double>(), j.at("by").get<double>(), j.at("l1").get<double>(), j.at("l2").get<double>()};
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": dynamics model metadata lacks the fingertip kinematics (bx, by, l1, l2)");
  }
}

DynamicsSpec model_spec(const MbrlSection& s) {
  DynamicsSpec d;
  d.in_dim = kModelIn, d.out_dim = kState, d.members = s.ensemble, d.hidden = s.model_hidden;
  return d;
}
Fitted fit_from_scratch(const MbrlSection& s, uint64_t seed, const Episodes& data, int T) {
  Fitted f;
  const Tensor obs = obs_tensor(data, T), act = act_tensor(data, T);
  f.kin = fit_kinematics(obs, &f.kin_residual);
  const auto [x, y] = transitions(obs, act);
  f.model = DynamicsEnsemble(model_spec(s), mix_seed(seed, kTagModel));
  f.model.set_normalisation(x, y);
  f.opt = Adam(f.model.params(), 1e-8);
  f.nll = fit_model(f.model, f.opt, x, y, s.fit_epochs, s.model_batch, s.model_lr, mix_seed(seed, kTagFit));
  return f;
}

nlohmann::json model_meta(const Kinematics& k, const Config& cfg) {
  return {{"state", {"q0", "q1", "qdot0", "qdot1"}},
          {"input", {"cos q0", "sin q0", "q1", "cos q1", "sin q1", "qdot0", "qdot1", "a0", "a1"}},
          {"output", "state change s' - s (angles wrapped)"},
          {"kinematics", kinematics_json(k)},
          {"config", cfg.to_yaml()}};
}
LoadedModel load_model_file(const std::string& path) {
  nlohmann::json meta;
  LoadedModel l{DynamicsEnsemble::load(path, &meta), {}};
  l.kin = kinematics_of(meta.value("kinematics", nlohmann::json::object()), path);
  const auto& sp = l.model.spec();
  if (sp.in_dim != kModelIn || sp.out_dim != kState)
    throw Error(fmt::format("{}: a reacher dynamics model maps {} inputs to {} outputs, this one {} to {}", path,
                            kModelIn, kState, sp.in_dim, sp.out_dim));
  return l;
}

// One SGD step of every policy on its loss through the model (no graph kept).
Params policy_step(const Problem& pb, const LossRef& loss, const Params& w, const GoalSet& gs, double lr) {
  Params wg = clone_params(w, true);
  const Rollout r = model_rollout(pb, wg, gs.s0, gs.g);
  const Tensor l = loss.net ? learned_loss(*loss.net, *loss.phi, r, gs.g, pb.kin).sum() : task_loss(r, gs.g, pb.kin).sum();
  const auto grads = torch::autograd::grad({l}, wg);
  Params out;
  for (size_t i = 0; i < w.size(); ++i) out.push_back((wg[i].detach() - lr * grads[i]).contiguous());
  if (!all_finite(out)) throw NonFiniteError("non-finite policy parameters after a step through the model");
  return out;
}

TestCurve test_policies(const Problem& pb, RealSim& sim, const LossRef& loss, const GoalSet& gs, Params w, int steps,
                        double lr, double threshold, const std::function<void(int)>& tick) {
  TestCurve c;
  for (int k = 0; k <= steps; ++k) {
    if (k > 0) w = policy_step(pb, loss, w, gs, lr);
    const std::vector<double> finals = sim.run(pb.policy, w, gs, nullptr);
    torch::NoGradGuard ng;
    const Rollout r = model_rollout(pb, w, gs.s0, gs.g);
    const Tensor md = safe_norm(tip_of(r.states.select(1, pb.horizon), pb.kin) - gs.g);
    double sum = 0, ok = 0;
    for (double f : finals) sum += f, ok += f < threshold ? 1 : 0;
    c.real_mean.push_back(sum / finals.size());
    c.success.push_back(ok / finals.size());
    c.model_mean.push_back(md.mean().item<double>());
    c.real.push_back(finals);
    if (tick) tick(k);
  }
  return c;
}

Params fresh_policies(const FunctionalMlp& net, uint64_t seed, uint64_t tag, int64_t first, int64_t n, double scale) {
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < n; ++i) seeds.push_back(mix_seed(mix_seed(seed, tag), static_cast<uint64_t>(first + i)));
  Params p = batched_mlp_init(net, seeds, scale);
  for (auto& t : p) t = t.detach();
  return p;
}

// Test-split goals of the evaluation convention (ml3 eval): goal i of
// sample_tasks(split, seed), start of seed mix_seed(mix_seed(seed, kEvalStream), i).
GoalSet eval_goals(RealSim& sim, Split split, uint64_t seed, int n) {
  std::vector<uint64_t> seeds;
  for (int i = 0; i < n; ++i) seeds.push_back(mix_seed(eval_reset_stream(seed), static_cast<uint64_t>(i)));
  return sim.goals(sample_tasks(sim.env(), split, seed, n), seeds);
}

void write_loss_file(const std::string& path, const FunctionalMlp& net, const Params& phi, const nlohmann::json& meta) {
  nlohmann::json m = meta;
  m["input"] = {"scaled observation (10)", "action (2)", "10 x fingertip distance (detached)"};
  write_mlp_loss_file(path, "mbrl_loss", net, phi, m);
}
MlpLossFile load_loss_file(const std::string& path) {
  return load_mlp_loss_file(path, "mbrl_loss", kObs + kAct + 1, "mbrl");
}
void start_output(const std::string& out_dir, bool force, const Config& cfg) {
  prepare_run_dir(out_dir, force);
  write_file_atomic((fs::path(out_dir) / "config.yaml").string(), cfg.to_yaml());
}

nlohmann::json curve_json(const TestCurve& c, int steps) {
  nlohmann::json j = {{"final_distance_mean_after_steps", c.real_mean},
                      {"success_rate_after_steps", c.success},
                      {"model_final_distance_mean_after_steps", c.model_mean},
                      {"final_distance_per_goal_after_last_step", c.real.back()}};
  for (int k : {2, 10})
    if (k <= steps) j[fmt::format("final_distance_mean_after_{}", k)] = c.real_mean[k];
  return j;
}

}  // namespace ml3::mbrl
