#pragma once
// A learned drift for PPO (LPO, Lu et al. 2022, arXiv 2210.05639; the
// training-progress input of temporally-aware LPO, Jackson et al. 2024): a
// small tanh MLP h on per-sample features of the probability ratio r, the
// (normalised) advantage A and the training progress p in [0, 1),
//   x = [r - 1, log r, A, (r - 1) A, (log r) A, p],
// whose drift d = h(x) - h(x at r = 1) (optionally max(0, .)) is added to
// PPO's clipped surrogate, per sample:  loss_i = -min(r A, clip(r) A) + d_i.
// d = 0 at r = 1 for any parameters; with the output layer at zero (init())
// d = 0 everywhere and the objective is exactly PPO's. With `nonnegative`
// the drift is a valid mirror-learning drift (>= 0, 0 at r = 1).
// Meta-trained by evolution strategies over whole PPO lifetimes (`ml3
// meta-train` of algorithm lpo, src/ml3/lpo.cpp); a PPO run uses one through
// `ppo.drift`. The gradient d d_i / d log pi(a_i|s_i) is written by hand
// (tested against LibTorch's autograd). LibTorch-free.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/small_mlp.h"

namespace ml3 {

class Drift {
 public:
  static constexpr int kFeatures = 6;
  static constexpr const char* kFileKind = "ml3-drift";

  Drift() = default;
  // kFeatures - hidden... - 1, tanh hidden layers, zero parameters.
  Drift(std::vector<int> hidden, bool nonnegative);
  const std::vector<int>& sizes() const { return sizes_; }
  bool nonnegative() const { return nonnegative_; }
  size_t num_params() const { return params_.size(); }
  // Flat parameters in core/small_mlp.h's layout (W_0, b_0, ..., W_L, b_L).
  const std::vector<float>& params() const { return params_; }
  void set_params(const std::vector<double>& theta);
  // Initial parameters: hidden layers Glorot-uniform from `seed`, the output
  // layer zero (the drift is zero: PPO).
  std::vector<double> init(uint64_t seed) const;

  // For n samples: the drift d_i and d d_i / d log pi_i (the ratio's log
  // moves one for one with log pi). Buffers are reused (not thread-safe).
  void evaluate(int n, const float* ratio, const float* log_ratio, const float* adv, float progress, float* d,
                float* dd_dlogp);

  // An Archive of kind kFileKind: metadata (the caller's `meta` plus format,
  // sizes, nonnegative, features), the parameters under "theta". Atomic.
  void save(const std::string& path, nlohmann::json meta) const;
  // Throws ml3::Error naming the file on a wrong kind, truncation, a shape
  // that does not match its sizes, or non-finite values.
  static Drift load(const std::string& path, nlohmann::json* meta = nullptr);
  // Whether `path` is a drift file (an archive of kFileKind); false for any
  // other file, readable or not.
  static bool is_drift_file(const std::string& path);

 private:
  // The MLP on `rows` feature rows (x: rows x kFeatures); keeps activations.
  const float* forward(const float* x, int rows, std::vector<std::vector<float>>& h) const;
  // d h / d x for the rows of the last forward into `h` (rows x kFeatures).
  void input_grad(const std::vector<std::vector<float>>& h, int rows, float* dx);
  MlpLayer layer(size_t l) const;

  std::vector<int> sizes_;
  bool nonnegative_ = true;
  std::vector<float> params_;
  std::vector<float> x_, x0_, dx_, d_, d_prev_;
  std::vector<std::vector<float>> h_, h0_;
};

}  // namespace ml3
