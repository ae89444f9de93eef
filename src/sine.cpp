#include "src/sine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <type_traits>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "models/nets.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {

// ---- configuration ---------------------------------------------------------------

void declare_sine(Schema& s) {
  s.add_string("sine.implementation", "eigen",
               "meta-gradient: eigen (hand-derived, 1 inner step, fast) or autograd (LibTorch, any inner steps)",
               {"eigen", "autograd"});
  s.add_int("sine.inner_steps", 1, "unrolled inner SGD steps K per meta step (eigen: 1 only)", 1, 100);
  s.add_double("sine.inner_lr", 1e-3, "inner SGD step size alpha (also the meta-test SGD step size)", 0.0, 1e6, true);
  s.add_double("sine.outer_lr", 1e-3, "Adam learning rate of the learned loss", 0.0, 1e6, true);
  s.add_int("sine.iterations", 500, "outer (meta) iterations");
  s.add_int("sine.points", 100, "points per task (meta-train and meta-test)");
  s.add_int_list("sine.regressor_hidden", {100, 10}, "regressor hidden sizes (1-h...-1, ReLU, biases)");
  s.add_int_list("sine.loss_hidden", {50, 50}, "learned-loss hidden sizes (2-h...-1, ReLU, no bias, softplus)");
  s.add_string("sine.train_init", "xavier",
               "regressor init at meta-train: xavier (Glorot-uniform, zero biases; the reference's reset) "
               "or torch (U(+-1/sqrt(fan_in)) weights and biases)",
               {"xavier", "torch"});
  s.add_string("sine.test_init", "torch", "regressor init at meta-test (the reference uses nn.Linear's default)",
               {"xavier", "torch"});
  s.add_string("sine.loss_init", "xavier", "learned-loss init", {"xavier", "torch"});
  s.add_int("sine.test_tasks", 10, "out-of-distribution meta-test tasks (A in [0.2, 5], p in [-pi, pi], x in [-5, 5])");
  s.add_int("sine.test_steps", 100, "SGD steps at meta-test");
  s.add_int("sine.test_seeds", 5, "regressor initialisations per meta-test task");
  s.add_int("sine.test_seed", 0,
            "seed of the meta-test tasks, points and regressor inits (independent of `seed`)", 0);
  s.add_int_list("sine.transfer_hidden", {40, 40}, "second regressor architecture for the transfer test");
  s.add_bool("sine.float64", false, "compute in double precision (default float)");
  s.add_int("sine.checkpoint_every", 100, "checkpoint (and loss.ml3) every K meta-iterations");
}

Schema sine_schema() {
  Schema s;
  declare<RunSection>(s, "", RunSection{0, 1, 1});
  s.add_string("algorithm", "sine", "what is meta-learned (ml3 meta-train)", {"sine"});
  declare_sine(s);
  return s;
}

void check_sine_config(const Config& cfg) {
  if (cfg.get_string("sine.implementation") == "eigen" && cfg.get_int("sine.inner_steps") != 1)
    throw Error("config: sine.implementation=eigen supports sine.inner_steps=1 only (got " +
                std::to_string(cfg.get_int("sine.inner_steps")) +
                "); use sine.implementation=autograd for several unrolled inner steps");
}

Config load_sine_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c(sine_schema());
  if (!path.empty()) c.load_yaml_file(path);
  c.apply_overrides(overrides);
  check_sine_config(c);
  return c;
}

// ---- tasks and data --------------------------------------------------------------

SineTask sine_train_task() { return SineTask{}; }

std::vector<SineTask> sine_test_tasks(int count, uint64_t seed) {
  Rng rng(seed);
  std::vector<SineTask> tasks(static_cast<size_t>(std::max(count, 0)));
  for (auto& t : tasks) {
    t.amplitude = rng.uniform(0.2, 5.0);
    t.phase = rng.uniform(-M_PI, M_PI);
    t.x_min = -5.0, t.x_max = 5.0;
  }
  return tasks;
}

SineData sample_sine_data(const SineTask& task, int points, uint64_t seed) {
  if (points < 1) throw Error("sine: a task needs at least one point");
  Rng rng(seed);
  SineData d;
  d.x.resize(points), d.y.resize(points);
  for (int i = 0; i < points; ++i) {
    d.x[i] = rng.uniform(task.x_min, task.x_max);
    d.y[i] = task.amplitude * std::sin(d.x[i] - task.phase);
  }
  return d;
}

// ---- networks ----------------------------------------------------------------------

size_t MlpShape::num_params() const {
  size_t n = 0;
  for (size_t l = 0; l < num_layers(); ++l) n += static_cast<size_t>(sizes[l]) * sizes[l + 1] + (bias ? sizes[l + 1] : 0);
  return n;
}

size_t MlpShape::weight_offset(size_t layer) const {
  size_t n = 0;
  for (size_t l = 0; l < layer; ++l) n += static_cast<size_t>(sizes[l]) * sizes[l + 1] + (bias ? sizes[l + 1] : 0);
  return n;
}

size_t MlpShape::bias_offset(size_t layer) const {
  if (!bias) throw Error("internal: bias_offset of an MLP without biases");
  return weight_offset(layer) + static_cast<size_t>(sizes[layer]) * sizes[layer + 1];
}

MlpShape sine_regressor_shape(const std::vector<int>& hidden) {
  MlpShape s;
  s.sizes.push_back(1);
  s.sizes.insert(s.sizes.end(), hidden.begin(), hidden.end());
  s.sizes.push_back(1);
  s.bias = true;
  return s;
}

MlpShape sine_loss_shape(const std::vector<int>& hidden) {
  MlpShape s;
  s.sizes.push_back(2);
  s.sizes.insert(s.sizes.end(), hidden.begin(), hidden.end());
  s.sizes.push_back(1);
  s.bias = false;
  return s;
}

SineInit parse_sine_init(const std::string& name) {
  if (name == "torch") return SineInit::Torch;
  if (name == "xavier") return SineInit::Xavier;
  throw Error("unknown initialisation '" + name + "' (expected torch or xavier)");
}

SineImpl parse_sine_impl(const std::string& name) {
  if (name == "eigen") return SineImpl::Eigen;
  if (name == "autograd") return SineImpl::Autograd;
  throw Error("unknown sine implementation '" + name + "' (expected eigen or autograd)");
}

const char* sine_impl_name(SineImpl impl) { return impl == SineImpl::Eigen ? "eigen" : "autograd"; }

namespace {

// Fills `out` (shape.num_params() values) with a seeded initialisation; the
// Torch scheme draws in FunctionalMlp::init's order (W row-major, then b).
template <typename T>
void init_mlp_into(const MlpShape& shape, SineInit init, uint64_t seed, T* out) {
  Rng rng(seed);
  size_t k = 0;
  for (size_t l = 0; l < shape.num_layers(); ++l) {
    const int in = shape.sizes[l], outs = shape.sizes[l + 1];
    const double bound = init == SineInit::Torch ? 1.0 / std::sqrt(static_cast<double>(in))
                                                 : std::sqrt(6.0 / static_cast<double>(in + outs));
    for (int64_t i = 0; i < static_cast<int64_t>(in) * outs; ++i) out[k++] = static_cast<T>(rng.uniform(-bound, bound));
    if (shape.bias)
      for (int i = 0; i < outs; ++i) out[k++] = init == SineInit::Torch ? static_cast<T>(rng.uniform(-bound, bound)) : T(0);
  }
}

}  // namespace

std::vector<double> init_mlp_params(const MlpShape& shape, SineInit init, uint64_t seed) {
  std::vector<double> p(shape.num_params());
  init_mlp_into(shape, init, seed, p.data());
  return p;
}

// ---- the Eigen fast path -------------------------------------------------------------
namespace {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;

// Offsets of the layers in a flat parameter vector.
struct Layout {
  std::vector<int> sizes;
  bool bias = true;
  std::vector<size_t> w_off, b_off;
  size_t total = 0;
  Layout() = default;
  explicit Layout(const MlpShape& s) : sizes(s.sizes), bias(s.bias) {
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
      w_off.push_back(total);
      total += static_cast<size_t>(sizes[l]) * sizes[l + 1];
      b_off.push_back(total);
      if (bias) total += sizes[l + 1];
    }
  }
  size_t layers() const { return sizes.size() - 1; }
};

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

void check_problem(const SineProblem& pb, size_t theta_size, size_t phi_size) {
  const auto& r = pb.regressor.sizes;
  const auto& l = pb.loss.sizes;
  if (r.size() < 2 || r.front() != 1 || r.back() != 1 || !pb.regressor.bias)
    throw Error("sine: the regressor must be 1-...-1 with biases");
  if (l.size() < 2 || l.front() != 2 || l.back() != 1 || pb.loss.bias)
    throw Error("sine: the learned loss must be 2-...-1 without biases");
  if (theta_size != pb.regressor.num_params())
    throw Error("sine: theta has " + std::to_string(theta_size) + " values, the regressor needs " +
                std::to_string(pb.regressor.num_params()));
  if (phi_size != 0 && phi_size != pb.loss.num_params())
    throw Error("sine: phi has " + std::to_string(phi_size) + " values, the learned loss needs " +
                std::to_string(pb.loss.num_params()));
  if (pb.inner_steps < 1) throw Error("sine: inner_steps must be >= 1");
}

// The Eigen engine: buffers sized once for a problem and a data set.
template <typename T>
class EigenSine {
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
  void meta_grad(const T* theta, const T* phi, T* gphi, double* task_loss, double* inner_loss) {
    using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
    const Eigen::Index np = static_cast<Eigen::Index>(rl_.total);
    *inner_loss = inner_grad(theta, phi, g_.data());
    Eigen::Map<Vec>(theta1_.data(), np) =
        Eigen::Map<const Vec>(theta, np) - alpha_ * Eigen::Map<const Vec>(g_.data(), np);
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

  RegressorPass<T>& reg0() { return reg0_; }
  const Layout& regressor_layout() const { return rl_; }

 private:
  Layout rl_, ll_;
  int n_;
  T alpha_;
  RegressorPass<T> reg0_, reg1_;
  LossPass<T> loss_;
  Mat<T> t_, sig_, gy_, ydot_, bar_;
  std::vector<T> g_, theta1_, v_;
};

// ---- the LibTorch autograd reference ---------------------------------------------------

template <typename T>
constexpr at::ScalarType scalar_type() {
  return std::is_same<T, double>::value ? at::kDouble : at::kFloat;
}

template <typename T>
Params to_tensors(const Layout& L, const T* p, bool requires_grad) {
  Params out;
  const auto opts = at::TensorOptions().dtype(scalar_type<T>());
  for (size_t l = 0; l < L.layers(); ++l) {
    out.push_back(at::from_blob(const_cast<T*>(p + L.w_off[l]), {L.sizes[l], L.sizes[l + 1]}, opts).clone());
    if (L.bias) out.push_back(at::from_blob(const_cast<T*>(p + L.b_off[l]), {L.sizes[l + 1]}, opts).clone());
  }
  for (auto& t : out) t.set_requires_grad(requires_grad);
  return out;
}

template <typename T>
void from_tensors(const Layout& L, const std::vector<at::Tensor>& ts, T* p) {
  size_t k = 0;
  for (size_t l = 0; l < L.layers(); ++l) {
    const at::Tensor w = ts[k++].contiguous();
    std::memcpy(p + L.w_off[l], w.data_ptr<T>(), sizeof(T) * w.numel());
    if (L.bias) {
      const at::Tensor b = ts[k++].contiguous();
      std::memcpy(p + L.b_off[l], b.data_ptr<T>(), sizeof(T) * b.numel());
    }
  }
}

template <typename T>
class TorchSine {
 public:
  TorchSine(const SineProblem& pb, const SineData& data)
      : pb_(pb),
        rl_(pb.regressor),
        ll_(pb.loss),
        reg_(pb.regressor.sizes, Activation::Relu, true),
        loss_(pb.loss.sizes, Activation::Relu, false) {
    const int64_t n = static_cast<int64_t>(data.x.size());
    x_ = at::empty({n, 1}, at::TensorOptions().dtype(scalar_type<T>()));
    t_ = at::empty({n, 1}, at::TensorOptions().dtype(scalar_type<T>()));
    for (int64_t i = 0; i < n; ++i) {
      x_.data_ptr<T>()[i] = static_cast<T>(data.x[i]);
      t_.data_ptr<T>()[i] = static_cast<T>(data.y[i]);
    }
  }

  at::Tensor inner_loss(const Params& theta, const Params& phi) const {
    const at::Tensor y = reg_.forward(x_, theta);
    return at::softplus(loss_.forward(at::cat({y, t_}, 1), phi)).mean();
  }
  at::Tensor mse(const Params& theta) const { return (reg_.forward(x_, theta) - t_).pow(2).mean(); }

  // K unrolled inner steps with create_graph, then dL_T/dphi.
  void meta_grad(const T* theta, const T* phi, T* gphi, double* task_loss, double* inner_loss_out) const {
    Params th = to_tensors(rl_, theta, true);
    const Params ph = to_tensors(ll_, phi, true);
    for (int k = 0; k < pb_.inner_steps; ++k) {
      const at::Tensor lin = inner_loss(th, ph);
      if (k == 0) *inner_loss_out = lin.item<double>();
      const auto g = torch::autograd::grad({lin}, th, {}, /*retain_graph=*/true, /*create_graph=*/true);
      for (size_t i = 0; i < th.size(); ++i) th[i] = at::sub(th[i], g[i], pb_.inner_lr);
    }
    const at::Tensor lt = mse(th);
    *task_loss = lt.item<double>();
    from_tensors(ll_, torch::autograd::grad({lt}, ph), gphi);
  }

  std::vector<double> train(T* theta, const T* phi, double lr, int steps) const {
    std::vector<double> trace;
    Params th = to_tensors(rl_, theta, true);
    const Params ph = phi ? to_tensors(ll_, phi, false) : Params{};
    for (int s = 0; s < steps; ++s) {
      const at::Tensor m = mse(th);
      trace.push_back(m.item<double>());
      const at::Tensor loss = phi ? inner_loss(th, ph) : m;
      const auto g = torch::autograd::grad({loss}, th);
      for (size_t i = 0; i < th.size(); ++i) th[i] = at::sub(th[i].detach(), g[i], lr).set_requires_grad(true);
    }
    const at::Tensor final_mse = mse(th);
    trace.push_back(final_mse.item<double>());
    from_tensors(rl_, th, theta);
    return trace;
  }

 private:
  SineProblem pb_;
  Layout rl_, ll_;
  FunctionalMlp reg_, loss_;
  at::Tensor x_, t_;
};

template <typename T>
std::vector<T> cast_vec(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <typename T>
MetaGradient meta_gradient_t(SineImpl impl, const SineProblem& pb, const std::vector<double>& theta,
                             const std::vector<double>& phi, const SineData& data) {
  const std::vector<T> th = cast_vec<T>(theta), ph = cast_vec<T>(phi);
  std::vector<T> g(ph.size());
  MetaGradient out;
  if (impl == SineImpl::Eigen) EigenSine<T>(pb, data).meta_grad(th.data(), ph.data(), g.data(), &out.task_loss, &out.inner_loss);
  else TorchSine<T>(pb, data).meta_grad(th.data(), ph.data(), g.data(), &out.task_loss, &out.inner_loss);
  out.grad.assign(g.begin(), g.end());
  return out;
}

template <typename T>
std::vector<double> train_t(SineImpl impl, const SineProblem& pb, std::vector<double>& theta,
                            const std::vector<double>& phi, const SineData& data, double lr, int steps) {
  std::vector<T> th = cast_vec<T>(theta);
  const std::vector<T> ph = cast_vec<T>(phi);
  const T* php = phi.empty() ? nullptr : ph.data();
  std::vector<double> trace;
  if (impl == SineImpl::Autograd) {
    trace = TorchSine<T>(pb, data).train(th.data(), php, lr, steps);
  } else {
    EigenSine<T> eng(pb, data);
    std::vector<T> g(th.size());
    const T step = static_cast<T>(lr);
    for (int s = 0; s < steps; ++s) {
      if (php) {
        trace.push_back(eng.mse(eng.reg0(), th.data(), nullptr));
        eng.inner_grad(th.data(), php, g.data());
      } else {
        trace.push_back(eng.mse(eng.reg0(), th.data(), g.data()));
      }
      for (size_t i = 0; i < th.size(); ++i) th[i] -= step * g[i];
    }
    trace.push_back(eng.mse(eng.reg0(), th.data(), nullptr));
  }
  theta.assign(th.begin(), th.end());
  return trace;
}

}  // namespace

MetaGradient sine_meta_gradient(SineImpl impl, const SineProblem& problem, const std::vector<double>& theta,
                                const std::vector<double>& phi, const SineData& data) {
  check_problem(problem, theta.size(), phi.size());
  if (phi.empty()) throw Error("sine: the meta-gradient needs the learned loss's parameters");
  if (impl == SineImpl::Eigen && problem.inner_steps != 1)
    throw Error("sine: the eigen implementation supports inner_steps=1 only (got " +
                std::to_string(problem.inner_steps) + "); use the autograd implementation");
  return problem.float64 ? meta_gradient_t<double>(impl, problem, theta, phi, data)
                         : meta_gradient_t<float>(impl, problem, theta, phi, data);
}

double sine_task_loss_after_inner(const SineProblem& problem, const std::vector<double>& theta,
                                  const std::vector<double>& phi, const SineData& data, double* relu_margin) {
  check_problem(problem, theta.size(), phi.size());
  EigenSine<double> eng(problem, data);
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

std::vector<double> sine_train_regressor(SineImpl impl, const SineProblem& problem, std::vector<double>& theta,
                                         const std::vector<double>& phi, const SineData& data, double lr,
                                         int steps) {
  check_problem(problem, theta.size(), phi.size());
  return problem.float64 ? train_t<double>(impl, problem, theta, phi, data, lr, steps)
                         : train_t<float>(impl, problem, theta, phi, data, lr, steps);
}

// ---- the learned-loss file ---------------------------------------------------------------

void save_sine_loss(const std::string& path, const SineLoss& loss, const nlohmann::json& extra_meta) {
  const MlpShape shape{loss.sizes, false};
  if (loss.sizes.size() < 2 || loss.sizes.front() != 2 || loss.sizes.back() != 1)
    throw Error("internal: a sine loss must be 2-...-1");
  if (loss.phi.size() != shape.num_params()) throw Error("internal: sine loss parameters do not match its sizes");
  Archive a("sine_loss");
  a.meta() = extra_meta.is_object() ? extra_meta : nlohmann::json::object();
  a.meta()["format"] = 1;
  a.meta()["sizes"] = loss.sizes;
  a.meta()["input"] = {"prediction", "target"};
  a.meta()["activation"] = "relu";
  a.meta()["bias"] = false;
  a.meta()["output"] = "softplus";
  a.meta()["float64"] = loss.float64;
  const Layout L(shape);
  for (size_t l = 0; l < L.layers(); ++l) {
    const size_t count = static_cast<size_t>(L.sizes[l]) * L.sizes[l + 1];
    const std::vector<int64_t> blob_shape{L.sizes[l], L.sizes[l + 1]};
    const double* src = loss.phi.data() + L.w_off[l];
    const std::string name = "phi." + std::to_string(l);
    if (loss.float64) {
      a.put(name, "f64", blob_shape, src, count * sizeof(double));
    } else {
      std::vector<float> f(src, src + count);
      a.put(name, "f32", blob_shape, f.data(), count * sizeof(float));
    }
  }
  a.save(path);
}

SineLoss load_sine_loss(const std::string& path) {
  const Archive a = Archive::load(path, "sine_loss");
  SineLoss loss;
  try {
    loss.sizes = a.meta().at("sizes").get<std::vector<int>>();
    loss.float64 = a.meta().at("float64").get<bool>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": sine loss metadata lacks 'sizes' or 'float64'");
  }
  const auto& s = loss.sizes;
  if (s.size() < 2 || s.front() != 2 || s.back() != 1 ||
      std::any_of(s.begin(), s.end(), [](int v) { return v < 1; }))
    throw Error(path + ": sine loss sizes must be 2-...-1 with positive hidden sizes");
  const Layout L(MlpShape{s, false});
  loss.phi.resize(L.total);
  const std::string dtype = loss.float64 ? "f64" : "f32";
  for (size_t l = 0; l < L.layers(); ++l) {
    const std::string name = "phi." + std::to_string(l);
    const Blob& b = a.get(name);
    const std::vector<int64_t> want{L.sizes[l], L.sizes[l + 1]};
    if (b.dtype != dtype || b.shape != want)
      throw Error(path + ": entry '" + name + "' is " + b.dtype + " of the wrong shape; the sizes in the file's " +
                  "metadata need " + dtype + " [" + std::to_string(want[0]) + ", " + std::to_string(want[1]) + "]");
    const size_t count = static_cast<size_t>(want[0] * want[1]);
    double* dst = loss.phi.data() + L.w_off[l];
    if (loss.float64) {
      std::memcpy(dst, b.bytes.data(), count * sizeof(double));
    } else {
      std::vector<float> f(count);
      std::memcpy(f.data(), b.bytes.data(), count * sizeof(float));
      std::copy(f.begin(), f.end(), dst);
    }
  }
  if (a.has("phi." + std::to_string(L.layers())))
    throw Error(path + ": has more layers than its metadata's sizes");
  return loss;
}

// ---- meta-training -----------------------------------------------------------------------

namespace {

// phi, Adam and the meta-gradient engine in precision T.
class LearnerCore {
 public:
  virtual ~LearnerCore() = default;
  virtual SineMetaLearner::Step step(uint64_t theta_seed) = 0;
  virtual std::vector<double> phi() const = 0;
  // Adam state and phi (exact: float values convert to double and back losslessly).
  virtual void save(Archive& a, const std::string& prefix) const = 0;
  virtual void load(const Archive& a, const std::string& prefix) = 0;
};

template <typename T>
class LearnerCoreT : public LearnerCore {
 public:
  LearnerCoreT(SineImpl impl, const SineProblem& pb, const SineData& data, SineInit train_init,
               const std::vector<double>& phi0, double outer_lr)
      : pb_(pb), train_init_(train_init), lr_(outer_lr), phi_(cast_vec<T>(phi0)) {
    m_.assign(phi_.size(), T(0));
    v_.assign(phi_.size(), T(0));
    g_.assign(phi_.size(), T(0));
    theta_.assign(pb.regressor.num_params(), T(0));
    if (impl == SineImpl::Eigen) eigen_ = std::make_unique<EigenSine<T>>(pb, data);
    else torch_ = std::make_unique<TorchSine<T>>(pb, data);
  }

  SineMetaLearner::Step step(uint64_t theta_seed) override {
    init_mlp_into(pb_.regressor, train_init_, theta_seed, theta_.data());
    SineMetaLearner::Step st;
    if (eigen_) eigen_->meta_grad(theta_.data(), phi_.data(), g_.data(), &st.task_loss, &st.inner_loss);
    else torch_->meta_grad(theta_.data(), phi_.data(), g_.data(), &st.task_loss, &st.inner_loss);
    double sq = 0;
    for (T v : g_) sq += static_cast<double>(v) * v;
    st.grad_norm = std::sqrt(sq);
    if (!std::isfinite(st.task_loss) || !std::isfinite(st.grad_norm)) return st;
    // Adam (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8).
    ++t_;
    const T b1 = T(0.9), b2 = T(0.999), eps = T(1e-8);
    const T bc1 = T(1) - static_cast<T>(std::pow(0.9, t_)), bc2 = T(1) - static_cast<T>(std::pow(0.999, t_));
    const T step = static_cast<T>(lr_) / bc1, sqrt_bc2 = std::sqrt(bc2);
    for (size_t i = 0; i < phi_.size(); ++i) {
      m_[i] = b1 * m_[i] + (T(1) - b1) * g_[i];
      v_[i] = b2 * v_[i] + (T(1) - b2) * g_[i] * g_[i];
      phi_[i] -= step * m_[i] / (std::sqrt(v_[i]) / sqrt_bc2 + eps);
    }
    return st;
  }

  std::vector<double> phi() const override { return std::vector<double>(phi_.begin(), phi_.end()); }
  void save(Archive& a, const std::string& prefix) const override {
    a.put_f64(prefix + "phi", std::vector<double>(phi_.begin(), phi_.end()));
    a.put_f64(prefix + "adam_m", std::vector<double>(m_.begin(), m_.end()));
    a.put_f64(prefix + "adam_v", std::vector<double>(v_.begin(), v_.end()));
    a.put_f64(prefix + "adam_t", {static_cast<double>(t_)});
  }
  void load(const Archive& a, const std::string& prefix) override {
    auto into = [&](const std::string& name, std::vector<T>& dst) {
      const std::vector<double> v = a.get_f64(prefix + name);
      if (v.size() != dst.size())
        throw Error(a.path() + ": entry '" + prefix + name + "' has " + std::to_string(v.size()) +
                    " values, the config's learned loss has " + std::to_string(dst.size()));
      for (size_t i = 0; i < v.size(); ++i) dst[i] = static_cast<T>(v[i]);
    };
    into("phi", phi_);
    into("adam_m", m_);
    into("adam_v", v_);
    t_ = static_cast<long>(a.get_f64(prefix + "adam_t").at(0));
  }

 private:
  SineProblem pb_;
  SineInit train_init_;
  double lr_;
  std::vector<T> phi_, m_, v_, g_, theta_;
  long t_ = 0;
  std::unique_ptr<EigenSine<T>> eigen_;
  std::unique_ptr<TorchSine<T>> torch_;
};

// Seed streams (tags keep them apart).
constexpr uint64_t kTagLossInit = 1, kTagTrainData = 2, kTagTrainTheta = 3;
constexpr uint64_t kTagTestTasks = 101, kTagTestData = 102, kTagTestTheta = 103;

SineProblem problem_from(const Config& cfg) {
  SineProblem pb;
  pb.regressor = sine_regressor_shape(cfg.get_int_list("sine.regressor_hidden"));
  pb.loss = sine_loss_shape(cfg.get_int_list("sine.loss_hidden"));
  pb.inner_lr = cfg.get_double("sine.inner_lr");
  pb.inner_steps = static_cast<int>(cfg.get_int("sine.inner_steps"));
  pb.float64 = cfg.get_bool("sine.float64");
  return pb;
}

}  // namespace

struct SineMetaLearner::Impl {
  SineProblem problem;
  SineData data;
  uint64_t seed = 0;
  std::unique_ptr<LearnerCore> core;
};

SineMetaLearner::SineMetaLearner(const Config& cfg) : impl_(std::make_unique<Impl>()) {
  check_sine_config(cfg);
  impl_->problem = problem_from(cfg);
  impl_->seed = static_cast<uint64_t>(cfg.get_int("seed"));
  impl_->data = sample_sine_data(sine_train_task(), static_cast<int>(cfg.get_int("sine.points")),
                                 mix_seed(impl_->seed, kTagTrainData));
  const SineImpl impl = parse_sine_impl(cfg.get_string("sine.implementation"));
  const SineInit train_init = parse_sine_init(cfg.get_string("sine.train_init"));
  const std::vector<double> phi0 = init_mlp_params(impl_->problem.loss, parse_sine_init(cfg.get_string("sine.loss_init")),
                                                   mix_seed(impl_->seed, kTagLossInit));
  const double outer_lr = cfg.get_double("sine.outer_lr");
  if (impl_->problem.float64)
    impl_->core = std::make_unique<LearnerCoreT<double>>(impl, impl_->problem, impl_->data, train_init, phi0, outer_lr);
  else
    impl_->core = std::make_unique<LearnerCoreT<float>>(impl, impl_->problem, impl_->data, train_init, phi0, outer_lr);
}

SineMetaLearner::~SineMetaLearner() = default;

SineMetaLearner::Step SineMetaLearner::step(int iteration) {
  const Step st = impl_->core->step(mix_seed(mix_seed(impl_->seed, kTagTrainTheta), static_cast<uint64_t>(iteration)));
  if (!std::isfinite(st.task_loss) || !std::isfinite(st.grad_norm)) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "sine meta-training diverged at iteration %d (task loss %g, gradient norm %g)",
                  iteration, st.task_loss, st.grad_norm);
    throw NonFiniteError(buf);
  }
  return st;
}

SineLoss SineMetaLearner::loss() const {
  SineLoss l;
  l.sizes = impl_->problem.loss.sizes;
  l.float64 = impl_->problem.float64;
  l.phi = impl_->core->phi();
  return l;
}

void SineMetaLearner::save(Archive& a, const std::string& prefix) const { impl_->core->save(a, prefix); }
void SineMetaLearner::load(const Archive& a, const std::string& prefix) { impl_->core->load(a, prefix); }

const SineProblem& SineMetaLearner::problem() const { return impl_->problem; }
const SineData& SineMetaLearner::data() const { return impl_->data; }

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

std::string run_sine_meta_train(const Config& cfg, const std::string& run_dir, bool quiet) {
  check_sine_config(cfg);
  const fs::path dir(run_dir);
  if (!fs::is_directory(dir)) throw Error(run_dir + ": run folder does not exist");
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  write_file_atomic((dir / "config.yaml").string(), cfg.to_yaml());

  const int iterations = static_cast<int>(cfg.get_int("sine.iterations"));
  const auto wall_start = Clock::now();
  SineMetaLearner learner(cfg);
  MetricsWriter metrics(dir, {"iteration", "task_loss", "inner_loss", "grad_norm", "step_ms"}, false);
  Progress progress("meta-train", iterations, quiet);
  std::vector<double> step_ms, task_losses;
  for (int it = 1; it <= iterations; ++it) {
    const auto t0 = Clock::now();
    const SineMetaLearner::Step st = learner.step(it);
    const double ms = ms_since(t0);
    step_ms.push_back(ms);
    task_losses.push_back(st.task_loss);
    metrics.append({{"iteration", it},
                    {"task_loss", st.task_loss},
                    {"inner_loss", st.inner_loss},
                    {"grad_norm", st.grad_norm},
                    {"step_ms", ms}});
    char text[96];
    std::snprintf(text, sizeof(text), "task loss %.4f | %.3f ms/step", st.task_loss, ms);
    progress.update(it, text);
  }
  progress.finish();

  const std::string loss_file = (dir / "loss.ml3").string();
  const std::string impl = cfg.get_string("sine.implementation");
  const SineProblem& pb = learner.problem();
  save_sine_loss(loss_file, learner.loss(),
                 {{"seed", cfg.get_int("seed")},
                  {"iterations", iterations},
                  {"implementation", impl},
                  {"inner_lr", pb.inner_lr},
                  {"inner_steps", pb.inner_steps},
                  {"outer_lr", cfg.get_double("sine.outer_lr")},
                  {"regressor_sizes", pb.regressor.sizes},
                  {"points", cfg.get_int("sine.points")},
                  {"config", cfg.to_yaml()}});

  const size_t tail = std::min<size_t>(10, task_losses.size());
  const std::vector<double> last(task_losses.end() - static_cast<std::ptrdiff_t>(tail), task_losses.end());
  const nlohmann::json summary = {
      {"kind", "sine"},
      {"seed", cfg.get_int("seed")},
      {"iterations", iterations},
      {"implementation", impl},
      {"float64", pb.float64},
      {"inner_steps", pb.inner_steps},
      {"meta_step_ms_median", median(step_ms)},
      {"initial_task_loss", task_losses.empty() ? nlohmann::json() : nlohmann::json(task_losses.front())},
      {"final_task_loss", task_losses.empty() ? nlohmann::json() : nlohmann::json(task_losses.back())},
      {"final_task_loss_mean10", tail ? nlohmann::json(mean(last)) : nlohmann::json()},
      {"wall_seconds", ms_since(wall_start) / 1000.0},
      {"loss_file", loss_file}};
  const std::string text = summary.dump(2);
  write_file_atomic((dir / "summary.json").string(), text + "\n");
  return text;
}

// ---- meta-test ----------------------------------------------------------------------------

std::string run_sine_meta_test(const std::string& loss_file, const Config& cfg, bool quiet) {
  check_sine_config(cfg);
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const SineLoss loss = load_sine_loss(loss_file);
  const SineImpl impl = parse_sine_impl(cfg.get_string("sine.implementation"));
  const SineInit test_init = parse_sine_init(cfg.get_string("sine.test_init"));
  const int n_tasks = static_cast<int>(cfg.get_int("sine.test_tasks"));
  const int n_seeds = static_cast<int>(cfg.get_int("sine.test_seeds"));
  const int steps = static_cast<int>(cfg.get_int("sine.test_steps"));
  const int points = static_cast<int>(cfg.get_int("sine.points"));
  const uint64_t test_seed = static_cast<uint64_t>(cfg.get_int("sine.test_seed"));
  const double lr = cfg.get_double("sine.inner_lr");

  const std::vector<SineTask> tasks = sine_test_tasks(n_tasks, mix_seed(test_seed, kTagTestTasks));
  std::vector<SineData> data;
  for (int j = 0; j < n_tasks; ++j)
    data.push_back(sample_sine_data(tasks[j], points, mix_seed(mix_seed(test_seed, kTagTestData), j)));

  Progress progress("meta-test", 2 * n_tasks * n_seeds, quiet);
  int done = 0;
  auto evaluate = [&](const std::vector<int>& hidden, const char* label) {
    SineProblem pb;
    pb.regressor = sine_regressor_shape(hidden);
    pb.loss = MlpShape{loss.sizes, false};
    pb.inner_lr = lr;
    pb.float64 = cfg.get_bool("sine.float64");
    std::vector<double> init_all, learned_all, mse_all;
    int better = 0, diverged = 0;
    nlohmann::json per_task = nlohmann::json::array();
    for (int j = 0; j < n_tasks; ++j) {
      std::vector<double> learned, plain;
      for (int s = 0; s < n_seeds; ++s) {
        const uint64_t init_seed = mix_seed(mix_seed(mix_seed(test_seed, kTagTestTheta), s), j);
        const std::vector<double> theta0 = init_mlp_params(pb.regressor, test_init, init_seed);
        std::vector<double> th = theta0;
        const std::vector<double> tl = sine_train_regressor(impl, pb, th, loss.phi, data[j], lr, steps);
        th = theta0;
        const std::vector<double> tm = sine_train_regressor(impl, pb, th, {}, data[j], lr, steps);
        init_all.push_back(tl.front());
        learned.push_back(tl.back());
        plain.push_back(tm.back());
        if (!std::isfinite(tl.back())) ++diverged;
        if (tl.back() < tm.back()) ++better;
        char text[96];
        std::snprintf(text, sizeof(text), "%s task %d seed %d", label, j, s);
        progress.update(++done, text);
      }
      learned_all.insert(learned_all.end(), learned.begin(), learned.end());
      mse_all.insert(mse_all.end(), plain.begin(), plain.end());
      per_task.push_back({{"amplitude", tasks[j].amplitude},
                          {"phase", tasks[j].phase},
                          {"mse_learned_loss", mean(learned)},
                          {"mse_mse", mean(plain)}});
    }
    return nlohmann::json{{"hidden", hidden},
                          {"mse_initial", mean(init_all)},
                          {"mse_learned_loss", mean(learned_all)},
                          {"mse_mse", mean(mse_all)},
                          {"learned_better_fraction", learned_all.empty() ? 0.0 : double(better) / learned_all.size()},
                          {"diverged", diverged},
                          {"per_task", per_task}};
  };
  nlohmann::json out = {{"split", "ood"},
                        {"tasks", n_tasks},
                        {"seeds", n_seeds},
                        {"steps", steps},
                        {"lr", lr},
                        {"implementation", sine_impl_name(impl)},
                        {"loss_file", loss_file},
                        {"loss_sizes", loss.sizes}};
  out["regressor"] = evaluate(cfg.get_int_list("sine.regressor_hidden"), "regressor");
  out["transfer"] = evaluate(cfg.get_int_list("sine.transfer_hidden"), "transfer");
  progress.finish();
  return out.dump(2);
}

double sine_meta_step_ms(const Config& cfg, int steps) {
  check_sine_config(cfg);
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  SineMetaLearner learner(cfg);
  const int warmup = std::min(20, std::max(steps / 10, 1));
  for (int i = 1; i <= warmup; ++i) learner.step(i);
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = Clock::now();
    learner.step(warmup + 1 + i);
    ms.push_back(ms_since(t0));
  }
  return median(ms);
}

}  // namespace ml3
