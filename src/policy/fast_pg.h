#pragma once
// The fast path of the policy-gradient learners (pg.backend = fast): the
// policy and value networks' forward and backward and the REINFORCE / PPO
// losses written by hand for small matrices (small_gemm products, core/small_mlp.h's
// bias and activations), on flat
// float32 parameter vectors in the layout of the LibTorch parameter lists
// (policy: W_0, b_0, ..., log_std; value: W_0, b_0, ...). The LibTorch path
// (src/policy/pg.h) is the reference it is tested against (tests/learn_test.cpp:
// losses, gradients and whole updates to 1e-5). LibTorch-free.
#include <cstdint>
#include <vector>

#include "core/small_mlp.h"
#include "src/policy/drift.h"

namespace ml3 {

enum class PgLoss { Reinforce, Ppo };

// Row-major C[m x n] = op(A) op(B) for the fast path's small products (the
// arguments of src/policy/blas.h's gemm). On CPUs with AVX-512 its own kernel
// (OpenBLAS 0.3.21's default kernels on some AVX-512 CPUs, AMD's among them,
// are its AVX2 ones, about twice as slow at these sizes); elsewhere, and for
// outputs narrower than 16 columns, BLAS. Each entry of C is one fused
// multiply-add chain over k in index order (in the AVX-512 kernel), so a row's
// result does not depend on m.
void small_gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c);
// Which products small_gemm runs on this CPU ("own AVX-512 kernel" or "BLAS").
const char* small_gemm_kernel();
// Microseconds per product C[m x n] = A[m x k] B[k x n] with small_gemm and
// with BLAS on the same operands, each the best of five interleaved rounds
// within about `seconds` in all (ml3 bench train).
struct GemmTiming {
  double small_gemm_us = 0, blas_us = 0;
};
GemmTiming time_small_gemm(int m, int n, int k, double seconds);

// An MLP over a flat parameter vector (the layout of core/small_mlp.h) that
// keeps its activations for one backward pass. The matrix products are
// small_gemm's; bias and activation are
// core/small_mlp.h's. Buffers grow to the largest row count seen and are
// reused: no allocation per call at a fixed minibatch size.
class SmallMlp {
 public:
  SmallMlp() = default;
  SmallMlp(std::vector<int> sizes, Activation act);
  size_t num_params() const { return n_params_; }
  // Layer l's view of a flat parameter vector (or of its gradient).
  MlpLayer layer(const float* flat, size_t l) const;
  // x: rows x sizes[0] row-major; returns rows x sizes.back() (valid until the next call).
  const float* forward(const float* flat, const float* x, int rows);
  // Gradient of sum(dy . y) for the last forward's y, written (not added) to
  // `grad` (the parameters' layout). dy: rows x sizes.back().
  void backward(const float* flat, const float* dy, float* grad);

 private:
  std::vector<int> sizes_;
  Activation act_ = Activation::Tanh;
  size_t n_params_ = 0;
  int rows_ = 0;
  std::vector<std::vector<float>> h_;  // h_[0] the input, h_[l] the output of layer l
  std::vector<float> d_, d_prev_;
};

// Row-major views of a flattened batch (src/policy/pg.h's Minibatch of all rows).
struct FastRows {
  const float* obs = nullptr;         // [B, obs_dim]
  const float* actions = nullptr;     // [B, act_dim]
  const float* old_logp = nullptr;    // [B]
  const float* advantages = nullptr;  // [B]
  const float* returns = nullptr;     // [B]
  int64_t rows = 0;
};

struct FastPolicyStats {
  double loss = 0;  // the policy-gradient loss (without the entropy term)
  double entropy = 0, approx_kl = 0, clip_fraction = 0;
};

class FastPolicyGradient {
 public:
  FastPolicyGradient() = default;
  // policy_sizes: obs_dim, hidden..., act_dim (the mean MLP); the log-std is
  // clamped to [log_std_min, log_std_max] as GaussianPolicy does.
  FastPolicyGradient(std::vector<int> policy_sizes, Activation policy_act, double log_std_min, double log_std_max,
                     std::vector<int> value_sizes, Activation value_act);
  size_t policy_params() const { return policy_.num_params() + act_dim_; }
  size_t value_params() const { return value_.num_params(); }

  // Copies rows idx[0 .. n) of `all` (idx == nullptr: rows 0 .. n) into the
  // minibatch buffers the next loss calls read (reused: no allocation once
  // they have grown to the largest minibatch).
  void gather(const FastRows& all, const int64_t* idx, int64_t n);
  // Policy loss on the gathered rows at flat parameters p: `loss` minus
  // entropy_coef x entropy; its gradient is written to grad (policy_params()).
  // With a `drift` (PPO only), its per-sample drift at training progress
  // `progress` is added to the loss (src/policy/drift.h).
  FastPolicyStats policy_loss_grad(const float* p, PgLoss loss, double clip, double entropy_coef, float* grad,
                                   Drift* drift = nullptr, double progress = 0.0);
  // 0.5 mean (V(obs) - returns)^2 on the gathered rows; gradient to grad.
  double value_loss_grad(const float* v, float* grad);

 private:
  SmallMlp policy_, value_;
  int obs_dim_ = 0, act_dim_ = 0;
  double log_std_min_ = -5, log_std_max_ = 1;
  int64_t n_ = 0;
  std::vector<float> obs_, act_, old_logp_, adv_, ret_, dmean_, dv_, ls_, inv_std_;
  std::vector<float> logp_, ratio_, log_ratio_, drift_, drift_grad_;
};

// Global L2 norm of g (accumulated in double); scales g to at most max_norm
// (if > 0) like clip_grad_norm of src/pg.h. Returns the norm before clipping.
double clip_grad_norm_flat(float* g, size_t n, double max_norm);

}  // namespace ml3
