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
#include "src/testbeds/sine/engine.h"
#include "src/testbeds/sine/internal.h"
#include "src/testbeds/sine/sine.h"

namespace ml3 {

using namespace sine_detail;

namespace {

template <typename T>
MetaGradient meta_gradient_t(SineImpl impl, const SineProblem& pb, const std::vector<double>& theta,
                             const std::vector<double>& phi, const SineData& data) {
  const std::vector<T> th = cast_vec<T>(theta), ph = cast_vec<T>(phi);
  std::vector<T> g(ph.size()), after(th.size());
  MetaGradient out;
  make_engine<T>(impl, pb, data)->meta_grad(th.data(), ph.data(), g.data(), &out.task_loss, &out.inner_loss,
                                            after.data());
  out.grad.assign(g.begin(), g.end());
  out.theta_after.assign(after.begin(), after.end());
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
  virtual SineMetaLearner::Step step(uint64_t theta_seed, int iteration) = 0;
  virtual std::vector<double> phi() const = 0;
  // phi and its Adam state (exact: float values convert to double and back losslessly).
  virtual void save(Archive& a, const std::string& prefix) const = 0;
  virtual void load(const Archive& a, const std::string& prefix) = 0;
};

// The frequency model's meta-training schedule (the reference's): every
// meta-iteration, `tasks` tasks theta* ~ U[fmin, fmax], each from theta =
// finit through `task_steps` inner steps, one Adam step of phi after each.
struct FrequencySchedule {
  int tasks = 1, task_steps = 1, points = 64, iterations = 1;
  double lr_decay = 0;  // the outer lr falls linearly to (1 - lr_decay) x over the iterations
  double fmin = -5, fmax = 5, finit = 0.1;
  uint64_t seed = 0;
};

template <typename T>
class LearnerCoreT : public LearnerCore {
 public:
  LearnerCoreT(SineImpl impl, const SineProblem& pb, const SineData& data, SineInit train_init,
               const std::vector<double>& phi0, double outer_lr, const FrequencySchedule& fs)
      : impl_(impl),
        pb_(pb),
        train_init_(train_init),
        lr_(outer_lr),
        phi_(cast_vec<T>(phi0)),
        fs_(fs),
        engine_(pb.model == SineModel::Mlp ? make_engine<T>(impl, pb, data) : nullptr) {
    m_.assign(phi_.size(), T(0));
    v_.assign(phi_.size(), T(0));
    g_.assign(phi_.size(), T(0));
    theta_.assign(pb.regressor.num_params(), T(0));
  }

  SineMetaLearner::Step step(uint64_t theta_seed, int iteration) override {
    if (pb_.model == SineModel::Frequency) return frequency_step(iteration);
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

  // Mean over tasks of the last inner step's task loss and of the first
  // step's inner loss; the gradient norm is the mean over Adam steps.
  SineMetaLearner::Step frequency_step(int iteration) {
    SineMetaLearner::Step st;
    double gsum = 0;
    const double frac = fs_.iterations > 1 ? std::min(1.0, (iteration - 1.0) / (fs_.iterations - 1.0)) : 0.0;
    const double lr = lr_ * (1.0 - fs_.lr_decay * frac);
    for (int j = 0; j < fs_.tasks; ++j) {
      const uint64_t task_seed = mix_seed(mix_seed(mix_seed(fs_.seed, kTagTrainData), static_cast<uint64_t>(iteration)), j);
      Rng rng(task_seed);
      const double theta_star = rng.uniform(fs_.fmin, fs_.fmax);
      const SineData data = frequency_data(theta_star, fs_.points, mix_seed(task_seed, 1));
      const auto engine = make_engine<T>(impl_, pb_, data);
      theta_.assign(1, static_cast<T>(fs_.finit));
      for (int s = 0; s < fs_.task_steps; ++s) {
        double tl = 0, il = 0;
        engine->meta_grad(theta_.data(), phi_.data(), g_.data(), &tl, &il, theta_.data());
        double sq = 0;
        for (T v : g_) sq += static_cast<double>(v) * v;
        if (!std::isfinite(tl) || !std::isfinite(sq) || !std::isfinite(static_cast<double>(theta_[0]))) {
          st.task_loss = tl, st.grad_norm = std::sqrt(sq);
          return st;
        }
        gsum += std::sqrt(sq);
        if (s == 0) st.inner_loss += il / fs_.tasks;
        if (s + 1 == fs_.task_steps) st.task_loss += tl / fs_.tasks;
        adam_step(phi_.data(), g_.data(), m_.data(), v_.data(), phi_.size(), AdamHyper{}, ++t_, lr);
      }
    }
    st.grad_norm = gsum / (fs_.tasks * fs_.task_steps);
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
  SineImpl impl_;
  SineProblem pb_;
  SineInit train_init_;
  double lr_;
  std::vector<T> phi_, m_, v_, g_, theta_;
  FrequencySchedule fs_;
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
  FrequencySchedule fs;
  fs.tasks = static_cast<int>(cfg.get_int("sine.tasks_per_iteration"));
  fs.task_steps = static_cast<int>(cfg.get_int("sine.task_steps"));
  fs.points = static_cast<int>(cfg.get_int("sine.points"));
  fs.fmin = cfg.get_double("sine.train_frequency_min");
  fs.fmax = cfg.get_double("sine.train_frequency_max");
  fs.finit = cfg.get_double("sine.frequency_init");
  fs.seed = impl_->seed;
  fs.iterations = static_cast<int>(cfg.get_int("sine.iterations"));
  fs.lr_decay = cfg.get_double("sine.outer_lr_decay");
  if (impl_->problem.float64)
    impl_->core =
        std::make_unique<LearnerCoreT<double>>(impl, impl_->problem, impl_->data, train_init, phi0, outer_lr, fs);
  else
    impl_->core =
        std::make_unique<LearnerCoreT<float>>(impl, impl_->problem, impl_->data, train_init, phi0, outer_lr, fs);
}

SineMetaLearner::~SineMetaLearner() = default;

SineMetaLearner::Step SineMetaLearner::step(int iteration) {
  const Step st = impl_->core->step(mix_seed(mix_seed(impl_->seed, kTagTrainTheta), static_cast<uint64_t>(iteration)),
                                    iteration);
  if (!std::isfinite(st.task_loss) || !std::isfinite(st.grad_norm)) {
    throw NonFiniteError(fmt::format("non-finite sine meta-step (task loss {}, gradient norm {})", st.task_loss,
                                     st.grad_norm));
  }
  return st;
}

SineLoss SineMetaLearner::loss() const {
  SineLoss l;
  l.model = impl_->problem.model;
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
