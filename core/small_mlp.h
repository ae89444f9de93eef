#pragma once
// Small MLPs on the CPU without a framework: the forward pass of the deployment
// runtime and of the rollouts' action sampling (one implementation), and the
// bias + activation step the fast policy-gradient path (src/policy/fast_pg.h) shares.
// Plain Eigen on caller-owned memory: no allocation, no dependency.
//
// Layout (shared with models/nets.h's FunctionalMlp and the .ml3p file): layer
// l has weights W_l, sizes[l] x sizes[l+1] row-major (stored transposed, so a
// layer is y = x W + b on row-major batches), then bias b_l; a flat parameter
// vector is W_0, b_0, W_1, b_1, ... in that order. Header-only (Eigen).
#include <Eigen/Core>

#include <cstddef>

namespace ml3 {

// Hidden-layer activation of every MLP of the project (LibTorch networks,
// the fast path, the runtime); the output layer is linear. The codes are
// those of the .ml3p format (runtime::Activation, which static_asserts them).
enum class Activation : int { Tanh = 0, Relu = 1, Elu = 2, None = 3 };

using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct MlpLayer {
  const float* w;  // in x out, row-major
  const float* b;  // out
  int in, out;
};

// y[rows x out] += b, then act (skipped for the output layer): a layer after its product.
inline void mlp_bias_act(const MlpLayer& l, Activation act, bool output, int rows, float* y) {
  Eigen::Map<RowMatrixXf> Y(y, rows, l.out);
  Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(l.b, l.out);
  if (output) return;
  auto a = Y.array();
  switch (act) {
    case Activation::Tanh: a = a.tanh(); break;
    case Activation::Relu: a = a.max(0.f); break;
    case Activation::Elu: a = (a > 0.f).select(a, a.expm1()); break;
    case Activation::None: break;
  }
}

// y[rows x out] = act(x[rows x in] W + b); `act` is skipped for the output layer.
inline void mlp_layer(const MlpLayer& l, Activation act, bool output, const float* x, int rows, float* y) {
  const Eigen::Map<const RowMatrixXf> X(x, rows, l.in), W(l.w, l.in, l.out);
  Eigen::Map<RowMatrixXf>(y, rows, l.out).noalias() = X * W;
  mlp_bias_act(l, act, output, rows, y);
}

// The whole network on `rows` rows with two caller buffers of rows x (widest
// layer) floats each (no allocation); returns whichever holds the output.
inline float* mlp_forward(const MlpLayer* layers, size_t n_layers, Activation act, const float* x, int rows, float* buf_a,
                          float* buf_b) {
  const float* in = x;
  float* out = buf_a;
  for (size_t l = 0; l < n_layers; ++l) {
    mlp_layer(layers[l], act, l + 1 == n_layers, in, rows, out);
    in = out;
    out = (out == buf_a) ? buf_b : buf_a;
  }
  return const_cast<float*>(in);
}

}  // namespace ml3
