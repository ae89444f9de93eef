// The paper's supervised sine-regression testbed as a meta-learning
// algorithm of the runner: one meta step of SineMetaLearner per iteration.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fmt/format.h>

#include "core/error.h"
#include "src/run/algorithm.h"
#include "src/run/run.h"
#include "models/nets.h"
#include "src/testbeds/sine/sine.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

class SineMetaTrainer : public Algorithm {
 public:
  SineMetaTrainer(const Config& c, const std::string& run_dir) : cfg_(c), run_dir_(run_dir), learner_(c) {
    set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
  }
  std::string label() const override { return "meta-train sine"; }
  int iterations() const override { return static_cast<int>(cfg_.get_int("sine.iterations")); }
  int checkpoint_every() const override { return static_cast<int>(cfg_.get_int("sine.checkpoint_every")); }
  std::vector<std::string> columns() const override {
    return {"iteration", "wall_seconds", "task_loss", "inner_loss", "grad_norm", "step_ms"};
  }
  nlohmann::json iterate(int it) override {
    const auto t0 = std::chrono::steady_clock::now();
    const SineMetaLearner::Step st = learner_.step(it);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    step_ms_.push_back(ms);
    task_losses_.push_back(st.task_loss);
    return {{"iteration", it}, {"task_loss", st.task_loss}, {"inner_loss", st.inner_loss},
            {"grad_norm", st.grad_norm}, {"step_ms", ms}};
  }
  std::string progress_text(const nlohmann::json& r) const override {
    return fmt::format("task loss {:.4f} | {:.3f} ms/step", r["task_loss"].get<double>(), r["step_ms"].get<double>());
  }
  void save(Archive& a) const override { learner_.save(a, "learner/"); }
  void load(const Archive& a) override { learner_.load(a, "learner/"); }
  void write_artifacts(const std::string& run_dir, int it) const override {
    const SineProblem& pb = learner_.problem();
    save_sine_loss((fs::path(run_dir) / "loss.ml3").string(), learner_.loss(),
                   {{"seed", cfg_.get_int("seed")},
                    {"iterations", it},
                    {"implementation", cfg_.get_string("sine.implementation")},
                    {"shaping", pb.shaping},
                    {"inner_lr", pb.inner_lr},
                    {"inner_steps", pb.inner_steps},
                    {"outer_lr", cfg_.get_double("sine.outer_lr")},
                    {"regressor_sizes", pb.regressor.sizes},
                    {"points", cfg_.get_int("sine.points")},
                    {"config", cfg_.to_yaml()}});
  }
  nlohmann::json summary(double) override {
    const size_t tail = std::min<size_t>(10, task_losses_.size());
    double last10 = 0;
    for (size_t i = task_losses_.size() - tail; i < task_losses_.size(); ++i) last10 += task_losses_[i] / tail;
    const SineProblem& pb = learner_.problem();
    return {{"algorithm", "sine"},
            {"seed", cfg_.get_int("seed")},
            {"implementation", cfg_.get_string("sine.implementation")},
            {"model", sine_model_name(pb.model)},
            {"shaping", pb.shaping},
            {"float64", pb.float64},
            {"inner_steps", pb.inner_steps},
            {"meta_step_ms_median", median(step_ms_)},
            {"meta_iteration_seconds_median", median(step_ms_) / 1000.0},
            {"initial_task_loss", task_losses_.empty() ? nlohmann::json() : nlohmann::json(task_losses_.front())},
            {"final_task_loss", task_losses_.empty() ? nlohmann::json() : nlohmann::json(task_losses_.back())},
            {"final_task_loss_mean10", tail ? nlohmann::json(last10) : nlohmann::json()},
            {"loss_file", (fs::path(run_dir_) / "loss.ml3").string()}};
  }
  Plot plot() const override {
    const bool shaped = learner_.problem().shaping;
    return {learner_.problem().model == SineModel::Frequency ? (shaped ? "sine_shaped" : "sine_frequency") : "sine",
            "meta_curve.png",
            fmt::format("ML3 sine{} meta-training (seed {})",
                        learner_.problem().model == SineModel::Frequency ? (shaped ? ", shaped" : ", frequency, unshaped") : "",
                        cfg_.get_int("seed"))};
  }

 private:
  Config cfg_;
  std::string run_dir_;
  SineMetaLearner learner_;
  std::vector<double> step_ms_, task_losses_;
};

std::string sine_meta_test(const std::string& artifact, const Config& c, const std::string&, const std::string&, bool,
                           bool quiet) {
  return run_sine_meta_test(artifact, c, quiet);
}

}  // namespace

AlgorithmEntry sine_algorithm() {
  AlgorithmEntry e;
  e.name = "sine";
  e.command = Command::MetaTrain;
  e.description =
      "ML3's supervised sine-regression testbed (hand-derived Eigen meta-gradient), and the shaped sine "
      "(sine.model=frequency, sine.shaping)";
  e.needs_env = false;
  e.run_defaults = RunSection{0, 1, 1};
  e.declare = [](Schema& s, const std::string&) { declare_sine(s); };
  e.check = [](const Config& c, const std::string&) { check_sine_config(c); };
  e.define_problem().make = [](const Config& c, const std::string& run_dir, dist::Comm&) -> std::unique_ptr<Algorithm> {
    return std::make_unique<SineMetaTrainer>(c, run_dir);
  };
  e.define_problem().meta_test = sine_meta_test;
  e.define_problem().landscape = sine_landscape;
  return e;
}

}  // namespace ml3
