#pragma once
// Adam (Kingma & Ba, 2015) exactly as PyTorch's torch.optim.Adam writes it
// (no weight decay, no amsgrad), on raw arrays: one kernel for every learner,
// whether its parameters live in flat std::vectors or in contiguous tensors
// (pass their data pointers). Dependency-free (core/adam.cpp).
#include <cstddef>
#include <cstdint>

namespace ml3 {

// PyTorch's defaults.
struct AdamHyper {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// One Adam step on n values in float or double; `t` is the 1-based number of
// this step (the caller keeps the count), `lr` the learning rate for this step:
//   m <- b1 m + (1 - b1) g                      (one fused multiply-add)
//   v <- b2 v + (1 - b2) g g                    (one fused multiply-add)
//   p <- p - (lr / bc1) m / (sqrt(v / bc2) + eps),   bc_k = 1 - beta_k^t
// The scalars (1 - b_k, bc_k, lr / bc1) are computed in double and rounded to
// the parameters' precision once; every other operation is in that precision,
// in this order. This is the rounding of the LibTorch tensor-op form of Adam
// (m.mul_(b1).add_(g, 1 - b1); ...; p.addcdiv_(m, (v / bc2).sqrt_().add_(eps),
// -lr / bc1)) on this machine, so the kernel reproduces it bit for bit
// (tests/adam_test.cpp). Every operation is exactly rounded IEEE arithmetic,
// so the kernel's SIMD versions, chosen at run time for the CPU (core/adam.cpp),
// give the same bits as the scalar one.
void adam_step(float* param, const float* grad, float* m, float* v, size_t n, const AdamHyper& h, int64_t t,
               double lr);
void adam_step(double* param, const double* grad, double* m, double* v, size_t n, const AdamHyper& h, int64_t t,
               double lr);

}  // namespace ml3
