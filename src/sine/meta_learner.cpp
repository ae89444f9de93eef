// Everything that drives an engine: the two one-shot entry points (one
// meta-gradient, one regressor training) and SineMetaLearner (phi, its Adam
// state and the meta-training data).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/adam.h"
#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "src/sine/engine.h"
#include "src/sine/internal.h"
#include "src/sine/sine.h"

namespace ml3 {

using namespace sine_detail;

namespace {

template <typename T>
MetaGradient meta_gradient_t(SineImpl impl, const SineProblem& pb, const std::vector<double>& theta,
                             const std::vector<double>& phi, const SineData& data) {
  const std::vector<T> th = cast_vec<T>(theta), ph = cast_vec<T>(phi);
  std::vector<T> g(ph.size());
  MetaGradient out;
  make_engine<T>(impl, pb, data)->meta_grad(th.data(), ph.data(), g.data(), &out.task_loss, &out.inner_loss);
  out.grad.assign(g.begin(), g.end());
  return out;
}

template <typename T>
std::vector<double> train_t(SineImpl impl, const SineProblem& pb, std::vector<double>& theta,
                            const std::vector<double>& phi, const SineData& data, double lr, int steps) {
  std::vector<T> th = cast_vec<T>(theta);
  const std::vector<T> ph = cast_vec<T>(phi);
  const std::vector<double> trace =
      make_engine<T>(impl, pb, data)->train(th.data(), phi.empty() ? nullptr : ph.data(), lr, steps);
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

std::vector<double> sine_train_regressor(SineImpl impl, const SineProblem& problem, std::vector<double>& theta,
                                         const std::vector<double>& phi, const SineData& data, double lr,
                                         int steps) {
  check_problem(problem, theta.size(), phi.size());
  return problem.float64 ? train_t<double>(impl, problem, theta, phi, data, lr, steps)
                         : train_t<float>(impl, problem, theta, phi, data, lr, steps);
}

// ---- meta-training -----------------------------------------------------------------------

namespace {

// phi, Adam and the meta-gradient engine in precision T.
class LearnerCore {
 public:
  virtual ~LearnerCore() = default;
  virtual SineMetaLearner::Step step(uint64_t theta_seed) = 0;
  virtual std::vector<double> phi() const = 0;
  // phi and its Adam state (exact: float values convert to double and back losslessly).
  virtual void save(Archive& a, const std::string& prefix) const = 0;
  virtual void load(const Archive& a, const std::string& prefix) = 0;
};

template <typename T>
class LearnerCoreT : public LearnerCore {
 public:
  LearnerCoreT(SineImpl impl, const SineProblem& pb, const SineData& data, SineInit train_init,
               const std::vector<double>& phi0, double outer_lr)
      : pb_(pb),
        train_init_(train_init),
        lr_(outer_lr),
        phi_(cast_vec<T>(phi0)),
        engine_(make_engine<T>(impl, pb, data)) {
    m_.assign(phi_.size(), T(0));
    v_.assign(phi_.size(), T(0));
    g_.assign(phi_.size(), T(0));
    theta_.assign(pb.regressor.num_params(), T(0));
  }

  SineMetaLearner::Step step(uint64_t theta_seed) override {
    init_mlp_into(pb_.regressor, train_init_, theta_seed, theta_.data());
    SineMetaLearner::Step st;
    engine_->meta_grad(theta_.data(), phi_.data(), g_.data(), &st.task_loss, &st.inner_loss);
    double sq = 0;
    for (T v : g_) sq += static_cast<double>(v) * v;
    st.grad_norm = std::sqrt(sq);
    if (!std::isfinite(st.task_loss) || !std::isfinite(st.grad_norm)) return st;
    adam_step(phi_.data(), g_.data(), m_.data(), v_.data(), phi_.size(), AdamHyper{}, ++t_, lr_);
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
        throw Error(fmt::format("{}: entry '{}{}' has {} values, the config's learned loss has {}", a.path(), prefix,
                                name, v.size(), dst.size()));
      for (size_t i = 0; i < v.size(); ++i) dst[i] = static_cast<T>(v[i]);
    };
    into("phi", phi_);
    into("adam_m", m_);
    into("adam_v", v_);
    t_ = static_cast<int64_t>(a.get_f64(prefix + "adam_t").at(0));
  }

 private:
  SineProblem pb_;
  SineInit train_init_;
  double lr_;
  std::vector<T> phi_, m_, v_, g_, theta_;
  int64_t t_ = 0;
  std::unique_ptr<Engine<T>> engine_;
};

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
    throw NonFiniteError(fmt::format("non-finite sine meta-step (task loss {}, gradient norm {})", st.task_loss,
                                     st.grad_norm));
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

}  // namespace ml3
