// Tests of the Adam kernel (core/adam.h): against a textbook implementation
// (bias-corrected moments), against values known in closed form, and against
// LibTorch's torch::optim::Adam in float64, with the kernel running on the
// tensors' own data pointers.
#include "core/adam.h"

#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "core/rng.h"

namespace ml3 {
namespace {

// A fixed sequence of gradients (steps x n), mixed signs and magnitudes.
std::vector<std::vector<double>> gradients(int steps, size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<double>> g(steps, std::vector<double>(n));
  for (auto& row : g)
    for (double& x : row) x = rng.uniform(-1.0, 1.0) * std::pow(10.0, rng.uniform(-3.0, 1.0));
  return g;
}

double max_abs_diff(const double* a, const double* b, size_t n) {
  double d = 0;
  for (size_t i = 0; i < n; ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// Adam as the paper writes it: bias-corrected moments, then the update.
struct TextbookAdam {
  AdamHyper h;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g, double lr) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
      v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(h.beta1, t)), v_hat = v[i] / (1 - std::pow(h.beta2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + h.eps);
    }
  }
};

TEST(AdamKernel, MatchesTextbookAdam) {
  const size_t n = 37;
  const int steps = 60;
  const auto grads = gradients(steps, n, 1);
  for (const AdamHyper h : {AdamHyper{}, AdamHyper{0.8, 0.99, 1e-6}}) {
    std::vector<double> p(n, 0.5), m(n, 0.0), v(n, 0.0);
    std::vector<float> pf(n, 0.5f), mf(n, 0.0f), vf(n, 0.0f);
    std::vector<double> ref(n, 0.5);
    TextbookAdam textbook{h, {}, {}, 0};
    for (int t = 1; t <= steps; ++t) {
      const double lr = 1e-2 / t;  // the learning rate may change from step to step
      const std::vector<float> gf(grads[t - 1].begin(), grads[t - 1].end());
      adam_step(p.data(), grads[t - 1].data(), m.data(), v.data(), n, h, t, lr);
      adam_step(pf.data(), gf.data(), mf.data(), vf.data(), n, h, t, lr);
      textbook.step(ref, grads[t - 1], lr);
    }
    EXPECT_LE(max_abs_diff(p.data(), ref.data(), n), 1e-13) << h.beta1;
    const std::vector<double> pf64(pf.begin(), pf.end());
    EXPECT_LE(max_abs_diff(pf64.data(), ref.data(), n), 1e-5) << h.beta1;
  }
}

// With a constant gradient g the bias-corrected moments are g and g^2 from the
// first step on, so every step moves each value by lr * g / (|g| + eps).
TEST(AdamKernel, ConstantGradientKnownValues) {
  const std::vector<double> g{0.5, -2.0, 1e-3, 0.0};
  const double lr = 0.1, eps = 1e-8;
  std::vector<double> p{1.0, 1.0, 1.0, 1.0}, m(4, 0.0), v(4, 0.0);
  for (int t = 1; t <= 10; ++t) {
    adam_step(p.data(), g.data(), m.data(), v.data(), 4, AdamHyper{}, t, lr);
    for (size_t i = 0; i < 4; ++i)
      EXPECT_NEAR(p[i], 1.0 - t * lr * g[i] / (std::abs(g[i]) + eps), 1e-12) << "step " << t << " value " << i;
  }
  EXPECT_NEAR(p[0], 2e-8, 1e-12);  // 1 - 10 * 0.1 * 0.5 / (0.5 + 1e-8)
  EXPECT_EQ(p[3], 1.0);  // zero gradient: no move
}

// torch::optim::Adam (PyTorch's formula) in float64 and the kernel, run on the
// same tensors' data pointers, agree to rounding.
TEST(AdamKernel, MatchesTorchOptimAdamFloat64) {
  const int steps = 40;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor p_torch = torch::linspace(-1.0, 2.0, 12, opts).reshape({3, 4});
  torch::Tensor p_kernel = p_torch.clone(), m = torch::zeros_like(p_torch), v = torch::zeros_like(p_torch);
  p_torch.set_requires_grad(true);
  const AdamHyper h{0.85, 0.995, 1e-7};
  const double lr = 3e-2;
  torch::optim::Adam adam({p_torch}, torch::optim::AdamOptions(lr).betas(std::make_tuple(h.beta1, h.beta2)).eps(h.eps));
  const auto grads = gradients(steps, 12, 2);
  for (int t = 1; t <= steps; ++t) {
    const torch::Tensor g = torch::from_blob(const_cast<double*>(grads[t - 1].data()), {3, 4}, opts).clone();
    p_torch.mutable_grad() = g.clone();
    adam.step();
    adam_step(p_kernel.data_ptr<double>(), g.data_ptr<double>(), m.data_ptr<double>(), v.data_ptr<double>(),
              static_cast<size_t>(p_kernel.numel()), h, t, lr);
  }
  const torch::Tensor p_final = p_torch.detach().contiguous();
  EXPECT_LE(max_abs_diff(p_final.data_ptr<double>(), p_kernel.data_ptr<double>(), 12), 1e-12);
  EXPECT_GT(max_abs_diff(p_final.data_ptr<double>(), torch::linspace(-1.0, 2.0, 12, opts).data_ptr<double>(), 12),
            0.1);  // the parameters did move
}

// The policy learners' Adam ran as LibTorch tensor ops before it moved onto
// this kernel; the kernel reproduces those ops bit for bit in float32 (so
// training results did not change), for sizes around the vector width.
TEST(AdamKernel, BitIdenticalToTheTensorOpForm) {
  torch::manual_seed(0);
  for (int64_t n : {1, 7, 8, 9, 64, 650, 4099}) {
    torch::Tensor p = torch::randn({n}), m = torch::zeros({n}), v = torch::zeros({n});
    torch::Tensor p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
    const AdamHyper h{0.9, 0.999, 1e-5};
    for (int t = 1; t <= 50; ++t) {
      const torch::Tensor g = torch::randn({n}) * 0.1;
      const double lr = 3e-4 * (1.0 - t / 100.0);
      const double bc1 = 1.0 - std::pow(h.beta1, t), bc2 = 1.0 - std::pow(h.beta2, t);
      m.mul_(h.beta1).add_(g, 1.0 - h.beta1);
      v.mul_(h.beta2).addcmul_(g, g, 1.0 - h.beta2);
      p.addcdiv_(m, (v / bc2).sqrt_().add_(h.eps), -lr / bc1);
      adam_step(p2.data_ptr<float>(), g.data_ptr<float>(), m2.data_ptr<float>(), v2.data_ptr<float>(),
                static_cast<size_t>(n), h, t, lr);
    }
    EXPECT_TRUE(torch::equal(p, p2)) << n;
    EXPECT_TRUE(torch::equal(m, m2)) << n;
    EXPECT_TRUE(torch::equal(v, v2)) << n;
  }
}

}  // namespace
}  // namespace ml3
