// The mountain car meta-problem (src/mountain_car.h): differentiable
// dynamics, the pool meta-trainer under the runner, meta-test and landscape.
#include "src/mountain_car.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>

#include "core/adam.h"
#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "models/dynamics.h"
#include "models/nets.h"
#include "src/algorithm.h"
#include "src/mountain_car_engine.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using torch::Tensor;

using namespace mc;  // the physics and goals (src/mountain_car_engine.h)
constexpr uint64_t kTagLoss = 1, kTagPool = 2, kTagTest = 3;

// Value clamped, gradient passed through (the reference clamps `.data` in place).
Tensor st_clamp(const Tensor& x, double lo, double hi) { return x + (x.clamp(lo, hi) - x).detach(); }

struct Rollout {
  Tensor states;   // [P, T+1, 2]
  Tensor actions;  // [P, T] (clipped)
};

// Rollouts of P linear policies w [P, 2] from the start state.
Rollout rollout(const Tensor& w, int horizon) {
  const int64_t n = w.size(0);
  const auto opts = w.options().requires_grad(false);
  Tensor p = torch::full({n}, kStart[0], opts), v = torch::full({n}, kStart[1], opts);
  const Tensor w0 = w.select(1, 0), w1 = w.select(1, 1);
  std::vector<Tensor> ps{p}, vs{v}, as;
  for (int t = 0; t < horizon; ++t) {
    const Tensor a = (p * w0 + v * w1).clamp(-kMaxAction, kMaxAction);
    v = v + (kGravity * kMass * torch::cos(3.0 * p) + a / kMass - kFriction * v) * kDt;
    p = p + v * kDt;
    v = st_clamp(v, -kMaxSpeed, kMaxSpeed);
    p = st_clamp(p, kMinPos, kMaxPos);
    const Tensor stop = (p.detach() <= kMinPos).logical_and(v.detach() < 0);
    v = torch::where(stop, v - v.detach(), v);  // value 0, gradient passed through
    ps.push_back(p), vs.push_back(v), as.push_back(a);
  }
  return {torch::stack({torch::stack(ps, 1), torch::stack(vs, 1)}, 2), torch::stack(as, 1)};
}

Tensor point(const double* xy, const Tensor& like) { return torch::tensor({xy[0], xy[1]}, like.options()); }

// Per policy [P]: |S - goal|, or with shaping |S[:15] - intermediate| + |S[15:] - goal|.
Tensor task_loss(const Rollout& r, bool shaped) {
  const Tensor& s = r.states;
  if (!shaped) return (s - point(kGoal, s)).pow(2).sum({1, 2}).sqrt();
  const int64_t k = std::min<int64_t>(kShapedSteps, s.size(1));
  Tensor first = (s.narrow(1, 0, k) - point(kIntermediate, s)).pow(2).sum({1, 2}).sqrt();
  if (k == s.size(1)) return first;
  return first + (s.narrow(1, k, s.size(1) - k) - point(kGoal, s)).pow(2).sum({1, 2}).sqrt();
}

// The learned loss per policy [P]: mean over t < T of M_phi(p_t, v_t, a_t, d),
// d = |s_T - goal| detached.
Tensor learned_loss(const FunctionalMlp& net, const Params& phi, const Rollout& r) {
  const int64_t n = r.states.size(0), horizon = r.actions.size(1);
  const Tensor d = (r.states.select(1, horizon) - point(kGoal, r.states)).norm(2, 1).detach();
  const Tensor rows = torch::cat({r.states.narrow(1, 0, horizon), r.actions.unsqueeze(2),
                                  d.view({n, 1, 1}).expand({n, horizon, 1})},
                                 2);
  return net.forward(rows, phi).squeeze(2).mean(1);
}

// Final position at the goal (the position bound is the goal's position).
bool at_goal(double final_position, double tolerance) { return final_position >= kGoal[0] - tolerance; }

int max_consecutive(const std::vector<double>& finals, double tolerance) {
  int best = 0, run = 0;
  for (double f : finals) {
    run = at_goal(f, tolerance) ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best;
}

struct Settings {
  int horizon = 35, pool = 1, reset_every = 1, test_steps = 2, test_seeds = 1;
  double inner_lr = 1e-3, outer_lr = 1e-3, init_scale = 0.5, tolerance = 0.01, clip = 0;
  bool shaping = true, eigen = true;
  std::vector<int> hidden{400, 400};
  uint64_t seed = 0, test_seed = 0;
  explicit Settings(const Config& c)
      : horizon(static_cast<int>(c.get_int("mountain_car.horizon"))),
        pool(static_cast<int>(c.get_int("mountain_car.pool_size"))),
        reset_every(static_cast<int>(c.get_int("mountain_car.pool_reset_every"))),
        test_steps(static_cast<int>(c.get_int("mountain_car.test_steps"))),
        test_seeds(static_cast<int>(c.get_int("mountain_car.test_seeds"))),
        inner_lr(c.get_double("mountain_car.inner_lr")),
        outer_lr(c.get_double("mountain_car.outer_lr")),
        init_scale(c.get_double("mountain_car.init_scale")),
        tolerance(c.get_double("mountain_car.goal_tolerance")),
        clip(c.get_double("mountain_car.grad_clip")),
        shaping(c.get_bool("mountain_car.shaping")),
        eigen(c.get_string("mountain_car.implementation") == "eigen"),
        hidden(c.get_int_list("mountain_car.loss_hidden")),
        seed(static_cast<uint64_t>(c.get_int("seed"))),
        test_seed(static_cast<uint64_t>(c.get_int("mountain_car.test_seed"))) {}
  std::vector<int> sizes() const {
    std::vector<int> s{4};
    s.insert(s.end(), hidden.begin(), hidden.end());
    s.push_back(1);
    return s;
  }
};

// A fresh policy: w ~ U(-scale, scale)^2.
std::array<double, 2> init_policy(uint64_t seed, double scale) {
  Rng rng(seed);
  const double a = rng.uniform(-scale, scale);
  return {a, rng.uniform(-scale, scale)};
}
uint64_t test_init_seed(uint64_t test_seed, int s) { return mix_seed(mix_seed(test_seed, kTagTest), s); }

Tensor weights_tensor(const std::vector<std::array<double, 2>>& ws, torch::Dtype dtype = torch::kFloat32) {
  Tensor t = torch::empty({static_cast<int64_t>(ws.size()), 2}, torch::kFloat64);
  auto acc = t.accessor<double, 2>();
  for (size_t i = 0; i < ws.size(); ++i) acc[i][0] = ws[i][0], acc[i][1] = ws[i][1];
  return t.to(dtype);
}

// Meta-test from one initialisation: `steps` SGD steps on the learned loss
// (phi non-empty) or on the unshaped task loss; the final position after each.
std::vector<double> train_policy(const FunctionalMlp& net, const Params& phi, std::array<double, 2> w0,
                                 const Settings& s, std::array<double, 2>* w_out = nullptr) {
  Tensor w = weights_tensor({w0}).requires_grad_(true);
  std::vector<double> finals;
  for (int k = 0; k < s.test_steps; ++k) {
    const Rollout r = rollout(w, s.horizon);
    const Tensor loss = phi.empty() ? task_loss(r, false).sum() : learned_loss(net, phi, r).sum();
    const Tensor g = torch::autograd::grad({loss}, {w})[0];
    w = (w.detach() - s.inner_lr * g).requires_grad_(true);
    torch::NoGradGuard ng;
    finals.push_back(rollout(w, s.horizon).states[0][s.horizon][0].item<double>());
  }
  if (w_out) *w_out = {w[0][0].item<double>(), w[0][1].item<double>()};
  return finals;
}

// One meta-step with LibTorch autograd (create_graph through the inner step):
// the reference the hand-derived engine is tested against. gphi: dL_T/dphi
// per tensor of phi.
MountainCarStep autograd_meta_step(const FunctionalMlp& net, const Params& phi,
                                   const std::vector<std::array<double, 2>>& pool, const Settings& s,
                                   std::vector<Tensor>& gphi) {
  Tensor w = weights_tensor(pool, phi[0].scalar_type()).requires_grad_(true);
  const Rollout r0 = rollout(w, s.horizon);
  const Tensor lin = learned_loss(net, phi, r0).sum();
  const Tensor g = torch::autograd::grad({lin}, {w}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  const Tensor w1 = w - s.inner_lr * g;
  const Rollout r1 = rollout(w1, s.horizon);
  const Tensor lt = task_loss(r1, s.shaping).mean();
  // The loss's last bias shifts it by a constant: no gradient reaches it.
  gphi = torch::autograd::grad({lt}, phi, {}, c10::nullopt, false, /*allow_unused=*/true);
  for (size_t i = 0; i < gphi.size(); ++i)
    if (!gphi[i].defined()) gphi[i] = torch::zeros_like(phi[i]);
  MountainCarStep out;
  out.task_loss = lt.item<double>();
  out.inner_loss = lin.item<double>();
  const Tensor w1d = w1.detach().to(torch::kFloat64);
  const Tensor finals = r1.states.select(1, s.horizon).select(1, 0).detach().to(torch::kFloat64);
  for (int i = 0; i < s.pool; ++i) {
    out.w_after.push_back({w1d[i][0].item<double>(), w1d[i][1].item<double>()});
    out.final_positions.push_back(finals[i].item<double>());
  }
  return out;
}

// phi's tensors as new tensors shaped like `like`, from a flat vector
// (core/small_mlp.h's layout: W_0, b_0, ...).
template <typename T>
Params tensors_of(const std::vector<T>& flat, const Params& like) {
  Params out = clone_params(like, false);
  set_from_flat(flat, out);
  return out;
}

class MountainCarMetaTrainer : public Algorithm {
 public:
  MountainCarMetaTrainer(const Config& c, const std::string& run_dir)
      : cfg_(c), run_dir_(run_dir), s_(c), net_(s_.sizes(), Activation::Elu, true) {
    set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
    like_ = net_.init(mix_seed(s_.seed, kTagLoss));
    phi_ = flat_params<float>(like_);
    m_.assign(phi_.size(), 0.f), v_.assign(phi_.size(), 0.f), g_.assign(phi_.size(), 0.f);
    if (s_.eigen)
      engine_ = std::make_unique<MountainCarEngine<float>>(s_.sizes(), s_.horizon, s_.inner_lr, s_.shaping, s_.pool);
    pool_.resize(s_.pool);
    ages_.resize(s_.pool);
    for (int i = 0; i < s_.pool; ++i) {
      pool_[i] = init_policy(mix_seed(mix_seed(s_.seed, kTagPool), resets_++), s_.init_scale);
      ages_[i] = (i * s_.reset_every) / s_.pool;  // staggered: the pool spans training stages
    }
  }
  std::string label() const override { return fmt::format("meta-train mountain car{}", s_.shaping ? " (shaped)" : ""); }
  int iterations() const override { return static_cast<int>(cfg_.get_int("mountain_car.iterations")); }
  int checkpoint_every() const override { return static_cast<int>(cfg_.get_int("mountain_car.checkpoint_every")); }
  std::vector<std::string> columns() const override {
    return {"iteration", "wall_seconds", "task_loss", "inner_loss", "grad_norm", "pool_final_position",
            "pool_at_goal", "step_ms", "eval_max_consecutive_at_goal", "eval_final_position"};
  }
  int eval_every() const override { return static_cast<int>(cfg_.get_int("mountain_car.eval_every")); }
  nlohmann::json evaluate() override {
    const std::vector<double> finals = train_policy(net_, params(), init_policy(test_init_seed(s_.test_seed, 0), s_.init_scale), s_);
    last_eval_ = max_consecutive(finals, s_.tolerance);
    return {{"eval_max_consecutive_at_goal", last_eval_}, {"eval_final_position", finals.back()}};
  }
  nlohmann::json iterate(int it) override {
    const auto t0 = std::chrono::steady_clock::now();
    MountainCarStep st;
    if (engine_) {
      st = engine_->meta_grad(phi_.data(), pool_, g_.data());
    } else {
      Params phi = params();
      for (auto& p : phi) p.set_requires_grad(true);
      std::vector<Tensor> gphi;
      st = autograd_meta_step(net_, phi, pool_, s_, gphi);
      g_ = flat_params<float>(gphi);
    }
    double sq = 0;
    for (float v : g_) sq += static_cast<double>(v) * v;
    const double gnorm = std::sqrt(sq);
    const double task = st.task_loss;
    bool finite = std::isfinite(task) && std::isfinite(gnorm);
    for (const auto& w : st.w_after) finite = finite && std::isfinite(w[0]) && std::isfinite(w[1]);
    if (!finite)
      throw NonFiniteError(fmt::format("non-finite mountain car meta-step (task loss {}, gradient norm {})", task, gnorm));
    const double scale = (s_.clip > 0 && gnorm > s_.clip) ? s_.clip / gnorm : 1.0;
    if (scale != 1.0)
      for (float& v : g_) v *= static_cast<float>(scale);
    adam_step(phi_.data(), g_.data(), m_.data(), v_.data(), phi_.size(), AdamHyper{}, ++t_, s_.outer_lr);
    // The pool keeps training under the current loss; old policies restart.
    double fsum = 0;
    int at = 0;
    for (int i = 0; i < s_.pool; ++i) {
      const double f = st.final_positions[i];
      fsum += f;
      at += at_goal(f, s_.tolerance) ? 1 : 0;
      if (++ages_[i] >= s_.reset_every) {
        pool_[i] = init_policy(mix_seed(mix_seed(s_.seed, kTagPool), resets_++), s_.init_scale);
        ages_[i] = 0;
      } else {
        pool_[i] = st.w_after[i];
      }
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    step_ms_.push_back(ms);
    task_losses_.push_back(task);
    return {{"iteration", it},
            {"task_loss", task},
            {"inner_loss", st.inner_loss / s_.pool},
            {"grad_norm", gnorm},
            {"pool_final_position", fsum / s_.pool},
            {"pool_at_goal", static_cast<double>(at) / s_.pool},
            {"step_ms", ms}};
  }
  std::string progress_text(const nlohmann::json& r) const override {
    return fmt::format("task loss {:.3f} | pool final x {:.3f} | eval at goal {} steps in a row | {:.2f} ms/it",
                       r["task_loss"].get<double>(), r["pool_final_position"].get<double>(), last_eval_,
                       r["step_ms"].get<double>());
  }
  void save(Archive& a) const override {
    put_params(a, "phi/", params());
    put_params(a, "adam_m/", tensors_of(m_, like_));
    put_params(a, "adam_v/", tensors_of(v_, like_));
    std::vector<double> pool, ages;
    for (int i = 0; i < s_.pool; ++i) pool.push_back(pool_[i][0]), pool.push_back(pool_[i][1]), ages.push_back(ages_[i]);
    a.put_f64("pool", pool);
    a.put_f64("ages", ages);
    a.put_f64("counters", {static_cast<double>(t_), static_cast<double>(resets_), static_cast<double>(last_eval_)});
  }
  void load(const Archive& a) override {
    phi_ = flat_params<float>(checked_params(a, "phi/", like_, "learned loss"));
    m_ = flat_params<float>(checked_params(a, "adam_m/", like_, "Adam moment"));
    v_ = flat_params<float>(checked_params(a, "adam_v/", like_, "Adam moment"));
    const std::vector<double> pool = a.get_f64("pool"), ages = a.get_f64("ages"), c = a.get_f64("counters");
    if (pool.size() != 2 * pool_.size() || ages.size() != ages_.size() || c.size() != 3)
      throw Error(a.path() + ": the checkpoint's policy pool does not match mountain_car.pool_size");
    for (size_t i = 0; i < pool_.size(); ++i) pool_[i] = {pool[2 * i], pool[2 * i + 1]}, ages_[i] = static_cast<int>(ages[i]);
    t_ = static_cast<int64_t>(c[0]), resets_ = static_cast<uint64_t>(c[1]), last_eval_ = static_cast<int>(c[2]);
  }
  void write_artifacts(const std::string& run_dir, int it) const override {
    Archive a("mountain_car_loss");
    a.meta() = {{"format", 1},
                {"sizes", s_.sizes()},
                {"input", {"position", "velocity", "action", "final distance to goal"}},
                {"activation", "elu"},
                {"shaping", s_.shaping},
                {"seed", cfg_.get_int("seed")},
                {"iterations", it},
                {"config", cfg_.to_yaml()}};
    put_params(a, "phi/", params());
    a.save((fs::path(run_dir) / "loss.ml3").string());
  }
  nlohmann::json summary(double) override {
    return {{"algorithm", "mountain_car"},
            {"seed", cfg_.get_int("seed")},
            {"shaping", s_.shaping},
            {"pool_size", s_.pool},
            {"meta_iteration_seconds_median", median(step_ms_) / 1000.0},
            {"final_task_loss", task_losses_.empty() ? nlohmann::json() : nlohmann::json(task_losses_.back())},
            {"eval_max_consecutive_at_goal", last_eval_},
            {"loss_file", (fs::path(run_dir_) / "loss.ml3").string()}};
  }
  Plot plot() const override {
    return {"mountain_car", "meta_curve.png",
            fmt::format("ML3 mountain car{} meta-training (seed {})", s_.shaping ? ", shaped" : ", unshaped",
                        cfg_.get_int("seed"))};
  }

 private:
  // The learned loss's parameters as tensors (shapes of like_).
  Params params() const { return tensors_of(phi_, like_); }

  Config cfg_;
  std::string run_dir_;
  Settings s_;
  FunctionalMlp net_;
  Params like_;                      // the initial parameters: shapes and dtype
  std::vector<float> phi_, m_, v_, g_;  // parameters, Adam moments, meta-gradient (flat, core/small_mlp.h order)
  std::vector<std::array<double, 2>> pool_;
  std::vector<int> ages_;
  int64_t t_ = 0;
  uint64_t resets_ = 0;
  int last_eval_ = 0;
  std::vector<double> step_ms_, task_losses_;
  std::unique_ptr<MountainCarEngine<float>> engine_;  // mountain_car.implementation: eigen
};

struct LoadedLoss {
  FunctionalMlp net;
  Params phi;
  bool shaping = false;
};

LoadedLoss load_loss(const std::string& path, const Settings& s) {
  const Archive a = Archive::load(path, "mountain_car_loss");
  LoadedLoss l;
  std::vector<int> sizes;
  try {
    sizes = a.meta().at("sizes").get<std::vector<int>>();
    l.shaping = a.meta().value("shaping", false);
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": mountain car loss metadata lacks 'sizes'");
  }
  if (sizes.size() < 2 || sizes.front() != 4 || sizes.back() != 1)
    throw Error(path + ": a mountain car loss must be 4-...-1");
  (void)s;
  l.net = FunctionalMlp(sizes, Activation::Elu, true);
  l.phi = get_mlp_params(a, "phi/", l.net);
  return l;
}

nlohmann::json policy_results(const FunctionalMlp& net, const Params& phi, const Settings& s, Progress& progress,
                              int& done) {
  nlohmann::json finals_all = nlohmann::json::array(), consecutive = nlohmann::json::array();
  int worst = s.test_steps;
  for (int k = 0; k < s.test_seeds; ++k) {
    const std::vector<double> finals = train_policy(net, phi, init_policy(test_init_seed(s.test_seed, k), s.init_scale), s);
    const int c = max_consecutive(finals, s.tolerance);
    worst = std::min(worst, c);
    finals_all.push_back(finals);
    consecutive.push_back(c);
    progress.update(++done, fmt::format("{} seed {}: {} steps at the goal in a row", phi.empty() ? "task loss" : "learned loss", k, c));
  }
  return {{"final_position_after_steps", finals_all[0]},
          {"max_consecutive_steps_at_goal", consecutive[0]},
          {"per_seed_final_position_after_steps", finals_all},
          {"per_seed_max_consecutive_steps_at_goal", consecutive},
          {"min_over_seeds_max_consecutive_steps_at_goal", worst}};
}

}  // namespace

void declare_mountain_car(Schema& s) {
  s.add_bool("mountain_car.shaping", true,
             "task loss pulls the first 15 states to the intermediate goal (-0.947, -0.0055), the rest to the goal "
             "(false: all states to the goal)");
  s.add_int("mountain_car.horizon", 35, "rollout steps T");
  s.add_int_list("mountain_car.loss_hidden", {400, 400}, "learned-loss hidden sizes (4-h...-1, ELU, biases)");
  s.add_double("mountain_car.inner_lr", 1e-3, "inner SGD step size (also at meta-test)", 0.0, 1e6, true);
  s.add_double("mountain_car.outer_lr", 1e-3, "Adam learning rate of the learned loss", 0.0, 1e6, true);
  s.add_double("mountain_car.grad_clip", 0.0, "clip the meta-gradient's norm to this (0: no clipping)", 0.0);
  s.add_int("mountain_car.iterations", 300, "outer (meta) iterations");
  s.add_int("mountain_car.pool_size", 4,
            "policies trained in parallel under the current loss (1 with pool_reset_every=1: the reference, one "
            "inner step from a fresh policy)");
  s.add_int("mountain_car.pool_reset_every", 30, "a pool policy restarts from a fresh initialisation after this many steps");
  s.add_double("mountain_car.init_scale", 0.5, "policy weights ~ U(-scale, scale) (meta-train and meta-test)", 0.0,
               1e6, true);
  s.add_int("mountain_car.test_steps", 50, "SGD steps on the learned loss at meta-test");
  s.add_int("mountain_car.test_seeds", 5, "policy initialisations at meta-test");
  s.add_int("mountain_car.test_seed", 0, "seed of the meta-test initialisations (independent of `seed`)", 0);
  s.add_double("mountain_car.goal_tolerance", 0.01, "at the goal: final position >= 0.5 - tolerance", 0.0);
  s.add_int("mountain_car.eval_every", 50, "meta-test the first test initialisation every K meta-iterations (0: never)", 0);
  s.add_int("mountain_car.checkpoint_every", 100, "checkpoint (and loss.ml3) every K meta-iterations");
  s.add_string("mountain_car.implementation", "eigen",
               "meta-gradient: eigen (derived by hand, forward-mode tangents through the rollout; float32) or "
               "autograd (LibTorch, the reference)",
               {"eigen", "autograd"});
}

void check_mountain_car_config(const Config& c) {
  if (c.get_int("mountain_car.horizon") <= kShapedSteps && c.get_bool("mountain_car.shaping"))
    throw Error("config: mountain_car.shaping needs mountain_car.horizon > 15 (the first 15 states go to the "
                "intermediate goal)");
}

MountainCarStep mountain_car_meta_step(const Config& cfg, bool autograd, const std::vector<double>& phi,
                                       const std::vector<std::array<double, 2>>& pool, std::vector<double>& gphi) {
  check_mountain_car_config(cfg);
  Settings s(cfg);
  s.pool = static_cast<int>(pool.size());
  if (!autograd) {
    MountainCarEngine<double> engine(s.sizes(), s.horizon, s.inner_lr, s.shaping, s.pool);
    if (phi.size() != engine.num_params()) throw Error("mountain car: phi has the wrong size");
    gphi.assign(phi.size(), 0.0);
    return engine.meta_grad(phi.data(), pool, gphi.data());
  }
  const FunctionalMlp net(s.sizes(), Activation::Elu, true);
  const Params like = net.init(0, 1.0, /*float64=*/true);
  Params p = tensors_of(phi, like);
  for (auto& t : p) t.set_requires_grad(true);
  std::vector<Tensor> g;
  const MountainCarStep out = autograd_meta_step(net, p, pool, s, g);
  gphi = flat_params<double>(g);
  return out;
}

std::vector<std::array<double, 2>> mountain_car_rollout(const std::array<double, 2>& w, int horizon) {
  torch::NoGradGuard ng;
  const Tensor t = weights_tensor({w}, torch::kFloat64);
  const Rollout r = rollout(t, horizon);
  std::vector<std::array<double, 2>> out;
  for (int k = 0; k <= horizon; ++k) out.push_back({r.states[0][k][0].item<double>(), r.states[0][k][1].item<double>()});
  return out;
}

std::string run_mountain_car_meta_test(const std::string& loss_file, const Config& cfg, bool quiet) {
  check_mountain_car_config(cfg);
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const Settings s(cfg);
  const LoadedLoss l = load_loss(loss_file, s);
  Progress progress("meta-test", 2 * s.test_seeds, quiet);
  int done = 0;
  nlohmann::json out = {{"loss_file", loss_file},
                        {"loss_shaping", l.shaping},
                        {"steps", s.test_steps},
                        {"lr", s.inner_lr},
                        {"test_seeds", s.test_seeds},
                        {"goal_tolerance", s.tolerance}};
  const nlohmann::json learned = policy_results(l.net, l.phi, s, progress, done);
  for (const auto& [k, v] : learned.items()) out[k] = v;
  out["task_loss_sgd"] = policy_results(l.net, {}, s, progress, done);
  progress.finish();
  return out.dump(2);
}

std::string mountain_car_landscape(const std::string& loss_file, const Config& cfg, int points) {
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const Settings s(cfg);
  const LoadedLoss l = load_loss(loss_file, s);
  torch::NoGradGuard ng;
  const std::array<double, 2> w0 = init_policy(test_init_seed(s.test_seed, 0), s.init_scale);
  std::array<double, 2> wk{};
  {
    c10::AutoGradMode on(true);
    train_policy(l.net, l.phi, w0, s, &wk);
  }
  auto values = [&](const std::vector<std::array<double, 2>>& ws) {
    const Rollout r = rollout(weights_tensor(ws), s.horizon);
    const Tensor lv = learned_loss(l.net, l.phi, r), tu = task_loss(r, false), ts = task_loss(r, true);
    const Tensor fin = r.states.select(1, s.horizon).select(1, 0);
    std::vector<std::vector<double>> out(4);
    for (size_t i = 0; i < ws.size(); ++i) {
      out[0].push_back(lv[i].item<double>());
      out[1].push_back(tu[i].item<double>());
      out[2].push_back(ts[i].item<double>());
      out[3].push_back(fin[i].item<double>());
    }
    return out;
  };
  // 1-D: w(a) = w0 + a (wK - w0), a in [-0.5, 1.5].
  std::vector<double> xs;
  std::vector<std::array<double, 2>> line;
  for (int i = 0; i < points; ++i) {
    const double a = -0.5 + 2.0 * i / (points - 1);
    xs.push_back(a);
    line.push_back({w0[0] + a * (wk[0] - w0[0]), w0[1] + a * (wk[1] - w0[1])});
  }
  const auto v1 = values(line);
  nlohmann::json one = {{"label", "from the initial (0) to the trained policy (1)"},
                        {"x_label", "a: w = w0 + a (wK - w0)"},
                        {"x", xs},
                        {"curves", {{"learned loss", v1[0]}, {"task loss", v1[1]}, {"shaped task loss", v1[2]}}},
                        {"final_position", v1[3]},
                        {"marks", {{"w0", 0.0}, {"wK", 1.0}}}};
  // 2-D: a square around both policies.
  const double lo0 = std::min(w0[0], wk[0]), hi0 = std::max(w0[0], wk[0]);
  const double lo1 = std::min(w0[1], wk[1]), hi1 = std::max(w0[1], wk[1]);
  const double c0 = (lo0 + hi0) / 2, c1 = (lo1 + hi1) / 2;
  const double half = std::max({hi0 - lo0, hi1 - lo1, 0.5}) * 0.75;
  std::vector<double> gx, gy;
  for (int i = 0; i < points; ++i) gx.push_back(c0 - half + 2 * half * i / (points - 1)), gy.push_back(c1 - half + 2 * half * i / (points - 1));
  nlohmann::json surf_l = nlohmann::json::array(), surf_t = nlohmann::json::array(), surf_s = nlohmann::json::array(),
                 surf_f = nlohmann::json::array();
  for (double y : gy) {
    std::vector<std::array<double, 2>> row;
    for (double x : gx) row.push_back({x, y});
    const auto v = values(row);
    surf_l.push_back(v[0]), surf_t.push_back(v[1]), surf_s.push_back(v[2]), surf_f.push_back(v[3]);
  }
  nlohmann::json two = {{"label", "policy weights"},
                        {"x_label", "w_position"},
                        {"y_label", "w_velocity"},
                        {"x", gx},
                        {"y", gy},
                        {"surfaces", {{"learned loss", surf_l}, {"task loss", surf_t}}},
                        {"shaped_task_loss", surf_s},
                        {"final_position", surf_f},
                        {"marks", {{"w0", {w0[0], w0[1]}}, {"wK", {wk[0], wk[1]}}}}};
  return nlohmann::json{{"problem", "mountain_car"},
                        {"loss_file", loss_file},
                        {"w0", {w0[0], w0[1]}},
                        {"w_trained", {wk[0], wk[1]}},
                        {"one_d", {one}},
                        {"two_d", {two}}}
      .dump(1);
}

AlgorithmEntry mountain_car_algorithm() {
  AlgorithmEntry e;
  e.name = "mountain_car";
  e.command = Command::MetaTrain;
  e.description = "ML3's mountain car with an intermediate goal (differentiable dynamics, shaping for exploration)";
  e.needs_env = false;
  e.run_defaults = RunSection{0, 1, 1};
  e.declare = [](Schema& s, const std::string&) { declare_mountain_car(s); };
  e.check = [](const Config& c, const std::string&) { check_mountain_car_config(c); };
  e.make = [](const Config& c, const std::string& run_dir) -> std::unique_ptr<Algorithm> {
    return std::make_unique<MountainCarMetaTrainer>(c, run_dir);
  };
  e.meta_test = [](const std::string& artifact, const Config& c, const std::string&, const std::string&, bool,
                   bool quiet) { return run_mountain_car_meta_test(artifact, c, quiet); };
  e.landscape = mountain_car_landscape;
  return e;
}

}  // namespace ml3
