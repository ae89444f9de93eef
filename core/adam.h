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
//   m <- b1 m + (1 - b1) g                      (one fused multiply-add)
//   v <- b2 v + (1 - b2) g g                    (one fused multiply-add)
//   p <- p - (lr / bc1) m / (sqrt(v / bc2) + eps),   bc_k = 1 - beta_k^t
// The scalars (1 - b_k, bc_k, lr / bc1) are computed in double and rounded to
// T once; every other operation is in T, in this order. This is the rounding
// of the LibTorch tensor-op form of Adam (m.mul_(b1).add_(g, 1 - b1); ...;
// p.addcdiv_(m, (v / bc2).sqrt_().add_(eps), -lr / bc1)) on this machine, so
// the kernel reproduces it bit for bit (tests/adam_test.cpp).
template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, size_t n, const AdamHyper& h, int64_t t, double lr) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(t));
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T a1 = static_cast<T>(1.0 - h.beta1), a2 = static_cast<T>(1.0 - h.beta2);
  const T eps = static_cast<T>(h.eps), bc2_t = static_cast<T>(bc2), step = static_cast<T>(-lr / bc1);
  for (size_t i = 0; i < n; ++i) {
    m[i] = std::fma(grad[i], a1, m[i] * b1);
    v[i] = std::fma(a2 * grad[i], grad[i], v[i] * b2);
    param[i] = param[i] + step * m[i] / (std::sqrt(v[i] / bc2_t) + eps);
  }
}

}  // namespace ml3
