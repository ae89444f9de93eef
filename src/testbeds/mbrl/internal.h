#pragma once
// The model-based reacher's parts, shared by its files (internal to
// src/testbeds/mbrl/): the config section, the reacher through the learned
// model (model.cpp), MuJoCo data and the dynamics fit (data.cpp), and the
// helpers of the meta-trainer (meta_trainer.cpp) and the commands
// (commands.cpp).
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
#include "src/run/algorithm.h"
#include "src/testbeds/mbrl/mbrl.h"
#include "src/policy/pg.h"
#include "src/run/run.h"

namespace ml3::mbrl {

namespace fs = std::filesystem;


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

Tensor tip_of(const Tensor& s, const Kinematics& k);

Tensor model_input(const Tensor& s, const Tensor& a);

// The reacher's observation from a state and a goal (envs/reacher/reacher.h).
Tensor obs_of(const Tensor& s, const Tensor& g, const Kinematics& k);

Tensor scaled(const Tensor& obs);

// State and fingertip from observations [..., 10].
Tensor state_from_obs(const Tensor& o);
Tensor tip_from_obs(const Tensor& o);
// s' - s with the angle differences wrapped to (-pi, pi].
Tensor state_change(const Tensor& s, const Tensor& s1);

Tensor safe_norm(const Tensor& x);

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

Tensor policy_action(const FunctionalMlp& net, const Tensor& obs, const Params& w);

// P policies (batched parameters) through the model from s0 [P, 4] toward goals g [P, 2].
Rollout model_rollout(const Problem& pb, const Params& w, const Tensor& s0, const Tensor& g);

// Per policy [P]: 10 |tip_T - g| + mean_t |tip_t - g| + 1e-4 mean_t |qdot_t| over t = 0..T.
Tensor task_loss(const Rollout& r, const Tensor& g, const Kinematics& k);

// Per policy [P]: mean over t < T of softplus(M_phi(scaled obs_t, a_t, 10 |tip_t - g| detached)).
Tensor learned_loss(const FunctionalMlp& net, const Params& phi, const Rollout& r, const Tensor& g, const Kinematics& k);

FunctionalMlp policy_net(const MbrlSection& s);
std::vector<int> loss_sizes(const std::vector<int>& hidden);

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

Tensor obs_tensor(const Episodes& e, int T);
Tensor act_tensor(const Episodes& e, int T);
void append(Episodes& to, const Episodes& from);

// Least-squares forward kinematics from the observed fingertips; the largest residual (m).
Kinematics fit_kinematics(const Tensor& obs, double* max_residual);

// Transitions of episodes: model inputs [N, 8] and state changes [N, 4] (float32).
std::pair<Tensor, Tensor> transitions(const Tensor& obs, const Tensor& act);

// `epochs` passes of Gaussian-NLL Adam steps; each member sees its own
// permutation (seeded by `seed`). Returns the last epoch's mean NLL.
double fit_model(DynamicsEnsemble& m, Adam& opt, const Tensor& x, const Tensor& y, int epochs, int batch, double lr,
                 uint64_t seed);

// Held-out errors against MuJoCo: one-step (per state dimension, RMSE, and
// the zero-change baseline) and open-loop over the horizon (the model rolled
// out from each episode's start with its recorded actions).
nlohmann::json model_errors(const DynamicsEnsemble& m, const Kinematics& k, const Tensor& obs, const Tensor& act);

nlohmann::json kinematics_json(const Kinematics& k);
Kinematics kinematics_of(const nlohmann::json& j, const std::string& path);

DynamicsSpec model_spec(const MbrlSection& s);

// A model fitted from scratch on `data` (normalisation frozen from it).
struct Fitted {
  DynamicsEnsemble model;
  Adam opt;
  Kinematics kin;
  double kin_residual = 0, nll = 0;
};
Fitted fit_from_scratch(const MbrlSection& s, uint64_t seed, const Episodes& data, int T);

nlohmann::json model_meta(const Kinematics& k, const Config& cfg);

struct LoadedModel {
  DynamicsEnsemble model;
  Kinematics kin;
};
LoadedModel load_model_file(const std::string& path);

// ---- training policies through the model ------------------------------------------
struct LossRef {
  const FunctionalMlp* net = nullptr;  // null: the task loss itself
  const Params* phi = nullptr;
};

// One SGD step of every policy on its loss through the model (no graph kept).
Params policy_step(const Problem& pb, const LossRef& loss, const Params& w, const GoalSet& gs, double lr);

struct TestCurve {
  std::vector<double> real_mean, model_mean, success;  // after 0..steps steps
  std::vector<std::vector<double>> real;               // [step][goal]
};

TestCurve test_policies(const Problem& pb, RealSim& sim, const LossRef& loss, const GoalSet& gs, Params w, int steps,
                        double lr, double threshold, const std::function<void(int)>& tick);

Params fresh_policies(const FunctionalMlp& net, uint64_t seed, uint64_t tag, int64_t first, int64_t n, double scale);

// Test-split goals of the evaluation convention (ml3 eval): goal i of
// sample_tasks(split, seed), start of seed mix_seed(mix_seed(seed, kEvalStream), i).
GoalSet eval_goals(RealSim& sim, Split split, uint64_t seed, int n);

void write_loss_file(const std::string& path, const FunctionalMlp& net, const Params& phi, const nlohmann::json& meta);

MlpLossFile load_loss_file(const std::string& path);

void start_output(const std::string& out_dir, bool force, const Config& cfg);

nlohmann::json curve_json(const TestCurve& c, int steps);


}  // namespace ml3::mbrl
