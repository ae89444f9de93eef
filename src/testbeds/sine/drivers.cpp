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

#include <fmt/format.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "src/run/run.h"
#include "src/testbeds/sine/engine.h"
#include "src/testbeds/sine/internal.h"
#include "src/testbeds/sine/sine.h"

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

namespace {

// The frequency model's meta-test (the reference's): theta* =
// sine.test_frequency, x on the grid -5, -4.9, ..., 4.9, theta from
// sine.frequency_init, sine.test_steps SGD steps of size sine.inner_lr on the
// learned loss, and the same on the MSE.
std::string frequency_meta_test(const std::string& loss_file, const SineLoss& loss, const Config& cfg, bool quiet) {
  SineProblem pb;
  pb.model = SineModel::Frequency;
  pb.regressor = frequency_model_shape();
  pb.loss = MlpShape{loss.sizes, true};
  pb.inner_lr = cfg.get_double("sine.inner_lr");
  pb.float64 = cfg.get_bool("sine.float64");
  const int steps = static_cast<int>(cfg.get_int("sine.test_steps"));
  const double theta_star = cfg.get_double("sine.test_frequency");
  const double theta0 = cfg.get_double("sine.frequency_init");
  const SineData data = frequency_data(theta_star, 100, 0, /*grid=*/true);
  const SineImpl impl = parse_sine_impl(cfg.get_string("sine.implementation"));
  Progress progress("meta-test", 2 * steps, quiet);
  auto trajectory = [&](const std::vector<double>& phi, int offset) {
    std::vector<double> theta{theta0};
    nlohmann::json thetas = nlohmann::json::object(), mses = nlohmann::json::object();
    for (int k = 1; k <= steps; ++k) {
      const std::vector<double> tr = sine_train_regressor(impl, pb, theta, phi, data, pb.inner_lr, 1);
      thetas[std::to_string(k)] = theta[0];
      mses[std::to_string(k)] = tr.back();
      progress.update(offset + k, fmt::format("theta {:.4f}", theta[0]));
    }
    return nlohmann::json{{"theta_after_steps", thetas},
                          {"mse_after_steps", mses},
                          {"final_theta", theta[0]},
                          {"final_abs_error", std::abs(theta[0] - theta_star)}};
  };
  nlohmann::json out = {{"model", "frequency"},
                        {"theta_star", theta_star},
                        {"theta_init", theta0},
                        {"steps", steps},
                        {"lr", pb.inner_lr},
                        {"loss_file", loss_file},
                        {"loss_sizes", loss.sizes}};
  const nlohmann::json learned = trajectory(loss.phi, 0);
  out["theta_after_steps"] = learned["theta_after_steps"];
  out["mse_after_steps"] = learned["mse_after_steps"];
  out["final_theta"] = learned["final_theta"];
  out["final_abs_error"] = learned["final_abs_error"];
  out["mse_training"] = trajectory({}, steps);
  progress.finish();
  return out.dump(2);
}

}  // namespace

std::string run_sine_meta_test(const std::string& loss_file, const Config& cfg, bool quiet) {
  prepare_driver(cfg);
  const SineLoss loss = load_sine_loss(loss_file);
  const SineModel model = parse_sine_model(cfg.get_string("sine.model"));
  if (loss.model != model)
    throw Error(fmt::format("{}: a loss for sine.model={}, but the config has sine.model={} (use {})", loss_file,
                            sine_model_name(loss.model), sine_model_name(model),
                            loss.model == SineModel::Frequency ? "configs/shaped_sine_ml3.yaml" : "configs/sine_ml3.yaml"));
  if (model == SineModel::Frequency) return frequency_meta_test(loss_file, loss, cfg, quiet);
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

namespace {

std::vector<double> grid(double lo, double hi, int points) {
  std::vector<double> g;
  for (int i = 0; i < points; ++i) g.push_back(lo + (hi - lo) * i / (points - 1));
  return g;
}

nlohmann::json frequency_landscape(const SineLoss& loss, const Config& cfg, int points) {
  SineProblem pb;
  pb.model = SineModel::Frequency;
  pb.regressor = frequency_model_shape();
  pb.loss = MlpShape{loss.sizes, true};
  pb.float64 = true;
  const double theta_star = cfg.get_double("sine.test_frequency");
  const std::vector<double> thetas = grid(-7.0, 7.0, points);
  auto row = [&](double star, std::vector<double>* learned, std::vector<double>* mse) {
    const auto eng = make_engine<double>(SineImpl::Autograd, pb, frequency_data(star, 100, 0, /*grid=*/true));
    for (double th : thetas) {
      double l = 0, m = 0;
      eng->values(&th, loss.phi.data(), &l, &m);
      learned->push_back(l), mse->push_back(m);
    }
  };
  std::vector<double> l1, m1, a1;
  row(theta_star, &l1, &m1);
  for (double th : thetas) a1.push_back(std::abs(th - theta_star));
  nlohmann::json one = {{"label", fmt::format("task theta* = {}", theta_star)},
                        {"x_label", "theta"},
                        {"x", thetas},
                        {"curves", {{"learned loss", l1}, {"MSE", m1}, {"|theta - theta*|", a1}}},
                        {"marks", {{"theta*", theta_star}, {"theta0", cfg.get_double("sine.frequency_init")}}}};
  const std::vector<double> stars = grid(cfg.get_double("sine.train_frequency_min"), cfg.get_double("sine.train_frequency_max"), points);
  nlohmann::json sl = nlohmann::json::array(), sm = nlohmann::json::array();
  for (double star : stars) {
    std::vector<double> l, m;
    row(star, &l, &m);
    sl.push_back(l), sm.push_back(m);
  }
  nlohmann::json two = {{"label", "over tasks"},
                        {"x_label", "theta"},
                        {"y_label", "theta* (task)"},
                        {"x", thetas},
                        {"y", stars},
                        {"surfaces", {{"learned loss", sl}, {"MSE", sm}}},
                        {"marks", nlohmann::json::object()}};
  return {{"one_d", {one}}, {"two_d", {two}}};
}

nlohmann::json mlp_landscape(const SineLoss& loss, const Config& cfg, int points) {
  SineProblem pb;
  pb.regressor = sine_regressor_shape(cfg.get_int_list("sine.regressor_hidden"));
  pb.loss = MlpShape{loss.sizes, false};
  pb.inner_lr = cfg.get_double("sine.inner_lr");
  pb.float64 = true;
  const uint64_t test_seed = static_cast<uint64_t>(cfg.get_int("sine.test_seed"));
  const SineTask task = sine_test_tasks(1, mix_seed(test_seed, kTagTestTasks))[0];
  const SineData data = sample_sine_data(task, static_cast<int>(cfg.get_int("sine.points")),
                                         mix_seed(mix_seed(test_seed, kTagTestData), 0));
  const std::vector<double> theta0 =
      init_mlp_params(pb.regressor, parse_sine_init(cfg.get_string("sine.test_init")), mix_seed(mix_seed(mix_seed(test_seed, kTagTestTheta), 0), 0));
  std::vector<double> thetak = theta0;
  sine_train_regressor(SineImpl::Autograd, pb, thetak, loss.phi, data, pb.inner_lr, static_cast<int>(cfg.get_int("sine.test_steps")));
  std::vector<double> d1(theta0.size()), d2(theta0.size());
  double n1 = 0, n2 = 0, dot = 0;
  for (size_t i = 0; i < d1.size(); ++i) d1[i] = thetak[i] - theta0[i], n1 += d1[i] * d1[i];
  Rng rng(mix_seed(test_seed, 7));
  for (auto& v : d2) v = rng.normal();
  for (size_t i = 0; i < d2.size(); ++i) dot += d1[i] * d2[i];
  for (size_t i = 0; i < d2.size(); ++i) d2[i] -= dot / std::max(n1, 1e-300) * d1[i], n2 += d2[i] * d2[i];
  for (auto& v : d2) v *= std::sqrt(n1 / std::max(n2, 1e-300));
  const auto eng = make_engine<double>(SineImpl::Autograd, pb, data);
  auto at = [&](double a, double b, double* l, double* m) {
    std::vector<double> th(theta0.size());
    for (size_t i = 0; i < th.size(); ++i) th[i] = theta0[i] + a * d1[i] + b * d2[i];
    eng->values(th.data(), loss.phi.data(), l, m);
  };
  const std::vector<double> as = grid(-0.5, 1.5, points), bs = grid(-1.0, 1.0, points);
  std::vector<double> l1, m1;
  for (double a : as) {
    double l = 0, m = 0;
    at(a, 0, &l, &m);
    l1.push_back(l), m1.push_back(m);
  }
  nlohmann::json sl = nlohmann::json::array(), sm = nlohmann::json::array();
  for (double b : bs) {
    std::vector<double> l, m;
    for (double a : as) {
      double lv = 0, mv = 0;
      at(a, b, &lv, &mv);
      l.push_back(lv), m.push_back(mv);
    }
    sl.push_back(l), sm.push_back(m);
  }
  nlohmann::json one = {{"label", "fresh (0) to trained regressor (1)"},
                        {"x_label", "a: theta0 + a (thetaK - theta0)"},
                        {"x", as},
                        {"curves", {{"learned loss", l1}, {"MSE", m1}}},
                        {"marks", {{"theta0", 0.0}, {"thetaK", 1.0}}}};
  nlohmann::json two = {{"label", "plane of (thetaK - theta0) and a random direction"},
                        {"x_label", "a"},
                        {"y_label", "b (random direction, same length)"},
                        {"x", as},
                        {"y", bs},
                        {"surfaces", {{"learned loss", sl}, {"MSE", sm}}},
                        {"marks", {{"theta0", {0.0, 0.0}}, {"thetaK", {1.0, 0.0}}}}};
  return {{"one_d", {one}}, {"two_d", {two}}, {"task", {{"amplitude", task.amplitude}, {"phase", task.phase}}}};
}

}  // namespace

std::string sine_landscape(const std::string& loss_file, const Config& cfg, int points) {
  prepare_driver(cfg);
  if (points < 3) throw Error("landscape: --points must be at least 3");
  const SineLoss loss = load_sine_loss(loss_file);
  nlohmann::json out = loss.model == SineModel::Frequency ? frequency_landscape(loss, cfg, points)
                                                          : mlp_landscape(loss, cfg, points);
  out["problem"] = loss.model == SineModel::Frequency ? "shaped_sine" : "sine";
  out["loss_file"] = loss_file;
  return out.dump(1);
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
