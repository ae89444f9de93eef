#pragma once
// Forward-over-reverse through a small ELU MLP, the building block of the
// hand-derived meta-gradients of learned losses M(u) (src/testbeds/sine/, shaped sine;
// src/testbeds/mountain_car/engine.cpp). A learned loss's inner gradient is a
// directional derivative of M along input tangents (how the inputs move with
// the trained model's parameters); its meta-gradient is the derivative of
// that with respect to M's parameters.
//
// One pass stacks the primal rows and K tangent blocks in one matrix
// [(1 + K) n x width] (rows 0..n-1 the primal activations at the inputs u_i,
// rows j n .. (j+1) n - 1 their tangents along the input tangents of block j),
// so every layer is one matrix product. forward() gives M(u_i) and
// dM(u_i)[udot_i^j]; backward() gives d(sum of bar . outputs)/dparameters
// through the primal and every tangent block. ELU's derivative depends on the
// pre-activation, so the tangents' adjoints flow into the primal rows through
// elu''(z) = exp(z) (z <= 0).
//
// Layout as core/small_mlp.h: W_l (sizes[l] x sizes[l+1], row-major), b_l,
// for every layer; hidden layers ELU (alpha 1), the output linear.
// Header-only (Eigen; float and double products of at least kBlasMacs
// multiply-adds go to BLAS, whose kernels are chosen for this CPU at run
// time: the portable build's Eigen products are SSE2-only), no allocation
// after resize(). Which products go to BLAS depends on the sizes only, so a
// given configuration always rounds the same way.
#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "src/policy/blas.h"

namespace ml3 {

template <typename T>
class EluTangentPass {
 public:
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  static constexpr double kBlasMacs = 65536;

  // sizes: inputs, hidden..., outputs; n primal rows; k tangent blocks.
  void resize(const std::vector<int>& sizes, int n, int k) {
    sizes_ = sizes, n_ = n, k_ = k;
    w_off_.clear(), b_off_.clear();
    size_t off = 0;
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
      w_off_.push_back(off);
      off += static_cast<size_t>(sizes[l]) * sizes[l + 1];
      b_off_.push_back(off);
      off += sizes[l + 1];
    }
    num_params_ = off;
    const Eigen::Index rows = static_cast<Eigen::Index>(n) * (1 + k);
    d_.assign(sizes.size(), Mat());
    g_.assign(sizes.size(), Mat());
    z_.assign(sizes.size(), Mat());
    b_.assign(sizes.size(), Mat());
    for (size_t l = 0; l < sizes.size(); ++l) {
      g_[l].setZero(rows, sizes[l]);
      z_[l].resize(rows, sizes[l]);
      b_[l].resize(rows, sizes[l]);
      d_[l].resize(n, sizes[l]);
    }
  }
  size_t num_params() const { return num_params_; }
  int rows() const { return n_; }

  // The inputs: primal rows on top, then each tangent block (caller-filled).
  Mat& input() { return g_[0]; }
  auto primal_input() { return g_[0].topRows(n_); }
  auto tangent_input(int j) { return g_[0].middleRows(static_cast<Eigen::Index>(n_) * (1 + j), n_); }

  void forward(const T* flat) {
    const size_t layers = sizes_.size() - 1;
    for (size_t l = 0; l < layers; ++l) {
      Mat& z = z_[l + 1];
      product(false, false, g_[l], weight(flat, l), z);
      z.topRows(n_).rowwise() += bias(flat, l);  // tangents carry no bias
      Mat& a = g_[l + 1];
      Mat& d = d_[l + 1];
      if (l + 1 == layers) {
        a = z;
        continue;
      }
      for (Eigen::Index i = 0; i < n_; ++i)
        for (Eigen::Index c = 0; c < z.cols(); ++c) {
          const T zi = z(i, c);
          const T d1 = zi > T(0) ? T(1) : std::exp(zi);
          d(i, c) = d1;
          a(i, c) = zi > T(0) ? zi : std::expm1(zi);
          for (int j = 1; j <= k_; ++j) a(j * n_ + i, c) = d1 * z(j * n_ + i, c);
        }
    }
  }

  // Output rows [n x outputs] of the primal (block 0) or tangent block j + 1.
  auto output() const { return g_.back().topRows(n_); }
  auto tangent_output(int j) const { return g_.back().middleRows(static_cast<Eigen::Index>(n_) * (1 + j), n_); }

  // grad = d(sum over all rows of bar . output)/dparameters (written, not
  // added); bar has the stacked output's shape [(1 + k) n x outputs].
  void backward(const T* flat, const Mat& bar, T* grad) {
    const size_t layers = sizes_.size() - 1;
    b_[layers] = bar;  // the output layer is linear: its pre-activation's adjoint
    for (size_t l = layers; l-- > 0;) {
      const Mat& zb = b_[l + 1];
      auto gw = weight(grad, l);
      product(true, false, g_[l], zb, gw);
      bias(grad, l) = zb.topRows(n_).colwise().sum();
      if (l == 0) break;
      Mat& hb = b_[l];
      product(false, true, zb, weight(flat, l), hb);  // adjoints of layer l's outputs
      const Mat& z = z_[l];
      const Mat& d = d_[l];
      for (Eigen::Index i = 0; i < n_; ++i)
        for (Eigen::Index c = 0; c < z.cols(); ++c) {
          const T d1 = d(i, c), d2 = z(i, c) > T(0) ? T(0) : d1;
          T zbar = hb(i, c) * d1;
          for (int j = 1; j <= k_; ++j) {
            const Eigen::Index r = j * n_ + i;
            zbar += hb(r, c) * z(r, c) * d2;
            hb(r, c) *= d1;  // the tangent pre-activation's adjoint
          }
          hb(i, c) = zbar;
        }
    }
  }

 private:
  // out = op(a) op(b) (op: transpose or not); out has the product's shape.
  template <typename A, typename B, typename C>
  static void product(bool ta, bool tb, const A& a, const B& b, C& out) {
    const Eigen::Index m = ta ? a.cols() : a.rows(), k = ta ? a.rows() : a.cols(), n = tb ? b.rows() : b.cols();
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      if (static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= kBlasMacs) {
        gemm(ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), a.data(),
             static_cast<int>(a.cols()), b.data(), static_cast<int>(b.cols()), out.data());
        return;
      }
    }
    if (ta && !tb) out.noalias() = a.transpose() * b;
    else if (!ta && tb) out.noalias() = a * b.transpose();
    else out.noalias() = a * b;
  }

  Eigen::Map<const Mat> weight(const T* p, size_t l) const {
    return Eigen::Map<const Mat>(p + w_off_[l], sizes_[l], sizes_[l + 1]);
  }
  Eigen::Map<Mat> weight(T* p, size_t l) const { return Eigen::Map<Mat>(p + w_off_[l], sizes_[l], sizes_[l + 1]); }
  Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> bias(const T* p, size_t l) const {
    return Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(p + b_off_[l], sizes_[l + 1]);
  }
  Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> bias(T* p, size_t l) const {
    return Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(p + b_off_[l], sizes_[l + 1]);
  }

  std::vector<int> sizes_;
  int n_ = 0, k_ = 0;
  size_t num_params_ = 0;
  std::vector<size_t> w_off_, b_off_;
  std::vector<Mat> g_, z_, b_;  // activations, pre-activations, adjoints (stacked)
  std::vector<Mat> d_;          // elu'(z) of the primal rows (hidden layers)
};

}  // namespace ml3
