#pragma once
// Adam (Kingma & Ba, 2015) exactly as PyTorch's torch.optim.Adam writes it
// (no weight decay, no amsgrad), on raw arrays: one kernel for every learner,
// whether its parameters live in flat std::vectors or in contiguous tensors
// (pass their data pointers). Header-only and dependency-free.
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace ml3 {

// PyTorch's defaults.
struct AdamHyper {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// One Adam step on n values in precision T (float or double); `t` is the
// 1-based number of this step (the caller keeps the count), `lr` the learning
// rate for this step:
//   m <- b1 m + (1 - b1) g
//   v <- b2 v + (1 - b2) g g
//   p <- p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),   bc_k = 1 - beta_k^t
// beta_k^t is computed in double and cast to T; everything else is in T, in
// this order (the results are reproducible bit for bit).
template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, size_t n, const AdamHyper& h, int64_t t, double lr) {
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2), eps = static_cast<T>(h.eps);
  const T bc1 = T(1) - static_cast<T>(std::pow(h.beta1, t));
  const T bc2 = T(1) - static_cast<T>(std::pow(h.beta2, t));
  const T step = static_cast<T>(lr) / bc1, sqrt_bc2 = std::sqrt(bc2);
  for (size_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (T(1) - b1) * grad[i];
    v[i] = b2 * v[i] + (T(1) - b2) * grad[i] * grad[i];
    param[i] -= step * m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps);
  }
}

}  // namespace ml3
