// The sine experiment's drivers: meta-train (run folder, metrics, loss file,
// summary), meta-test (OOD tasks, learned loss vs MSE, transfer) and the
// meta-step benchmark.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "src/run.h"
#include "src/sine/engine.h"
#include "src/sine/internal.h"
#include "src/sine/sine.h"

namespace fs = std::filesystem;

namespace ml3 {

using namespace sine_detail;

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Every driver starts here: the checks the schema cannot make, LibTorch's threads.
void prepare_driver(const Config& cfg) {
  check_sine_config(cfg);
  set_sine_threads(static_cast<int>(cfg.get_int("torch_threads")));
}

}  // namespace

std::string run_sine_meta_test(const std::string& loss_file, const Config& cfg, bool quiet) {
  prepare_driver(cfg);
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
  prepare_driver(cfg);
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
