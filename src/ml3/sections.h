#pragma once
// The typed config sections of ML3 meta-training of policies: loss.*,
// meta.*, shaping.* (core/config.h; LibTorch-free).
#include <string>
#include <vector>

#include "core/config.h"

namespace ml3 {

// loss.*: the learned-loss network of ML3.
struct LossSection {
  std::string features = "all";
  std::vector<int> hidden{32, 32};
  std::string activation = "tanh";
  double init_scale = 0.01;
  int norm_iterations = 50;
  bool target = false;
  std::vector<int> target_hidden{64, 64};
  double target_weight = 1.0;
  int target_prefit_steps = 0;
  double anchor_weight = 0.0;
  double anchor_clip = 0.2;
  template <class F>
  void fields(F& f) {
    f("features", features,
      "learned-loss inputs, comma-separated from: obs, goal, action, reward, return_to_go, time, "
      "policy_mean, log_prob (or all)");
    f("hidden", hidden, "learned-loss MLP hidden sizes");
    f("activation", activation, "learned-loss hidden activation", Choices{{"tanh", "relu", "elu"}});
    f("init_scale", init_scale, "scale of the learned loss's output layer at initialisation",
      Bounds::in(0.0, 10.0, true));
    f("norm_iterations", norm_iterations, "meta-iterations whose features set the input normalisation (then frozen)");
    f("target", target,
      "add a structured term target_weight * |policy_mean - T(obs)|^2 with a learned target network T (part of the "
      "loss, meta-trained with it; starts at zero output)");
    f("target_hidden", target_hidden, "hidden sizes of the target network T");
    f("target_weight", target_weight, "weight of the target term", Bounds::at_least(0.0));
    f("target_prefit_steps", target_prefit_steps,
      "before meta-training, fit T to the shaping demonstrations by this many Adam steps of behaviour cloning "
      "(0: no pre-fit; needs shaping.demos)",
      Bounds::at_least(0));
    f("anchor_weight", anchor_weight,
      "anchor the learned loss to PPO's clipped surrogate (advantages: reward-to-go minus its per-timestep mean, "
      "normalised): the loss is anchor_weight * surrogate + the learned network, a correction meta-trained from a "
      "known objective (0: no anchor)",
      Bounds::at_least(0.0));
    f("anchor_clip", anchor_clip, "clip range of the anchor's surrogate", Bounds::in(0.0, 1.0, true));
  }
};

// meta.*: ML3 meta-training of a policy loss.
struct MetaSection {
  int iterations = 1000;
  int tasks_per_iteration = 4;
  int episodes_per_task = 64;
  double inner_lr = 0.5;
  std::string inner_optimizer = "sgd";
  int steps_per_batch = 1;
  int inner_steps = 1;
  double outer_lr = 1e-3;
  double max_grad_norm = 1.0;
  std::string schedule = "pool";
  int pool_size = 4;
  int pool_reset_every = 200;
  double gamma = 0.99;
  int checkpoint_every = 100;
  template <class F>
  void fields(F& f) {
    f("iterations", iterations, "outer (meta) iterations");
    f("tasks_per_iteration", tasks_per_iteration, "tasks (batches of train goals) per outer gradient");
    f("episodes_per_task", episodes_per_task, "episodes per task = batch size of every policy update");
    f("inner_lr", inner_lr, "inner step size alpha (meta-train and meta-test)", Bounds::in(0.0, 1e6, true));
    f("inner_optimizer", inner_optimizer,
      "how the loss is applied to a batch, at meta-train and meta-test alike: sgd (the paper) or adam "
      "(differentiated through)",
      Choices{{"sgd", "adam"}});
    f("steps_per_batch", steps_per_batch, "optimiser steps on the learned loss per batch (differentiated through)",
      Bounds::in(1, 100));
    f("inner_steps", inner_steps, "differentiable inner steps K (fresh rollouts each)", Bounds::in(1, 20));
    f("outer_lr", outer_lr, "Adam learning rate of the learned loss", Bounds::in(0.0, 10.0, true));
    f("max_grad_norm", max_grad_norm, "outer gradient-norm clip (0: off)", Bounds::at_least(0.0));
    f("schedule", schedule,
      "policies the loss is meta-trained on: pool (policies keep training with the current loss, "
      "reset every pool_reset_every updates) or fresh (a new policy every step)",
      Choices{{"pool", "fresh"}});
    f("pool_size", pool_size, "policies in the pool");
    f("pool_reset_every", pool_reset_every, "inner updates after which a pool policy is re-initialised");
    f("gamma", gamma, "discount of reward-to-go (features and task loss)", Bounds::in(0.0, 1.0));
    f("checkpoint_every", checkpoint_every, "checkpoint (and loss.ml3) every K iterations");
  }
};

// shaping.*: extra information used only at meta-train time (the loss file
// never needs it): goal demonstrations whose actions the updated policy is
// pulled toward, in the task loss.
struct ShapingSection {
  std::string demos;
  double imitation_weight = 1.0;
  double rl_weight = 1.0;
  int anneal_iterations = 0;
  int demo_rows = 1024;
  bool expert_labels = false;
  bool target_labels = false;
  int target_fit_steps = 0;
  double target_fit_lr = 1e-3;
  bool target_meta_gradient = true;
  int buffer_rows = 200000;
  template <class F>
  void fields(F& f) {
    f("demos", demos, "demonstrations file (ml3 demos) to shape the loss with; empty: unshaped");
    f("expert_labels", expert_labels,
      "label every state the pool policies visit with the scripted expert's action (DAgger-style shaping, "
      "meta-train time only): the imitation term is then taken on the updated policy's own states");
    f("target_labels", target_labels,
      "label the states the updated policy visits with the loss's own target network T (loss.target, fitted to "
      "shaping.demos) instead of taking the imitation term on the demonstrated states: on-policy imitation "
      "without an expert (needs shaping.demos, loss.target and target fitting; not with expert_labels)");
    f("imitation_weight", imitation_weight,
      "weight beta of the imitation term beta * |mean_theta'(s_demo) - a_demo|^2 in the task loss",
      Bounds::at_least(0.0));
    f("rl_weight", rl_weight,
      "weight of the REINFORCE task loss next to the imitation term (0: imitation alone, a sanity check)",
      Bounds::at_least(0.0));
    f("anneal_iterations", anneal_iterations,
      "anneal the weight linearly to 0 over this many meta-iterations, so the true task loss decides in the end "
      "(0: constant)",
      Bounds::at_least(0));
    f("demo_rows", demo_rows, "demonstrated (state, action) rows per task and meta-iteration (and per target-fit step)",
      Bounds::at_least(1));
    f("target_fit_steps", target_fit_steps,
      "Adam steps per meta-iteration fitting the loss's target network (loss.target) to the labelled states: "
      "the demonstrations and the expert-labelled visited states (0: the meta-gradient alone trains it)",
      Bounds::at_least(0));
    f("target_fit_lr", target_fit_lr, "learning rate of those steps (and of loss.target_prefit_steps)",
      Bounds::in(0.0, 1.0, true));
    f("target_meta_gradient", target_meta_gradient,
      "the meta-gradient trains the loss's target network T too (false: only the target-fitting steps "
      "(target_fit_steps, loss.target_prefit_steps) train T, the meta-gradient the rest of the loss)");
    f("buffer_rows", buffer_rows, "expert-labelled visited states kept for fitting the target (the most recent)",
      Bounds::at_least(1));
  }
};

}  // namespace ml3
