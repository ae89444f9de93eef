#pragma once
// The typed config sections of policy learning. Each struct declares its keys
// once (type, default, range, help; see core/config.h); schemas, the
// `--print-schema` tables and the config readers are all generated from these
// declarations. LibTorch-free.
#include <string>
#include <vector>

#include "core/config.h"
#include "deploy/policy_section.h"  // policy.*: shared with the exporter

namespace ml3 {

// value.*: the value network (baseline / critic).
struct ValueSection {
  std::vector<int> hidden{64, 64};
  std::string activation = "tanh";
  template <class F>
  void fields(F& f) {
    f("hidden", hidden, "value MLP hidden sizes");
    f("activation", activation, "value hidden activation", Choices{{"tanh", "relu", "elu"}});
  }
};

// optim.*: the optimisers of the policy-gradient learners.
struct OptimSection {
  double lr = 3e-4;
  double value_lr = 1e-3;
  double adam_eps = 1e-5;
  bool anneal_lr = true;
  double max_grad_norm = 0.5;
  template <class F>
  void fields(F& f) {
    f("lr", lr, "policy Adam learning rate", Bounds::in(0.0, 10.0, true));
    f("value_lr", value_lr, "value Adam learning rate", Bounds::in(0.0, 10.0, true));
    f("adam_eps", adam_eps, "Adam epsilon", Bounds::in(0.0, 1.0, true));
    f("anneal_lr", anneal_lr, "decay both learning rates linearly to 0 over the run");
    f("max_grad_norm", max_grad_norm, "global gradient-norm clip (0: off)", Bounds::at_least(0.0));
  }
};

// pg.*: advantages and minibatching of the policy-gradient learners.
struct PgSection {
  double gamma = 0.99;
  double gae_lambda = 0.95;
  bool normalize_advantages = true;
  double entropy_coef = 0.0;
  int epochs = 10;
  int minibatches = 32;
  std::string backend = "fast";
  template <class F>
  void fields(F& f) {
    f("gamma", gamma, "discount", Bounds::in(0.0, 1.0));
    f("gae_lambda", gae_lambda, "GAE lambda (1: Monte-Carlo return minus baseline)", Bounds::in(0.0, 1.0));
    f("normalize_advantages", normalize_advantages, "normalise advantages per batch");
    f("entropy_coef", entropy_coef, "entropy bonus weight", Bounds::at_least(0.0));
    f("epochs", epochs, "passes over the batch (PPO: policy and value; REINFORCE: value only)");
    f("minibatches", minibatches, "minibatches per pass");
    f("backend", backend,
      "how the policy and value networks are updated: fast (the default: forward, backward and loss by hand on flat "
      "float32 parameters, own AVX-512 or BLAS products, one Adam over the vector) or torch (LibTorch autograd, the "
      "reference the tests compare fast with); the same update to float rounding (docs/fast_pg.md)",
      Choices{{"torch", "fast"}});
  }
};

// ppo.*: the clipped surrogate.
struct PpoSection {
  double clip = 0.2;
  double target_kl = 0.0;
  std::string drift;
  template <class F>
  void fields(F& f) {
    f("clip", clip, "PPO ratio clip epsilon", Bounds::in(0.0, 1.0, true));
    f("target_kl", target_kl, "stop the epochs when approx. KL exceeds this (0: off)", Bounds::at_least(0.0));
    f("drift", drift,
      "learned drift added to the clipped surrogate: a drift file of ml3 meta-train with algorithm lpo "
      "(e.g. losses/reacher_lpo.drift); empty: plain PPO");
  }
};

// train.*: the policy-training loop of `ml3 train`.
struct TrainSection {
  int iterations = 300;
  int episodes_per_iteration = 64;
  int checkpoint_every = 50;
  int eval_every = 25;
  int eval_episodes = 100;
  int eval_seed = 0;
  template <class F>
  void fields(F& f) {
    f("iterations", iterations, "policy-update iterations (each collects a batch of episodes)");
    f("episodes_per_iteration", episodes_per_iteration, "episodes per iteration (batched envs; one train goal each)");
    f("checkpoint_every", checkpoint_every, "write a checkpoint every K iterations (and at the end)");
    f("eval_every", eval_every, "deterministic evaluation on the test split every K iterations (0: end only)",
      Bounds::at_least(0));
    f("eval_episodes", eval_episodes, "test goals per evaluation");
    f("eval_seed", eval_seed, "seed of the evaluation goals (same goals for every run)", Bounds::at_least(0));
  }
};

// debug.*: testing aids.
struct DebugSection {
  int nan_at_iteration = 0;
  template <class F>
  void fields(F& f) {
    f("nan_at_iteration", nan_at_iteration, "testing aid: inject a NaN reward at this iteration (0: off)",
      Bounds::at_least(0));
  }
};

}  // namespace ml3
