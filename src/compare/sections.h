#pragma once
// The typed config sections of comparisons: the protocol every compared
// method follows (compare.*, meta_test.*; core/config.h; LibTorch-free).
#include <string>

#include "core/config.h"

namespace ml3 {

// The protocol methods are compared with (meta_test.*, compare.*): seeds,
// update budget, evaluation.
struct ComparisonProtocol {
  int updates = 200;
  int seeds = 3;
  int eval_every = 10;
  int eval_episodes = 100;
  int eval_seed = 0;
  template <class F>
  void protocol_fields(F& f) {
    f("updates", updates, "policy updates per method and seed (one batch each)");
    f("seeds", seeds, "policy seeds per method");
    f("eval_every", eval_every, "evaluate every K updates (deterministic policy)");
    f("eval_episodes", eval_episodes, "goals per evaluation");
    f("eval_seed", eval_seed, "seed of the evaluation goals", Bounds::at_least(0));
  }
};

// meta_test.*: comparing a learned loss with the baselines.
struct MetaTestSection : ComparisonProtocol {
  double success_target = 0.8;
  std::string methods = "learned_loss,reinforce,ppo";
  int loss_steps = 0;
  template <class F>
  void fields(F& f) {
    protocol_fields(f);
    f("success_target", success_target, "success rate whose first crossing is reported", Bounds::in(0.0, 1.0));
    f("methods", methods,
      "methods compared, comma-separated: learned_loss (the loss under test) and any policy-training "
      "algorithm with a baselines.<name> section (reinforce, ppo)");
    f("loss_steps", loss_steps,
      "optimiser steps per batch when the learned loss trains a policy (0: meta.steps_per_batch, as it was "
      "meta-trained; more steps of the same optimiser can learn faster per batch)",
      Bounds::in(0, 1000));
  }
};

}  // namespace ml3
