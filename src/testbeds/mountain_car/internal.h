#pragma once
// The mountain car meta-problem's parts, shared by its files (internal to
// src/testbeds/mountain_car/): the config section, the differentiable
// rollout and losses, policy training on a loss, and the loss file
// (mountain_car.cpp); the meta-trainer (meta_trainer.cpp).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>

#include "core/adam.h"
#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "models/dynamics.h"
#include "models/nets.h"
#include "src/run/algorithm.h"
#include "src/testbeds/mountain_car/engine.h"
#include "src/run/run.h"
#include "src/testbeds/mountain_car/mountain_car.h"

namespace ml3::mcar {

namespace fs = std::filesystem;

// mountain_car.*: the meta-problem's settings.
struct MountainCarSection {
  bool shaping = true;
  int horizon = 35;
  std::vector<int> loss_hidden{400, 400};
  double inner_lr = 1e-3, outer_lr = 1e-3, grad_clip = 0;
  int iterations = 300, pool_size = 4, pool_reset_every = 30;
  double init_scale = 0.5;
  int test_steps = 50, test_seeds = 5, test_seed = 0;
  double goal_tolerance = 0.01;
  int eval_every = 50, checkpoint_every = 100;
  std::string implementation = "eigen";
  template <class F>
  void fields(F& f) {
    f("shaping", shaping,
      "task loss pulls the first 15 states to the intermediate goal (-0.947, -0.0055), the rest to the goal "
      "(false: all states to the goal)");
    f("horizon", horizon, "rollout steps T");
    f("loss_hidden", loss_hidden, "learned-loss hidden sizes (4-h...-1, ELU, biases)");
    f("inner_lr", inner_lr, "inner SGD step size (also at meta-test)", Bounds::in(0.0, 1e6, true));
    f("outer_lr", outer_lr, "Adam learning rate of the learned loss", Bounds::in(0.0, 1e6, true));
    f("grad_clip", grad_clip, "clip the meta-gradient's norm to this (0: no clipping)", Bounds::at_least(0.0));
    f("iterations", iterations, "outer (meta) iterations");
    f("pool_size", pool_size,
      "policies trained in parallel under the current loss (1 with pool_reset_every=1: the reference, one "
      "inner step from a fresh policy)");
    f("pool_reset_every", pool_reset_every,
      "a pool policy restarts from a fresh initialisation after this many steps");
    f("init_scale", init_scale, "policy weights ~ U(-scale, scale) (meta-train and meta-test)",
      Bounds::in(0.0, 1e6, true));
    f("test_steps", test_steps, "SGD steps on the learned loss at meta-test");
    f("test_seeds", test_seeds, "policy initialisations at meta-test");
    f("test_seed", test_seed, "seed of the meta-test initialisations (independent of `seed`)", Bounds::at_least(0));
    f("goal_tolerance", goal_tolerance, "at the goal: final position >= 0.5 - tolerance", Bounds::at_least(0.0));
    f("eval_every", eval_every, "meta-test the first test initialisation every K meta-iterations (0: never)",
      Bounds::at_least(0));
    f("checkpoint_every", checkpoint_every, "checkpoint (and loss.ml3) every K meta-iterations");
    f("implementation", implementation,
      "meta-gradient: eigen (derived by hand, forward-mode tangents through the rollout; float32) or "
      "autograd (LibTorch, the reference)",
      Choices{{"eigen", "autograd"}});
  }
};


using torch::Tensor;

using namespace mc;  // the physics and goals (src/testbeds/mountain_car/engine.h)
constexpr uint64_t kTagLoss = 1, kTagPool = 2, kTagTest = 3;

// Value clamped, gradient passed through (the reference clamps `.data` in place).
Tensor st_clamp(const Tensor& x, double lo, double hi);

struct Rollout {
  Tensor states;   // [P, T+1, 2]
  Tensor actions;  // [P, T] (clipped)
};

// Rollouts of P linear policies w [P, 2] from the start state.
Rollout rollout(const Tensor& w, int horizon);

Tensor point(const double* xy, const Tensor& like);

// Per policy [P]: |S - goal|, or with shaping |S[:15] - intermediate| + |S[15:] - goal|.
Tensor task_loss(const Rollout& r, bool shaped);

// The learned loss per policy [P]: mean over t < T of M_phi(p_t, v_t, a_t, d),
// d = |s_T - goal| detached.
Tensor learned_loss(const FunctionalMlp& net, const Params& phi, const Rollout& r);

// Final position at the goal (the position bound is the goal's position).
bool at_goal(double final_position, double tolerance);

int max_consecutive(const std::vector<double>& finals, double tolerance);

struct Settings {
  int horizon = 35, pool = 1, reset_every = 1, test_steps = 2, test_seeds = 1;
  double inner_lr = 1e-3, outer_lr = 1e-3, init_scale = 0.5, tolerance = 0.01, clip = 0;
  bool shaping = true, eigen = true;
  std::vector<int> hidden{400, 400};
  uint64_t seed = 0, test_seed = 0;
  explicit Settings(const Config& c)
      : horizon(static_cast<int>(c.get_int("mountain_car.horizon"))),
        pool(static_cast<int>(c.get_int("mountain_car.pool_size"))),
        reset_every(static_cast<int>(c.get_int("mountain_car.pool_reset_every"))),
        test_steps(static_cast<int>(c.get_int("mountain_car.test_steps"))),
        test_seeds(static_cast<int>(c.get_int("mountain_car.test_seeds"))),
        inner_lr(c.get_double("mountain_car.inner_lr")),
        outer_lr(c.get_double("mountain_car.outer_lr")),
        init_scale(c.get_double("mountain_car.init_scale")),
        tolerance(c.get_double("mountain_car.goal_tolerance")),
        clip(c.get_double("mountain_car.grad_clip")),
        shaping(c.get_bool("mountain_car.shaping")),
        eigen(c.get_string("mountain_car.implementation") == "eigen"),
        hidden(c.get_int_list("mountain_car.loss_hidden")),
        seed(static_cast<uint64_t>(c.get_int("seed"))),
        test_seed(static_cast<uint64_t>(c.get_int("mountain_car.test_seed"))) {}
  std::vector<int> sizes() const {
    std::vector<int> s{4};
    s.insert(s.end(), hidden.begin(), hidden.end());
    s.push_back(1);
    return s;
  }
};

// A fresh policy: w ~ U(-scale, scale)^2.
std::array<double, 2> init_policy(uint64_t seed, double scale);
uint64_t test_init_seed(uint64_t test_seed, int s);

Tensor weights_tensor(const std::vector<std::array<double, 2>>& ws, torch::Dtype dtype = torch::kFloat32);

// Meta-test from one initialisation: `steps` SGD steps on the learned loss
// (phi non-empty) or on the unshaped task loss; the final position after each.
std::vector<double> train_policy(const FunctionalMlp& net, const Params& phi, std::array<double, 2> w0,
                                 const Settings& s, std::array<double, 2>* w_out = nullptr);

// One meta-step with LibTorch autograd (create_graph through the inner step):
// the reference the hand-derived engine is tested against. gphi: dL_T/dphi
// per tensor of phi.
MountainCarStep autograd_meta_step(const FunctionalMlp& net, const Params& phi,
                                   const std::vector<std::array<double, 2>>& pool, const Settings& s,
                                   std::vector<Tensor>& gphi);

// phi's tensors as new tensors shaped like `like`, from a flat vector
// (core/small_mlp.h's layout: W_0, b_0, ...).
template <typename T>
Params tensors_of(const std::vector<T>& flat, const Params& like) {
  Params out = clone_params(like, false);
  set_from_flat(flat, out);
  return out;
}


struct LoadedLoss {
  FunctionalMlp net;
  Params phi;
  bool shaping = false;
};

LoadedLoss load_loss(const std::string& path);

nlohmann::json policy_results(const FunctionalMlp& net, const Params& phi, const Settings& s, Progress& progress,
                              int& done);


}  // namespace ml3::mcar
