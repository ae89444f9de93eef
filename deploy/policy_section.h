#pragma once
// policy.*: the architecture of the Gaussian policy, as a typed config
// section (core/config.h). Here, below the learning library, because the
// exporter reads it from a checkpoint's stored config; the learners declare
// it with their other sections (src/policy/sections.h). LibTorch-free.
#include <string>
#include <vector>

#include "core/config.h"

namespace ml3 {

// policy.*: the Gaussian policy.
struct PolicySection {
  std::vector<int> hidden{64, 64};
  std::string activation = "tanh";
  double init_log_std = -0.5;
  double log_std_min = -5.0;
  double log_std_max = 1.0;
  bool obs_norm = true;
  template <class F>
  void fields(F& f) {
    f("hidden", hidden, "policy MLP hidden sizes");
    f("activation", activation, "policy hidden activation", Choices{{"tanh", "relu", "elu"}});
    f("init_log_std", init_log_std, "initial log standard deviation of the actions");
    f("log_std_min", log_std_min, "lower clamp of the log-std");
    f("log_std_max", log_std_max, "upper clamp of the log-std");
    f("obs_norm", obs_norm, "running observation normalisation (saved with the policy)");
  }
};

}  // namespace ml3
