// The hand-derived Eigen meta-gradients (one inner step, forward-over-reverse;
// the derivation is in sine.h) of the MLP regressor and of the frequency model
// (shaped sine), and the plain SGD trainers on the same buffers.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "src/policy/elu_tangent.h"
#include "core/error.h"
#include "src/testbeds/sine/engine.h"
#include "src/testbeds/sine/internal.h"
#include "src/testbeds/sine/sine.h"

namespace ml3 {
namespace sine_detail {
namespace {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;

template <typename T>
Eigen::Map<const Mat<T>> weight(const Layout& L, const T* p, size_t l) {
  return Eigen::Map<const Mat<T>>(p + L.w_off[l], L.sizes[l], L.sizes[l + 1]);
}
template <typename T>
Eigen::Map<Mat<T>> weight(const Layout& L, T* p, size_t l) {
  return Eigen::Map<Mat<T>>(p + L.w_off[l], L.sizes[l], L.sizes[l + 1]);
}
template <typename T>
Eigen::Map<const RowVec<T>> bias(const Layout& L, const T* p, size_t l) {
  return Eigen::Map<const RowVec<T>>(p + L.b_off[l], L.sizes[l + 1]);
}
template <typename T>
Eigen::Map<RowVec<T>> bias(const Layout& L, T* p, size_t l) {
  return Eigen::Map<RowVec<T>>(p + L.b_off[l], L.sizes[l + 1]);
}

template <typename M>
void track_margin(const M& z, double* margin) {
  if (margin && z.size() > 0) *margin = std::min(*margin, static_cast<double>(z.cwiseAbs().minCoeff()));
}

// One pass of the regressor over a batch [n x 1]: forward, reverse (gradient
// wrt the parameters) and forward-mode (JVP in parameter space). The ReLU
// masks are read from the stored activations (h > 0 iff z > 0).
template <typename T>
class RegressorPass {
 public:
  void resize(const Layout& L, int n) {
    h_.assign(L.layers() + 1, Mat<T>());
    d_.assign(L.layers() + 1, Mat<T>());
    for (size_t l = 0; l <= L.layers(); ++l) {
      h_[l].resize(n, L.sizes[l]);
      d_[l].resize(n, L.sizes[l]);
    }
  }
  Mat<T>& input() { return h_[0]; }
  const Mat<T>& output() const { return h_.back(); }

  void forward(const Layout& L, const T* p, double* margin = nullptr) {
    const size_t n_layers = L.layers();
    for (size_t l = 0; l < n_layers; ++l) {
      Mat<T>& z = h_[l + 1];
      z.noalias() = h_[l] * weight(L, p, l);
      z.rowwise() += bias(L, p, l);
      if (l + 1 < n_layers) {
        track_margin(z, margin);
        z = z.cwiseMax(T(0));
      }
    }
  }

  // grad = d(sum_i dy_i * y_i)/dtheta, using the activations of the last forward.
  void backward(const Layout& L, const T* p, const Mat<T>& dy, T* grad) {
    const size_t n_layers = L.layers();
    d_[n_layers] = dy;
    for (size_t l = n_layers; l-- > 0;) {
      weight(L, grad, l).noalias() = h_[l].transpose() * d_[l + 1];
      bias(L, grad, l) = d_[l + 1].colwise().sum();
      if (l > 0) {
        d_[l].noalias() = d_[l + 1] * weight(L, p, l).transpose();
        d_[l].array() *= (h_[l].array() > T(0)).template cast<T>();
      }
    }
  }

  // ydot = J_theta(y) . dir at the parameters of the last forward (reuses the
  // reverse buffers d_ for the tangents).
  void jvp(const Layout& L, const T* p, const T* dir, Mat<T>& ydot) {
    const size_t n_layers = L.layers();
    for (size_t l = 0; l < n_layers; ++l) {
      Mat<T>& zd = d_[l + 1];
      zd.noalias() = h_[l] * weight(L, dir, l);
      if (l > 0) zd.noalias() += d_[l] * weight(L, p, l);
      zd.rowwise() += bias(L, dir, l);
      if (l + 1 < n_layers) zd.array() *= (h_[l + 1].array() > T(0)).template cast<T>();
    }
    ydot = d_[n_layers];
  }

 private:
  std::vector<Mat<T>> h_;  // h_[0] = x; hidden activations; h_.back() = y
  std::vector<Mat<T>> d_;  // reverse deltas or forward tangents
};

// The learned loss over a batch, primal and tangent stacked in one matrix
// [2n x m]: rows 0..n-1 carry the activations at inputs [y_i, t_i], rows
// n..2n-1 their tangents along the input direction [1, 0] (so each layer is
// one matrix product). The output rows are o_i and odot_i = d o_i / d y_i.
template <typename T>
class LossPass {
 public:
  void resize(const Layout& L, int n) {
    n_ = n;
    g_.assign(L.layers() + 1, Mat<T>());
    b_.assign(L.layers() + 1, Mat<T>());
    for (size_t k = 0; k <= L.layers(); ++k) {
      g_[k].resize(2 * n, L.sizes[k]);
      b_[k].resize(2 * n, L.sizes[k]);
    }
    g_[0].bottomRows(n).col(0).setOnes();
    g_[0].bottomRows(n).col(1).setZero();
  }
  void set_input(const Mat<T>& y, const Mat<T>& t) {
    g_[0].topRows(n_).col(0) = y.col(0);
    g_[0].topRows(n_).col(1) = t.col(0);
  }
  void forward(const Layout& L, const T* phi, double* margin = nullptr) {
    const size_t n_layers = L.layers();
    for (size_t k = 0; k < n_layers; ++k) {
      Mat<T>& a = g_[k + 1];
      a.noalias() = g_[k] * weight(L, phi, k);
      if (k + 1 < n_layers) {
        track_margin(a.topRows(n_), margin);
        a.bottomRows(n_).array() = (a.topRows(n_).array() > T(0)).select(a.bottomRows(n_).array(), T(0));
        a.topRows(n_) = a.topRows(n_).cwiseMax(T(0));
      }
    }
  }
  auto o() const { return g_.back().topRows(n_); }
  auto odot() const { return g_.back().bottomRows(n_); }

  // gphi = d(sum_i bar_i * out_i)/dphi for `bar` [2n x 1] over the stacked
  // outputs [o; odot], through the primal and the tangent passes (the ReLU
  // masks are piecewise constant).
  void backward(const Layout& L, const T* phi, const Mat<T>& bar, T* gphi) {
    const size_t n_layers = L.layers();
    b_[n_layers] = bar;
    for (size_t k = n_layers; k-- > 0;) {
      weight(L, gphi, k).noalias() = g_[k].transpose() * b_[k + 1];
      if (k > 0) {
        Mat<T>& bk = b_[k];
        bk.noalias() = b_[k + 1] * weight(L, phi, k).transpose();
        const auto mask = (g_[k].topRows(n_).array() > T(0)).template cast<T>();
        bk.topRows(n_).array() *= mask;
        bk.bottomRows(n_).array() *= mask;
      }
    }
  }

 private:
  int n_ = 0;
  std::vector<Mat<T>> g_, b_;
};

template <typename T>
T softplus(T o) {
  return o > T(0) ? o + std::log1p(std::exp(-o)) : std::log1p(std::exp(o));
}
template <typename T>
T sigmoid(T o) {
  return T(1) / (T(1) + std::exp(-o));
}

// The Eigen engine: buffers sized once for a problem and a data set.
template <typename T>
class EigenSine : public Engine<T> {
 public:
  EigenSine(const SineProblem& pb, const SineData& data)
      : rl_(pb.regressor), ll_(pb.loss), n_(static_cast<int>(data.x.size())), alpha_(static_cast<T>(pb.inner_lr)) {
    if (data.y.size() != data.x.size() || n_ < 1) throw Error("sine: data x and y must have the same, non-zero size");
    reg0_.resize(rl_, n_);
    reg1_.resize(rl_, n_);
    loss_.resize(ll_, n_);
    t_.resize(n_, 1);
    for (int i = 0; i < n_; ++i) {
      reg0_.input()(i, 0) = static_cast<T>(data.x[i]);
      reg1_.input()(i, 0) = static_cast<T>(data.x[i]);
      t_(i, 0) = static_cast<T>(data.y[i]);
    }
    sig_.resize(n_, 1), gy_.resize(n_, 1), ydot_.resize(n_, 1), bar_.resize(2 * n_, 1);
    g_.resize(rl_.total), theta1_.resize(rl_.total), v_.resize(rl_.total);
  }

  // L_in(theta) and g = dL_in/dtheta; leaves reg0_ and loss_ filled.
  double inner_grad(const T* theta, const T* phi, T* g, double* margin = nullptr) {
    reg0_.forward(rl_, theta, margin);
    loss_.set_input(reg0_.output(), t_);
    loss_.forward(ll_, phi, margin);
    const auto o = loss_.o();
    const auto odot = loss_.odot();
    double lin = 0;
    const T inv_n = T(1) / static_cast<T>(n_);
    for (int i = 0; i < n_; ++i) {
      lin += static_cast<double>(softplus(o(i, 0)));
      sig_(i, 0) = sigmoid(o(i, 0));
      gy_(i, 0) = sig_(i, 0) * odot(i, 0) * inv_n;  // dL_in/dy_i
    }
    reg0_.backward(rl_, theta, gy_, g);
    return lin / n_;
  }

  // MSE at theta through `pass`; with `g`, also dMSE/dtheta.
  double mse(RegressorPass<T>& pass, const T* theta, T* g, double* margin = nullptr) {
    pass.forward(rl_, theta, margin);
    gy_ = pass.output() - t_;
    const double loss = static_cast<double>(gy_.squaredNorm()) / n_;
    if (g) {
      gy_ *= T(2) / static_cast<T>(n_);
      pass.backward(rl_, theta, gy_, g);
    }
    return loss;
  }

  // One inner step, then dL_T/dphi by forward-over-reverse (see sine.h).
  void meta_grad(const T* theta, const T* phi, T* gphi, double* task_loss, double* inner_loss,
                 T* theta_after) override {
    using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
    const Eigen::Index np = static_cast<Eigen::Index>(rl_.total);
    *inner_loss = inner_grad(theta, phi, g_.data());
    Eigen::Map<Vec>(theta1_.data(), np) =
        Eigen::Map<const Vec>(theta, np) - alpha_ * Eigen::Map<const Vec>(g_.data(), np);
    if (theta_after) std::copy(theta1_.begin(), theta1_.end(), theta_after);
    *task_loss = mse(reg1_, theta1_.data(), v_.data());   // v = dL_T/dtheta'
    reg0_.jvp(rl_, theta, v_.data(), ydot_);               // ydot = J_theta(y) v
    // S = (1/n) sum_i ydot_i sigmoid(o_i) odot_i; its partials wrt o_i and odot_i.
    const auto odot = loss_.odot();
    const T inv_n = T(1) / static_cast<T>(n_);
    for (int i = 0; i < n_; ++i) {
      const T s = sig_(i, 0), yd = ydot_(i, 0) * inv_n;
      bar_(i, 0) = yd * s * (T(1) - s) * odot(i, 0);  // dS/do_i
      bar_(n_ + i, 0) = yd * s;                        // dS/dodot_i
    }
    loss_.backward(ll_, phi, bar_, gphi);
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(gphi, static_cast<Eigen::Index>(ll_.total)) *= -alpha_;
  }

  void values(const T* theta, const T* phi, double* learned, double* mse_out) override {
    if (phi) *learned = inner_grad(theta, phi, g_.data());
    *mse_out = mse(reg0_, theta, nullptr);
  }

  std::vector<double> train(T* theta, const T* phi, double lr, int steps) override {
    std::vector<double> trace;
    const T step = static_cast<T>(lr);
    for (int s = 0; s < steps; ++s) {
      if (phi) {
        trace.push_back(mse(reg0_, theta, nullptr));
        inner_grad(theta, phi, g_.data());
      } else {
        trace.push_back(mse(reg0_, theta, g_.data()));
      }
      for (size_t i = 0; i < rl_.total; ++i) theta[i] -= step * g_[i];
    }
    trace.push_back(mse(reg0_, theta, nullptr));
    return trace;
  }

  RegressorPass<T>& reg0() { return reg0_; }

 private:
  Layout rl_, ll_;
  int n_;
  T alpha_;
  RegressorPass<T> reg0_, reg1_;
  LossPass<T> loss_;
  Mat<T> t_, sig_, gy_, ydot_, bar_;
  std::vector<T> g_, theta1_, v_;
};

// ---- the frequency model y = sin(theta x) with an ELU learned loss ------------

// The frequency model's engine: one inner step, hand-derived. With
// y_i = sin(theta x_i), c_i = dy_i/dtheta = x_i cos(theta x_i) and
// L_in = mean_i M(x_i, y_i, t_i):
//   g = dL_in/dtheta = mean_i odot_i c_i,  theta' = theta - alpha g,
//   dL_T/dphi = dL_T/dtheta' * (-alpha) * mean_i c_i dodot_i/dphi
// (c_i does not depend on phi), i.e. one backward pass through the stacked
// primal/tangent network with adjoint -alpha v c_i / n on odot_i and 0 on o_i,
// v = dL_T/dtheta' = sign(theta' - theta*) with shaping, else the MSE's
// derivative at theta'. The loss pass is src/policy/elu_tangent.h's with one
// tangent block, the input direction [0, 1, 0] (along y).
template <typename T>
class EigenFrequency : public Engine<T> {
 public:
  EigenFrequency(const SineProblem& pb, const SineData& data)
      : ll_(pb.loss),
        n_(static_cast<int>(data.x.size())),
        alpha_(static_cast<T>(pb.inner_lr)),
        shaping_(pb.shaping),
        theta_star_(data.theta_star) {
    if (data.y.size() != data.x.size() || n_ < 1) throw Error("sine: data x and y must have the same, non-zero size");
    if (shaping_ && !std::isfinite(theta_star_))
      throw Error("sine: shaping needs the task's true parameter theta* (a frequency task)");
    loss_.resize(ll_.sizes, n_, 1);
    loss_.tangent_input(0).col(1).setOnes();
    x_.resize(n_), t_.resize(n_), c_.resize(n_);
    for (int i = 0; i < n_; ++i) x_[i] = static_cast<T>(data.x[i]), t_[i] = static_cast<T>(data.y[i]);
    bar_ = Mat<T>::Zero(2 * n_, 1);
  }

  // L_in(theta); leaves c_ = dy/dtheta and the loss pass filled; *g = dL_in/dtheta.
  double inner(T theta, const T* phi, T* g) {
    auto in = loss_.primal_input();
    for (int i = 0; i < n_; ++i) {
      const T a = theta * x_[i];
      in(i, 0) = x_[i], in(i, 1) = std::sin(a), in(i, 2) = t_[i];
      c_[i] = x_[i] * std::cos(a);
    }
    loss_.forward(phi);
    const auto o = loss_.output();
    const auto od = loss_.tangent_output(0);
    double lin = 0;
    T gsum = 0;
    for (int i = 0; i < n_; ++i) lin += static_cast<double>(o(i, 0)), gsum += od(i, 0) * c_[i];
    *g = gsum / static_cast<T>(n_);
    return lin / n_;
  }

  // MSE at theta; with `g`, also dMSE/dtheta.
  double mse(T theta, T* g) const {
    double loss = 0;
    T d = 0;
    for (int i = 0; i < n_; ++i) {
      const T a = theta * x_[i], r = std::sin(a) - t_[i];
      loss += static_cast<double>(r) * r;
      d += r * x_[i] * std::cos(a);
    }
    if (g) *g = T(2) * d / static_cast<T>(n_);
    return loss / n_;
  }

  void meta_grad(const T* theta, const T* phi, T* gphi, double* task_loss, double* inner_loss,
                 T* theta_after) override {
    T g = 0;
    *inner_loss = inner(theta[0], phi, &g);
    const T theta1 = theta[0] - alpha_ * g;
    T v = 0;
    if (shaping_) {
      const T d = theta1 - static_cast<T>(theta_star_);
      *task_loss = std::abs(static_cast<double>(d));
      v = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
    } else {
      *task_loss = mse(theta1, &v);
    }
    const T scale = -alpha_ * v / static_cast<T>(n_);
    for (int i = 0; i < n_; ++i) bar_(n_ + i, 0) = scale * c_[i];
    loss_.backward(phi, bar_, gphi);
    if (theta_after) theta_after[0] = theta1;
  }

  void values(const T* theta, const T* phi, double* learned, double* mse_out) override {
    T g;
    if (phi) *learned = inner(theta[0], phi, &g);
    *mse_out = mse(theta[0], nullptr);
  }

  std::vector<double> train(T* theta, const T* phi, double lr, int steps) override {
    std::vector<double> trace;
    const T step = static_cast<T>(lr);
    for (int s = 0; s < steps; ++s) {
      T g = 0;
      if (phi) {
        trace.push_back(mse(theta[0], nullptr));
        inner(theta[0], phi, &g);
      } else {
        trace.push_back(mse(theta[0], &g));
      }
      theta[0] -= step * g;
    }
    trace.push_back(mse(theta[0], nullptr));
    return trace;
  }

 private:
  Layout ll_;
  int n_;
  T alpha_;
  bool shaping_;
  double theta_star_;
  EluTangentPass<T> loss_;
  std::vector<T> x_, t_, c_;
  Mat<T> bar_;
};

}  // namespace

template <typename T>
std::unique_ptr<Engine<T>> make_eigen_engine(const SineProblem& pb, const SineData& data) {
  if (pb.model == SineModel::Frequency) return std::make_unique<EigenFrequency<T>>(pb, data);
  return std::make_unique<EigenSine<T>>(pb, data);
}
template std::unique_ptr<Engine<float>> make_eigen_engine<float>(const SineProblem&, const SineData&);
template std::unique_ptr<Engine<double>> make_eigen_engine<double>(const SineProblem&, const SineData&);

}  // namespace sine_detail

double sine_task_loss_after_inner(const SineProblem& problem, const std::vector<double>& theta,
                                  const std::vector<double>& phi, const SineData& data, double* relu_margin) {
  sine_detail::check_problem(problem, theta.size(), phi.size());
  sine_detail::EigenSine<double> eng(problem, data);
  std::vector<double> th = theta, g(theta.size());
  double margin = std::numeric_limits<double>::infinity();
  for (int k = 0; k < problem.inner_steps; ++k) {
    eng.inner_grad(th.data(), phi.data(), g.data(), &margin);
    for (size_t i = 0; i < th.size(); ++i) th[i] -= problem.inner_lr * g[i];
  }
  const double loss = eng.mse(eng.reg0(), th.data(), nullptr, &margin);
  if (relu_margin) *relu_margin = margin;
  return loss;
}

}  // namespace ml3
