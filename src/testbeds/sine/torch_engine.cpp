// The LibTorch autograd reference: K unrolled inner steps with create_graph,
// then dL_T/dphi; and plain SGD through autograd. The only file of src/sine/
// that includes LibTorch (the smallest headers that declare what it uses).
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/sin.h>
#include <ATen/ops/softplus.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>

#include "core/error.h"
#include "models/nets.h"
#include "src/testbeds/sine/engine.h"
#include "src/testbeds/sine/internal.h"
#include "src/testbeds/sine/sine.h"

namespace ml3::sine_detail {
namespace {

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
class TorchSine : public Engine<T> {
 public:
  TorchSine(const SineProblem& pb, const SineData& data)
      : pb_(pb),
        freq_(pb.model == SineModel::Frequency),
        rl_(pb.regressor),
        ll_(pb.loss),
        reg_(pb.regressor.sizes, Activation::Relu, pb.regressor.bias),
        loss_(pb.loss.sizes, freq_ ? Activation::Elu : Activation::Relu, pb.loss.bias),
        theta_star_(data.theta_star) {
    if (pb.shaping && !std::isfinite(theta_star_))
      throw Error("sine: shaping needs the task's true parameter theta* (a frequency task)");
    const int64_t n = static_cast<int64_t>(data.x.size());
    x_ = at::empty({n, 1}, at::TensorOptions().dtype(scalar_type<T>()));
    t_ = at::empty({n, 1}, at::TensorOptions().dtype(scalar_type<T>()));
    for (int64_t i = 0; i < n; ++i) {
      x_.data_ptr<T>()[i] = static_cast<T>(data.x[i]);
      t_.data_ptr<T>()[i] = static_cast<T>(data.y[i]);
    }
  }

  // Mlp: the regressor; frequency: sin(theta x) (theta is a 1x1 weight).
  at::Tensor predict(const Params& theta) const { return freq_ ? at::sin(x_.mm(theta[0])) : reg_.forward(x_, theta); }
  at::Tensor inner_loss(const Params& theta, const Params& phi) const {
    const at::Tensor y = predict(theta);
    if (freq_) return loss_.forward(at::cat({x_, y, t_}, 1), phi).mean();
    return at::softplus(loss_.forward(at::cat({y, t_}, 1), phi)).mean();
  }
  at::Tensor mse(const Params& theta) const { return predict(theta).sub(t_).pow(2).mean(); }
  // The meta-training task loss: the MSE, or |theta - theta*| with shaping.
  at::Tensor task_loss(const Params& theta) const {
    return pb_.shaping ? at::abs(at::sub(theta[0].sum(), theta_star_)) : mse(theta);
  }

  void values(const T* theta, const T* phi, double* learned, double* mse_out) override {
    c10::AutoGradMode no_grad(false);
    const Params th = to_tensors(rl_, theta, false);
    if (phi) {
      const at::Tensor l = inner_loss(th, to_tensors(ll_, phi, false));
      *learned = l.item<double>();
    }
    const at::Tensor m = mse(th);
    *mse_out = m.item<double>();
  }

  // K unrolled inner steps with create_graph, then dL_T/dphi.
  void meta_grad(const T* theta, const T* phi, T* gphi, double* task_loss_out, double* inner_loss_out,
                 T* theta_after) override {
    Params th = to_tensors(rl_, theta, true);
    const Params ph = to_tensors(ll_, phi, true);
    for (int k = 0; k < pb_.inner_steps; ++k) {
      const at::Tensor lin = inner_loss(th, ph);
      if (k == 0) *inner_loss_out = lin.item<double>();
      const auto g = torch::autograd::grad({lin}, th, {}, /*retain_graph=*/true, /*create_graph=*/true);
      for (size_t i = 0; i < th.size(); ++i) th[i] = at::sub(th[i], g[i], pb_.inner_lr);
    }
    const at::Tensor lt = task_loss(th);
    *task_loss_out = lt.item<double>();
    // The loss's last bias (frequency model) shifts L_in by a constant: no gradient.
    std::vector<at::Tensor> gp = torch::autograd::grad({lt}, ph, {}, c10::nullopt, false, /*allow_unused=*/true);
    for (size_t i = 0; i < gp.size(); ++i)
      if (!gp[i].defined()) gp[i] = at::zeros_like(ph[i]);
    from_tensors(ll_, gp, gphi);
    if (theta_after) {
      Params detached;
      for (const auto& t : th) detached.push_back(t.detach());
      from_tensors(rl_, detached, theta_after);
    }
  }

  std::vector<double> train(T* theta, const T* phi, double lr, int steps) override {
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
  bool freq_;
  Layout rl_, ll_;
  FunctionalMlp reg_, loss_;
  double theta_star_;
  at::Tensor x_, t_;
};

}  // namespace

template <typename T>
std::unique_ptr<Engine<T>> make_torch_engine(const SineProblem& pb, const SineData& data) {
  return std::make_unique<TorchSine<T>>(pb, data);
}
template std::unique_ptr<Engine<float>> make_torch_engine<float>(const SineProblem&, const SineData&);
template std::unique_ptr<Engine<double>> make_torch_engine<double>(const SineProblem&, const SineData&);

void set_sine_threads(int threads) { set_compute_threads(threads); }

}  // namespace ml3::sine_detail
