#include "core/adam.h"

#include <cmath>

#include "core/cpu_dispatch.h"

namespace ml3 {
namespace {

// The loop of every clone; inlined so that each is compiled for its target.
template <typename T>
[[gnu::always_inline]] inline void adam_body(T* param, const T* grad, T* m, T* v, size_t n, const AdamHyper& h,
                                             int64_t t, double lr) {
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

}  // namespace

ML3_CPU_CLONES void adam_step(float* param, const float* grad, float* m, float* v, size_t n, const AdamHyper& h,
                              int64_t t, double lr) {
  adam_body(param, grad, m, v, n, h, t, lr);
}

ML3_CPU_CLONES void adam_step(double* param, const double* grad, double* m, double* v, size_t n, const AdamHyper& h,
                              int64_t t, double lr) {
  adam_body(param, grad, m, v, n, h, t, lr);
}

}  // namespace ml3
