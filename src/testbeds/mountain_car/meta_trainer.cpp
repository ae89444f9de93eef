// The mountain car meta-trainer under the runner (the `mountain_car`
// algorithm of `ml3 meta-train`) and its registry entry.
#include "src/testbeds/mountain_car/internal.h"

namespace ml3 {
namespace mcar {

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
    write_mlp_loss_file((fs::path(run_dir) / "loss.ml3").string(), "mountain_car_loss",
                        net_, params(),
                        {{"input", {"position", "velocity", "action", "final distance to goal"}},
                         {"activation", "elu"},
                         {"shaping", s_.shaping},
                         {"seed", cfg_.get_int("seed")},
                         {"iterations", it},
                         {"config", cfg_.to_yaml()}});
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

}  // namespace mcar

using namespace mcar;

AlgorithmEntry mountain_car_algorithm() {
  AlgorithmEntry e;
  e.name = "mountain_car";
  e.command = Command::MetaTrain;
  e.description = "ML3's mountain car with an intermediate goal (differentiable dynamics, shaping for exploration)";
  e.needs_env = false;
  e.run_defaults = RunSection{0, 1, 1};
  e.declare = [](Schema& s, const std::string&) { declare_mountain_car(s); };
  e.check = [](const Config& c, const std::string&) { check_mountain_car_config(c); };
  e.define_problem().make = [](const Config& c, const std::string& run_dir, dist::Comm&) -> std::unique_ptr<Algorithm> {
    return std::make_unique<MountainCarMetaTrainer>(c, run_dir);
  };
  e.define_problem().meta_test = [](const std::string& artifact, const Config& c, const std::string&, const std::string&, bool,
                   bool quiet) { return run_mountain_car_meta_test(artifact, c, quiet); };
  e.define_problem().landscape = mountain_car_landscape;
  return e;
}

}  // namespace ml3
