// The model-based reacher (src/mbrl.h): data in MuJoCo, the dynamics
// ensemble's fit and errors, differentiable rollouts through the model, the
// meta-trainer under the runner, meta-test and `ml3 dynamics fit`.
#include "src/mbrl.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fmt/format.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "envs/env.h"
#include "models/dynamics.h"
#include "src/algorithm.h"
#include "src/pg.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using torch::Tensor;

constexpr int kObs = 10, kAct = 2, kState = 4, kModelIn = 9;
constexpr uint64_t kTagLoss = 1, kTagPolicy = 2, kTagGoal = 3, kTagStart = 4, kTagBabble = 5, kTagModel = 6,
                   kTagFit = 7, kTagTestPolicy = 8, kTagEvalBabble = 9;
// The policy's and the learned loss's input: the observation scaled to O(1)
// (goal and fingertip offsets in decimetres, joint velocities / 10).
constexpr double kObsScale[kObs] = {1, 1, 1, 1, 10, 10, 0.1, 0.1, 10, 10};

struct MbrlSection {
  int babble_episodes = 200;
  int babble_hold = 4;
  int holdout_episodes = 20;
  int ensemble = 5;
  std::vector<int> model_hidden{64, 64};
  double model_lr = 1e-3;
  int model_batch = 256;
  int fit_epochs = 100;
  int refit_epochs = 2;
  int data_every = 25;
  std::string dynamics_file;
  std::vector<int> policy_hidden{32, 32};
  double policy_init_scale = 0.1;
  double inner_lr = 1e-3;
  double task_lr = 1e-5;
  std::vector<int> loss_hidden{64, 64};
  double outer_lr = 1e-3;
  double grad_clip = 10.0;
  int iterations = 600;
  int pool_size = 8;
  int pool_reset_every = 10;
  int test_steps = 10;
  int test_goals = 100;
  int test_seed = 0;
  int eval_every = 50;
  int eval_goals = 10;
  int checkpoint_every = 100;
  template <class F>
  void fields(F& f) {
    f("babble_episodes", babble_episodes, "random-action episodes in MuJoCo that the dynamics model is first fitted on");
    f("babble_hold", babble_hold, "babbling: each uniform random action is held for 1..this many steps");
    f("holdout_episodes", holdout_episodes, "babbling episodes held out for the model's one-step and horizon errors "
                                            "(ml3 dynamics fit; meta-training fits on all)", Bounds::at_least(1));
    f("ensemble", ensemble, "members of the dynamics ensemble (probabilistic MLPs)", Bounds::in(1, 64));
    f("model_hidden", model_hidden, "dynamics member hidden sizes (9 -> h... -> 2 x 4, ELU)");
    f("model_lr", model_lr, "Adam learning rate of the dynamics model", Bounds::in(0, 10, true));
    f("model_batch", model_batch, "minibatch of transitions per member and Adam step");
    f("fit_epochs", fit_epochs, "epochs of the first fit on the babbling data");
    f("refit_epochs", refit_epochs, "epochs of each refit after policy rollouts are added", Bounds::at_least(0));
    f("data_every", data_every, "every K meta-iterations the pool policies run in MuJoCo, their episodes are added to "
                                "the data and the model is refitted (0: never)", Bounds::at_least(0));
    f("dynamics_file", dynamics_file, "meta-train: start from this fitted model (ml3 dynamics fit) instead of fitting "
                                      "one; meta-test: the model to use (empty: dynamics.ml3 beside the loss file)");
    f("policy_hidden", policy_hidden, "policy hidden sizes (10 -> h... -> 2, tanh, tanh output)");
    f("policy_init_scale", policy_init_scale, "scale of the policy's output-layer initialisation",
      Bounds::in(0, 100, true));
    f("inner_lr", inner_lr, "SGD step size of the policy on the learned loss (inner step and meta-test)",
      Bounds::in(0, 1e6, true));
    f("task_lr", task_lr, "SGD step size of the baseline at meta-test: the same steps on the task loss itself",
      Bounds::in(0, 1e6, true));
    f("loss_hidden", loss_hidden, "learned-loss hidden sizes (13 -> h... -> 1, ELU, softplus)");
    f("outer_lr", outer_lr, "Adam learning rate of the learned loss", Bounds::in(0, 10, true));
    f("grad_clip", grad_clip, "clip the meta-gradient's norm to this (0: no clipping)", Bounds::at_least(0));
    f("iterations", iterations, "outer (meta) iterations");
    f("pool_size", pool_size, "policies (each with its own train goal) trained through the model under the current loss");
    f("pool_reset_every", pool_reset_every, "a pool policy restarts (fresh policy, new goal and start) after this many steps");
    f("test_steps", test_steps, "gradient steps of a fresh policy at meta-test");
    f("test_goals", test_goals, "goals (one fresh policy each) at meta-test");
    f("test_seed", test_seed, "seed of the meta-test goals, starts and policies (independent of `seed`)",
      Bounds::at_least(0));
    f("eval_every", eval_every, "every K meta-iterations: test_steps learned-loss steps on eval_goals test goals, "
                                "final distance in MuJoCo (0: never)", Bounds::at_least(0));
    f("eval_goals", eval_goals, "test goals of that evaluation");
    f("checkpoint_every", checkpoint_every, "checkpoint (and loss.ml3, dynamics.ml3) every K meta-iterations");
  }
};

// ---- the reacher through the model ------------------------------------------------
// Fingertip = b + l1 (cos q0, sin q0) + l2 (cos(q0+q1), sin(q0+q1)).
struct Kinematics {
  double bx = 0, by = 0, l1 = 0, l2 = 0;
};

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

struct Problem {
  FunctionalMlp policy;
  DynamicsEnsemble model;
  Kinematics kin;
  int horizon = 50;
};

struct Rollout {
  Tensor states;   // [P, T+1, 4]
  Tensor obs;      // [P, T, 10] (observations of s_0 .. s_{T-1})
  Tensor actions;  // [P, T, 2]
};

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

// ---- MuJoCo: episodes, data, goals --------------------------------------------
// Episodes of T steps: observations [n, T+1, 10], actions [n, T, 2] (float64).
struct Episodes {
  std::vector<double> obs, act;
  int count = 0;
};

// Goals with their starts: episode i resets with reset_seeds[i] toward tasks[i].
struct GoalSet {
  std::vector<Task> tasks;
  std::vector<uint64_t> reset_seeds;
  Tensor s0, g;  // [n, 4], [n, 2] (float32)
};

class RealSim {
 public:
  explicit RealSim(const Config& c) : env_(make_env("reacher", c.subset("env."))) {
    const EnvSpec& sp = env_->spec();
    if (sp.obs_dim != kObs || sp.act_dim != kAct)
      throw Error(fmt::format("mbrl: the reacher model has {} observations and {} actions ({} and {} expected)",
                              sp.obs_dim, sp.act_dim, kObs, kAct));
  }
  int horizon() const { return env_->spec().episode_steps; }
  Env& env() { return *env_; }

  GoalSet goals(const std::vector<Task>& tasks, const std::vector<uint64_t>& seeds) {
    GoalSet gs{tasks, seeds, torch::empty({static_cast<int64_t>(tasks.size()), kState}, torch::kFloat64),
               torch::empty({static_cast<int64_t>(tasks.size()), 2}, torch::kFloat64)};
    std::vector<double> o(kObs);
    for (size_t i = 0; i < tasks.size(); ++i) {
      env_->reset(seeds[i], tasks[i], o.data());
      gs.s0[i].copy_(state_from_obs(torch::tensor(o, torch::kFloat64)));
      gs.g[i][0] = tasks[i].goal[0], gs.g[i][1] = tasks[i].goal[1];
    }
    gs.s0 = gs.s0.to(torch::kFloat32), gs.g = gs.g.to(torch::kFloat32);
    return gs;
  }

  // Policy i (of the batched parameters w) from goal set entry i; final
  // fingertip distances, and the episodes appended to *out when given.
  std::vector<double> run(const FunctionalMlp& net, const Params& w, const GoalSet& gs, Episodes* out) {
    torch::NoGradGuard ng;
    const int T = horizon();
    std::vector<double> finals;
    for (size_t i = 0; i < gs.tasks.size(); ++i) {
      const Params wi = batched_member(w, static_cast<int64_t>(i));
      Params one;
      for (const auto& p : wi) one.push_back(p.unsqueeze(0));
      std::vector<double> o(kObs), a(kAct);
      env_->reset(gs.reset_seeds[i], gs.tasks[i], o.data());
      double r = 0;
      bool term = false, trunc = false;
      StepInfo info;
      for (int t = 0; t < T; ++t) {
        if (out) out->obs.insert(out->obs.end(), o.begin(), o.end());
        const Tensor at = policy_action(net, torch::tensor(o, torch::kFloat64).to(torch::kFloat32).unsqueeze(0), one);
        for (int j = 0; j < kAct; ++j) a[j] = at[0][j].item<double>();
        if (out) out->act.insert(out->act.end(), a.begin(), a.end());
        env_->step(a.data(), o.data(), &r, &term, &trunc, &info);
      }
      if (out) out->obs.insert(out->obs.end(), o.begin(), o.end()), ++out->count;
      finals.push_back(env_->distance());
    }
    return finals;
  }

  // Random babbling: uniform actions in [-1, 1], each held for 1..hold steps,
  // from the reacher's own start distribution (train goals; the goal does not
  // act on the arm).
  Episodes babble(int episodes, int hold, uint64_t seed) {
    Episodes e;
    const int T = horizon();
    Rng rng(seed);
    std::vector<double> o(kObs), a(kAct);
    for (int k = 0; k < episodes; ++k) {
      const Task task = sample_tasks(*env_, Split::Train, mix_seed(seed, k), 1)[0];
      env_->reset(mix_seed(mix_seed(seed, kTagStart), k), task, o.data());
      double r = 0;
      bool term = false, trunc = false;
      StepInfo info;
      int left = 0;
      for (int t = 0; t < T; ++t) {
        if (left-- <= 0) {
          for (auto& x : a) x = rng.uniform(-1.0, 1.0);
          left = static_cast<int>(rng.uniform() * hold);
        }
        e.obs.insert(e.obs.end(), o.begin(), o.end());
        e.act.insert(e.act.end(), a.begin(), a.end());
        env_->step(a.data(), o.data(), &r, &term, &trunc, &info);
      }
      e.obs.insert(e.obs.end(), o.begin(), o.end());
      ++e.count;
    }
    return e;
  }

 private:
  std::unique_ptr<Env> env_;
};

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

// A model fitted from scratch on `data` (normalisation frozen from it).
struct Fitted {
  DynamicsEnsemble model;
  Adam opt;
  Kinematics kin;
  double kin_residual = 0, nll = 0;
};
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

struct LoadedModel {
  DynamicsEnsemble model;
  Kinematics kin;
};
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

// ---- training policies through the model ------------------------------------------
struct LossRef {
  const FunctionalMlp* net = nullptr;  // null: the task loss itself
  const Params* phi = nullptr;
};

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

struct TestCurve {
  std::vector<double> real_mean, model_mean, success;  // after 0..steps steps
  std::vector<std::vector<double>> real;               // [step][goal]
};

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
  for (int i = 0; i < n; ++i) seeds.push_back(mix_seed(mix_seed(seed, kEvalStream), static_cast<uint64_t>(i)));
  return sim.goals(sample_tasks(sim.env(), split, seed, n), seeds);
}

void write_loss_file(const std::string& path, const FunctionalMlp& net, const Params& phi, const nlohmann::json& meta) {
  Archive a("mbrl_loss");
  a.meta() = meta;
  a.meta()["format"] = 1;
  a.meta()["sizes"] = net.sizes();
  a.meta()["input"] = {"scaled observation (10)", "action (2)", "10 x fingertip distance (detached)"};
  put_params(a, "phi/", phi);
  a.save(path);
}

struct LoadedLoss {
  FunctionalMlp net;
  Params phi;
};
LoadedLoss load_loss_file(const std::string& path) {
  const Archive a = Archive::load(path, "mbrl_loss");
  std::vector<int> sizes;
  try {
    sizes = a.meta().at("sizes").get<std::vector<int>>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": mbrl loss metadata lacks 'sizes'");
  }
  if (sizes.size() < 2 || sizes.front() != kObs + kAct + 1 || sizes.back() != 1)
    throw Error(fmt::format("{}: an mbrl loss must be {}-...-1", path, kObs + kAct + 1));
  LoadedLoss l{FunctionalMlp(sizes, Activation::Elu, true), {}};
  l.phi = get_mlp_params(a, "phi/", l.net);
  if (!all_finite(l.phi)) throw Error(path + ": the loss holds non-finite values");
  return l;
}

// ---- the meta-trainer ---------------------------------------------------------
class MbrlMetaTrainer : public Algorithm {
 public:
  MbrlMetaTrainer(const Config& c, const std::string& run_dir)
      : cfg_(c), run_dir_(run_dir), s_(read<MbrlSection>(c, "mbrl.")), seed_(static_cast<uint64_t>(c.get_int("seed"))),
        sim_(c), loss_net_(loss_sizes(s_.loss_hidden), Activation::Elu, true) {
    set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
    pb_.policy = policy_net(s_);
    pb_.horizon = sim_.horizon();
    phi_ = loss_net_.init(mix_seed(seed_, kTagLoss));
    phi_opt_ = Adam(phi_, 1e-8);
    pool_ = fresh_policies(pb_.policy, seed_, kTagPolicy, 0, s_.pool_size, s_.policy_init_scale);
    for (int i = 0; i < s_.pool_size; ++i) slots_.push_back(i), ages_.push_back((i * s_.pool_reset_every) / s_.pool_size);
    next_slot_ = s_.pool_size;
    refresh_goals();
    eval_set_ = eval_goals(sim_, Split::Test, static_cast<uint64_t>(s_.test_seed), s_.eval_goals);
  }
  std::string label() const override { return "meta-train mbrl reacher"; }
  int iterations() const override { return s_.iterations; }
  int checkpoint_every() const override { return s_.checkpoint_every; }
  int eval_every() const override { return s_.eval_every; }
  std::vector<std::string> columns() const override {
    return {"iteration",     "wall_seconds",        "task_loss",          "inner_loss",
            "grad_norm",     "pool_model_distance", "pool_real_distance", "data_episodes",
            "model_nll",     "step_ms",             "eval_real_distance", "eval_model_distance"};
  }

  nlohmann::json evaluate() override {
    ensure_model();
    const Params w0 = fresh_policies(pb_.policy, static_cast<uint64_t>(s_.test_seed), kTagTestPolicy, 0,
                                     s_.eval_goals, s_.policy_init_scale);
    const TestCurve c = test_policies(pb_, sim_, {&loss_net_, &phi_}, eval_set_, w0, s_.test_steps, s_.inner_lr,
                                      sim_.env().spec().success_threshold, nullptr);
    last_eval_ = c.real_mean.back();
    return {{"eval_real_distance", c.real_mean.back()}, {"eval_model_distance", c.model_mean.back()}};
  }

  nlohmann::json iterate(int it) override {
    ensure_model();
    const auto t0 = std::chrono::steady_clock::now();
    Params w = clone_params(pool_, true);
    const Rollout r0 = model_rollout(pb_, w, goals_.s0, goals_.g);
    const Tensor lin = learned_loss(loss_net_, phi_, r0, goals_.g, pb_.kin).sum();
    const auto g = torch::autograd::grad({lin}, w, {}, /*retain_graph=*/true, /*create_graph=*/true);
    Params w1;
    for (size_t i = 0; i < w.size(); ++i) w1.push_back(w[i] - s_.inner_lr * g[i]);
    const Rollout r1 = model_rollout(pb_, w1, goals_.s0, goals_.g);
    const Tensor lt = task_loss(r1, goals_.g, pb_.kin).mean();
    // The loss's last bias acts only through the softplus; unused tensors get 0.
    std::vector<Tensor> gphi = torch::autograd::grad({lt}, phi_, {}, c10::nullopt, false, /*allow_unused=*/true);
    for (size_t i = 0; i < gphi.size(); ++i)
      if (!gphi[i].defined()) gphi[i] = torch::zeros_like(phi_[i]);
    const double task = lt.item<double>();
    const double gnorm = clip_grad_norm(gphi, s_.grad_clip);
    Params next;
    for (const auto& t : w1) next.push_back(t.detach().contiguous());
    if (!std::isfinite(task) || !std::isfinite(gnorm) || !all_finite(next))
      throw NonFiniteError(fmt::format("non-finite mbrl meta-step (task loss {}, gradient norm {})", task, gnorm));
    phi_opt_.step(phi_, gphi, s_.outer_lr);
    const double model_dist =
        safe_norm(tip_of(r1.states.select(1, pb_.horizon), pb_.kin) - goals_.g).mean().item<double>();
    pool_ = next;
    nlohmann::json row = {{"iteration", it}, {"task_loss", task}, {"inner_loss", lin.item<double>() / s_.pool_size},
                          {"grad_norm", gnorm}, {"pool_model_distance", model_dist}};
    // Real rollouts of the pool (after its step) join the data; the model is refitted.
    if (s_.data_every > 0 && it % s_.data_every == 0) {
      Episodes fresh;
      const std::vector<double> finals = sim_.run(pb_.policy, pool_, goals_, &fresh);
      append(data_, fresh);
      double sum = 0;
      for (double f : finals) sum += f;
      row["pool_real_distance"] = sum / finals.size();
      if (s_.refit_epochs > 0) {
        const auto [x, y] = transitions(obs_tensor(data_, pb_.horizon), act_tensor(data_, pb_.horizon));
        nll_ = fit_model(pb_.model, model_opt_, x, y, s_.refit_epochs, s_.model_batch, s_.model_lr,
                         mix_seed(mix_seed(seed_, kTagFit), static_cast<uint64_t>(++fits_)));
      }
    }
    // Pool schedule: old policies restart with a new goal and start.
    bool changed = false;
    for (int i = 0; i < s_.pool_size; ++i) {
      if (++ages_[i] < s_.pool_reset_every) continue;
      const Params fresh = fresh_policies(pb_.policy, seed_, kTagPolicy, next_slot_, 1, s_.policy_init_scale);
      for (size_t j = 0; j < pool_.size(); ++j) pool_[j][i].copy_(fresh[j][0]);
      slots_[i] = next_slot_++, ages_[i] = 0, changed = true;
    }
    if (changed) refresh_goals();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    step_ms_.push_back(ms);
    last_task_ = task;
    row["data_episodes"] = data_.count;
    row["model_nll"] = nll_;
    row["step_ms"] = ms;
    return row;
  }

  std::string progress_text(const nlohmann::json& r) const override {
    return fmt::format("task loss {:.3f} | pool model distance {:.3f} | eval MuJoCo distance {:.3f} | {:.0f} ms/it",
                       r["task_loss"].get<double>(), r["pool_model_distance"].get<double>(), last_eval_,
                       r["step_ms"].get<double>());
  }

  void save(Archive& a) const override {
    put_params(a, "phi/", phi_);
    phi_opt_.save(a, "phi_adam/");
    put_params(a, "pool/", pool_);
    std::vector<double> slots(slots_.begin(), slots_.end()), ages(ages_.begin(), ages_.end());
    a.put_f64("slots", slots);
    a.put_f64("ages", ages);
    a.put_f64("counters", {static_cast<double>(next_slot_), static_cast<double>(fits_), last_eval_, nll_,
                           model_ready_ ? 1.0 : 0.0});
    if (!model_ready_) return;
    pb_.model.put(a, "model/");
    model_opt_.save(a, "model_adam/");
    a.meta()["kinematics"] = kinematics_json(pb_.kin);
    a.put("data_obs", "f64", {data_.count, pb_.horizon + 1, kObs}, data_.obs.data(), data_.obs.size() * 8);
    a.put("data_act", "f64", {data_.count, pb_.horizon, kAct}, data_.act.data(), data_.act.size() * 8);
  }

  void load(const Archive& a) override {
    phi_ = get_params(a, "phi/", phi_.size());
    phi_opt_.load(a, "phi_adam/");
    pool_ = get_params(a, "pool/", pool_.size());
    for (auto& p : pool_) p = p.detach();
    const std::vector<double> slots = a.get_f64("slots"), ages = a.get_f64("ages"), c = a.get_f64("counters");
    if (slots.size() != slots_.size() || ages.size() != ages_.size() || c.size() != 5)
      throw Error(a.path() + ": the checkpoint's policy pool does not match mbrl.pool_size");
    for (size_t i = 0; i < slots_.size(); ++i) slots_[i] = static_cast<int64_t>(slots[i]), ages_[i] = static_cast<int>(ages[i]);
    next_slot_ = static_cast<int64_t>(c[0]), fits_ = static_cast<int64_t>(c[1]), last_eval_ = c[2], nll_ = c[3];
    refresh_goals();
    if (c[4] == 0) return;
    pb_.model = DynamicsEnsemble::get(a, "model/");
    model_opt_ = Adam(pb_.model.params(), 1e-8);
    model_opt_.load(a, "model_adam/");
    pb_.kin = kinematics_of(a.meta().value("kinematics", nlohmann::json::object()), a.path());
    const Blob& o = a.get("data_obs");
    const Blob& ac = a.get("data_act");
    data_.count = static_cast<int>(o.shape.at(0));
    data_.obs.resize(o.numel()), data_.act.resize(ac.numel());
    std::memcpy(data_.obs.data(), o.bytes.data(), o.bytes.size());
    std::memcpy(data_.act.data(), ac.bytes.data(), ac.bytes.size());
    model_ready_ = true;
  }

  void write_artifacts(const std::string& run_dir, int it) const override {
    write_loss_file((fs::path(run_dir) / "loss.ml3").string(), loss_net_, phi_,
                    {{"seed", cfg_.get_int("seed")}, {"iterations", it}, {"config", cfg_.to_yaml()}});
    if (model_ready_) pb_.model.save((fs::path(run_dir) / "dynamics.ml3").string(), model_meta(pb_.kin, cfg_));
  }

  nlohmann::json summary(double) override {
    return {{"algorithm", "mbrl"},
            {"seed", cfg_.get_int("seed")},
            {"pool_size", s_.pool_size},
            {"meta_iteration_seconds_median", median(step_ms_) / 1000.0},
            {"final_task_loss", last_task_},
            {"eval_real_distance", last_eval_},
            {"data_episodes", data_.count},
            {"loss_file", (fs::path(run_dir_) / "loss.ml3").string()},
            {"dynamics_file", (fs::path(run_dir_) / "dynamics.ml3").string()}};
  }
  Plot plot() const override {
    return {"mbrl", "meta_curve.png", fmt::format("ML3 model-based reacher meta-training (seed {})", cfg_.get_int("seed"))};
  }

 private:
  // The first iteration fits the model (or loads mbrl.dynamics_file) on babbling data.
  void ensure_model() {
    if (model_ready_) return;
    data_ = sim_.babble(s_.babble_episodes, s_.babble_hold, mix_seed(seed_, kTagBabble));
    if (!s_.dynamics_file.empty()) {
      LoadedModel l = load_model_file(s_.dynamics_file);
      pb_.model = std::move(l.model), pb_.kin = l.kin;
      model_opt_ = Adam(pb_.model.params(), 1e-8);
    } else {
      Fitted f = fit_from_scratch(s_, seed_, data_, pb_.horizon);
      pb_.model = std::move(f.model), model_opt_ = std::move(f.opt), pb_.kin = f.kin, nll_ = f.nll;
    }
    model_ready_ = true;
  }
  void refresh_goals() {
    std::vector<Task> tasks;
    std::vector<uint64_t> seeds;
    for (int64_t k : slots_) {
      tasks.push_back(sample_tasks(sim_.env(), Split::Train, mix_seed(mix_seed(seed_, kTagGoal), k), 1)[0]);
      seeds.push_back(mix_seed(mix_seed(seed_, kTagStart), static_cast<uint64_t>(k)));
    }
    goals_ = sim_.goals(tasks, seeds);
  }

  Config cfg_;
  std::string run_dir_;
  MbrlSection s_;
  uint64_t seed_;
  RealSim sim_;
  Problem pb_;
  FunctionalMlp loss_net_;
  Params phi_, pool_;
  Adam phi_opt_, model_opt_;
  bool model_ready_ = false;
  Episodes data_;
  std::vector<int64_t> slots_;
  std::vector<int> ages_;
  int64_t next_slot_ = 0, fits_ = 0;
  GoalSet goals_, eval_set_;
  double last_eval_ = NAN, nll_ = NAN, last_task_ = NAN;
  std::vector<double> step_ms_;
};

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

}  // namespace

void declare_mbrl(Schema& s) { declare<MbrlSection>(s, "mbrl."); }

void check_mbrl_config(const Config& c, const std::string& source) {
  if (c.get_string("env.name") != "reacher")
    throw Error(fmt::format("{}: algorithm 'mbrl' runs on env.name=reacher, not '{}'", source, c.get_string("env.name")));
  if (c.get_int("mbrl.holdout_episodes") >= c.get_int("mbrl.babble_episodes"))
    throw Error(source + ": mbrl.holdout_episodes must be smaller than mbrl.babble_episodes");
}

std::string run_dynamics_fit(const Config& cfg, const std::string& out_dir, bool force, bool quiet) {
  check_mbrl_config(cfg, "config");
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  start_output(out_dir, force, cfg);
  RealSim sim(cfg);
  const int T = sim.horizon();
  Progress progress("dynamics fit", 3, quiet);
  const auto t0 = std::chrono::steady_clock::now();
  const Episodes all = sim.babble(s.babble_episodes, s.babble_hold, mix_seed(seed, kTagBabble));
  progress.update(1, fmt::format("{} babbling episodes", all.count));
  const int train_n = all.count - s.holdout_episodes;
  Episodes train;
  train.count = train_n;
  train.obs.assign(all.obs.begin(), all.obs.begin() + static_cast<int64_t>(train_n) * (T + 1) * kObs);
  train.act.assign(all.act.begin(), all.act.begin() + static_cast<int64_t>(train_n) * T * kAct);
  Fitted f = fit_from_scratch(s, seed, train, T);
  const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.update(2, fmt::format("fitted, NLL {:.3f}", f.nll));
  const Tensor obs = obs_tensor(all, T).narrow(0, train_n, s.holdout_episodes);
  const Tensor act = act_tensor(all, T).narrow(0, train_n, s.holdout_episodes);
  nlohmann::json j = {{"model_file", (fs::path(out_dir) / "dynamics.ml3").string()},
                      {"train_episodes", train_n},
                      {"train_transitions", train_n * T},
                      {"members", s.ensemble},
                      {"final_nll", f.nll},
                      {"fit_seconds", fit_seconds},
                      {"kinematics", kinematics_json(f.kin)},
                      {"kinematics_max_residual", f.kin_residual},
                      {"held_out", model_errors(f.model, f.kin, obs, act)}};
  f.model.save(j["model_file"].get<std::string>(), model_meta(f.kin, cfg));
  progress.update(3, "written");
  progress.finish();
  write_file_atomic((fs::path(out_dir) / "fit.json").string(), j.dump(2) + "\n");
  return j.dump(2);
}

std::string run_dynamics_eval(const std::string& model_file, const Config& cfg) {
  check_mbrl_config(cfg, "config");
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const LoadedModel lm = load_model_file(model_file);
  RealSim sim(cfg);
  const int T = sim.horizon();
  const Episodes e = sim.babble(s.holdout_episodes, s.babble_hold,
                                mix_seed(static_cast<uint64_t>(s.test_seed), kTagEvalBabble));
  return nlohmann::json{{"model_file", model_file},
                        {"held_out", model_errors(lm.model, lm.kin, obs_tensor(e, T), act_tensor(e, T))}}
      .dump(2);
}

std::string run_mbrl_meta_test(const std::string& loss_file, const Config& cfg, const std::string& split,
                               const std::string& out_dir, bool force, bool quiet) {
  check_mbrl_config(cfg, "config");
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const LoadedLoss loss = load_loss_file(loss_file);
  const std::string model_file =
      s.dynamics_file.empty() ? (fs::path(loss_file).parent_path() / "dynamics.ml3").string() : s.dynamics_file;
  LoadedModel lm = load_model_file(model_file);
  start_output(out_dir, force, cfg);
  RealSim sim(cfg);
  Problem pb{policy_net(s), std::move(lm.model), lm.kin, sim.horizon()};
  const GoalSet gs = eval_goals(sim, parse_split(split), static_cast<uint64_t>(s.test_seed), s.test_goals);
  const Params w0 =
      fresh_policies(pb.policy, static_cast<uint64_t>(s.test_seed), kTagTestPolicy, 0, s.test_goals, s.policy_init_scale);
  Progress progress("meta-test mbrl " + split, 2 * (s.test_steps + 1), quiet);
  int done = 0;
  const double thr = sim.env().spec().success_threshold;
  const auto t0 = std::chrono::steady_clock::now();
  const TestCurve learned = test_policies(pb, sim, {&loss.net, &loss.phi}, gs, w0, s.test_steps, s.inner_lr, thr,
                                          [&](int k) { progress.update(++done, fmt::format("learned loss step {}", k)); });
  const TestCurve task = test_policies(pb, sim, {}, gs, w0, s.test_steps, s.task_lr, thr,
                                       [&](int k) { progress.update(++done, fmt::format("task loss step {}", k)); });
  progress.finish();
  const nlohmann::json j = {{"loss_file", loss_file},
                            {"dynamics_file", model_file},
                            {"split", split},
                            {"goals", s.test_goals},
                            {"steps", s.test_steps},
                            {"lr", s.inner_lr},
                            {"task_lr", s.task_lr},
                            {"success_threshold", thr},
                            {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                            {"learned_loss", curve_json(learned, s.test_steps)},
                            {"task_loss", curve_json(task, s.test_steps)}};
  write_file_atomic((fs::path(out_dir) / "results.json").string(), j.dump(2) + "\n");
  return j.dump(2);
}

std::string mbrl_meta_test_table(const std::string& results_json) {
  const auto j = nlohmann::json::parse(results_json);
  std::string out = fmt::format("model-based reacher, {} goals ({}), {} SGD steps through the model (learned loss "
                                "at lr {}, task loss at lr {}); final fingertip distance in MuJoCo (m), mean over "
                                "goals:\n",
                                j["goals"].get<int>(), j["split"].get<std::string>(), j["steps"].get<int>(),
                                j["lr"].get<double>(), j["task_lr"].get<double>());
  out += fmt::format("{:>6} {:>14} {:>14} {:>16} {:>16}\n", "step", "learned loss", "task loss", "learned success",
                     "task success");
  const auto& l = j["learned_loss"];
  const auto& t = j["task_loss"];
  for (size_t k = 0; k < l["final_distance_mean_after_steps"].size(); ++k)
    out += fmt::format("{:>6} {:>14.4f} {:>14.4f} {:>15.0f}% {:>15.0f}%\n", k,
                       l["final_distance_mean_after_steps"][k].get<double>(),
                       t["final_distance_mean_after_steps"][k].get<double>(),
                       100 * l["success_rate_after_steps"][k].get<double>(),
                       100 * t["success_rate_after_steps"][k].get<double>());
  return out;
}

nlohmann::json mbrl_gradient_check(const Config& cfg, double eps) {
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  RealSim sim(cfg);
  const Episodes data = sim.babble(s.babble_episodes, s.babble_hold, mix_seed(seed, kTagBabble));
  Fitted f = fit_from_scratch(s, seed, data, sim.horizon());
  // float64 copies of the model and one policy.
  const Problem pb{policy_net(s), f.model.to_float64(), f.kin, sim.horizon()};
  const GoalSet gs = eval_goals(sim, Split::Test, 0, 1);
  const Tensor s0 = gs.s0.to(torch::kFloat64), g = gs.g.to(torch::kFloat64);
  Params w = fresh_policies(pb.policy, seed, kTagTestPolicy, 0, 1, 1.0);
  for (auto& p : w) p = p.to(torch::kFloat64).requires_grad_(true);
  auto loss_at = [&](const Params& p) { return task_loss(model_rollout(pb, p, s0, g), g, pb.kin).sum(); };
  const Tensor l = loss_at(w);
  const auto grads = torch::autograd::grad({l}, w);
  torch::NoGradGuard ng;
  Rng rng(seed);
  double dir = 0, sq = 0;
  Params plus, minus;
  for (size_t i = 0; i < w.size(); ++i) {
    Tensor v = torch::empty_like(w[i]);
    auto* vd = v.data_ptr<double>();
    for (int64_t k = 0; k < v.numel(); ++k) vd[k] = rng.normal();
    dir += (grads[i] * v).sum().item<double>();
    sq += grads[i].pow(2).sum().item<double>();
    plus.push_back(w[i].detach() + eps * v), minus.push_back(w[i].detach() - eps * v);
  }
  const double fd = (loss_at(plus).item<double>() - loss_at(minus).item<double>()) / (2 * eps);
  return {{"grad_norm", std::sqrt(sq)}, {"directional_autograd", dir}, {"directional_fd", fd}, {"task_loss", l.item<double>()}};
}

AlgorithmEntry mbrl_algorithm() {
  AlgorithmEntry e;
  e.name = "mbrl";
  e.command = Command::MetaTrain;
  e.description = "ML3's model-based reacher: a learned loss meta-trained through a learned dynamics ensemble";
  e.needs_env = true;
  e.run_defaults = RunSection{0, 1, 1};
  e.declare = [](Schema& s, const std::string&) { declare_mbrl(s); };
  e.check = check_mbrl_config;
  e.make = [](const Config& c, const std::string& run_dir) -> std::unique_ptr<Algorithm> {
    return std::make_unique<MbrlMetaTrainer>(c, run_dir);
  };
  e.meta_test = run_mbrl_meta_test;
  e.meta_test_table = mbrl_meta_test_table;
  return e;
}

}  // namespace ml3
