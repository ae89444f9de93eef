#pragma once
// Small MLPs on the CPU without a framework: the forward pass of the deployment
// runtime and of the rollouts' action sampling, and forward + backward of the
// fast policy-gradient path (src/fast_pg.h). At 64x64 widths and 100-row
// minibatches LibTorch spends its time in per-op dispatch, not arithmetic;
// these are plain Eigen products on caller-owned memory.
//
// Layout (shared with models/nets.h's FunctionalMlp and the .ml3p file): layer
// l has weights W_l, sizes[l] x sizes[l+1] row-major (stored transposed, so a
// layer is y = x W + b on row-major batches), then bias b_l; a flat parameter
// vector is W_0, b_0, W_1, b_1, ... in that order. Header-only (Eigen).
#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace ml3 {

// Hidden-layer activation; the output layer is linear. The codes are those of
// the .ml3p format (runtime::Activation).
enum class MlpAct : int { Tanh = 0, Relu = 1, Elu = 2, None = 3 };

using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct MlpLayer {
  const float* w;  // in x out, row-major
  const float* b;  // out
  int in, out;
};

// y[rows x out] = act(x[rows x in] W + b); `act` is skipped for the output layer.
inline void mlp_layer(const MlpLayer& l, MlpAct act, bool output, const float* x, int rows, float* y) {
  const Eigen::Map<const RowMatrixXf> X(x, rows, l.in), W(l.w, l.in, l.out);
  Eigen::Map<RowMatrixXf> Y(y, rows, l.out);
  Y.noalias() = X * W;
  Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(l.b, l.out);
  if (output) return;
  auto a = Y.array();
  switch (act) {
    case MlpAct::Tanh: a = a.tanh(); break;
    case MlpAct::Relu: a = a.max(0.f); break;
    case MlpAct::Elu: a = (a > 0.f).select(a, a.expm1()); break;
    case MlpAct::None: break;
  }
}

// The whole network on `rows` rows with two caller buffers of rows x (widest
// layer) floats each (no allocation); returns whichever holds the output.
inline float* mlp_forward(const MlpLayer* layers, size_t n_layers, MlpAct act, const float* x, int rows, float* buf_a,
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

// An MLP over a flat parameter vector that keeps its activations for one
// backward pass. Buffers grow to the largest row count seen and are reused:
// no allocation per call at a fixed minibatch size.
class SmallMlp {
 public:
  SmallMlp() = default;
  SmallMlp(std::vector<int> sizes, MlpAct act) : sizes_(std::move(sizes)), act_(act), h_(sizes_.size()) {
    for (size_t l = 0; l + 1 < sizes_.size(); ++l) n_params_ += static_cast<size_t>(sizes_[l] + 1) * sizes_[l + 1];
  }
  size_t num_params() const { return n_params_; }
  size_t num_layers() const { return sizes_.empty() ? 0 : sizes_.size() - 1; }
  const std::vector<int>& sizes() const { return sizes_; }
  MlpAct activation() const { return act_; }

  // Layer views of a flat parameter vector (or of its gradient).
  MlpLayer layer(const float* flat, size_t l) const {
    size_t off = 0;
    for (size_t k = 0; k < l; ++k) off += static_cast<size_t>(sizes_[k] + 1) * sizes_[k + 1];
    return {flat + off, flat + off + static_cast<size_t>(sizes_[l]) * sizes_[l + 1], sizes_[l], sizes_[l + 1]};
  }

  // x: rows x sizes[0] row-major; returns rows x sizes.back() (valid until the next call).
  const float* forward(const float* flat, const float* x, int rows) {
    const size_t L = num_layers();
    h_[0] = Eigen::Map<const RowMatrixXf>(x, rows, sizes_[0]);
    for (size_t l = 0; l < L; ++l) {
      h_[l + 1].resize(rows, sizes_[l + 1]);
      mlp_layer(layer(flat, l), act_, l + 1 == L, h_[l].data(), rows, h_[l + 1].data());
    }
    return h_[L].data();
  }

  // Gradient of sum(dy . y) for the last forward's y, written (not added) to
  // `grad` (flat, the parameters' layout). dy: rows x sizes.back().
  void backward(const float* flat, const float* dy, float* grad) {
    const size_t L = num_layers();
    const int rows = static_cast<int>(h_[0].rows());
    d_ = Eigen::Map<const RowMatrixXf>(dy, rows, sizes_.back());
    for (size_t l = L; l-- > 0;) {
      const MlpLayer g = layer(grad, l);
      Eigen::Map<RowMatrixXf>(const_cast<float*>(g.w), g.in, g.out).noalias() = h_[l].transpose() * d_;
      Eigen::Map<Eigen::RowVectorXf>(const_cast<float*>(g.b), g.out) = d_.colwise().sum();
      if (l == 0) break;
      const MlpLayer p = layer(flat, l);
      d_prev_.resize(rows, p.in);
      d_prev_.noalias() = d_ * Eigen::Map<const RowMatrixXf>(p.w, p.in, p.out).transpose();
      // Derivative of the activation from its output h = act(u).
      const auto h = h_[l].array();
      switch (act_) {
        case MlpAct::Tanh: d_prev_.array() *= 1.f - h * h; break;
        case MlpAct::Relu: d_prev_.array() *= (h > 0.f).cast<float>(); break;
        case MlpAct::Elu: d_prev_.array() *= (h > 0.f).select(1.f, h + 1.f); break;
        case MlpAct::None: break;
      }
      d_.swap(d_prev_);
    }
  }

 private:
  std::vector<int> sizes_;
  MlpAct act_ = MlpAct::Tanh;
  size_t n_params_ = 0;
  std::vector<RowMatrixXf> h_;  // h_[0] the input, h_[l] the output of layer l
  RowMatrixXf d_, d_prev_;
};

}  // namespace ml3
