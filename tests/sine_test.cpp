// Tests of the supervised sine testbed (src/testbeds/sine/sine.h): the autograd meta-gradient
// against central finite differences, the hand-derived Eigen meta-gradient
// against autograd, a short meta-training, the learned-loss file and config
// errors. Small networks, fixed seeds, double where exactness matters.
#include "src/run/algorithm.h"
#include "src/testbeds/sine/sine.h"

#include <gtest/gtest.h>

#include "run_util.h"
#include "test_util.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using test::error_of;
using test::read_text;
using test::temp_dir;

double rel_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / den);
}

// Tiny problem: regressor 1-8-4-1, loss 2-6-6-1, 8 points of the train task.
struct Tiny {
  SineProblem pb;
  SineData data;
  std::vector<double> theta, phi;
};

Tiny tiny(double inner_lr, int inner_steps, uint64_t seed) {
  Tiny t;
  t.pb.regressor = sine_regressor_shape({8, 4});
  t.pb.loss = sine_loss_shape({6, 6});
  t.pb.inner_lr = inner_lr;
  t.pb.inner_steps = inner_steps;
  t.pb.float64 = true;
  t.data = sample_sine_data(sine_train_task(), 8, seed);
  t.theta = init_mlp_params(t.pb.regressor, SineInit::Torch, mix_seed(seed, 1));
  t.phi = init_mlp_params(t.pb.loss, SineInit::Xavier, mix_seed(seed, 2));
  return t;
}

std::vector<double> finite_difference(const Tiny& t, double eps, double* min_margin) {
  std::vector<double> g(t.phi.size());
  *min_margin = std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < t.phi.size(); ++j) {
    std::vector<double> p = t.phi, m = t.phi;
    p[j] += eps, m[j] -= eps;
    double mp, mm;
    g[j] = (sine_task_loss_after_inner(t.pb, t.theta, p, t.data, &mp) -
            sine_task_loss_after_inner(t.pb, t.theta, m, t.data, &mm)) / (2 * eps);
    *min_margin = std::min({*min_margin, mp, mm});
  }
  return g;
}

TEST(SineShapes, FlatLayoutMatchesFunctionalMlpOrder) {
  const MlpShape r = sine_regressor_shape({100, 10});
  EXPECT_EQ(r.sizes, (std::vector<int>{1, 100, 10, 1}));
  EXPECT_EQ(r.num_params(), 100u + 100 + 1000 + 10 + 10 + 1);
  EXPECT_EQ(r.weight_offset(1), 200u);
  EXPECT_EQ(r.bias_offset(1), 1200u);
  const MlpShape l = sine_loss_shape({50, 50});
  EXPECT_EQ(l.num_params(), 100u + 2500 + 50);
  EXPECT_FALSE(l.bias);
  // Xavier: zero biases, weights within sqrt(6/(in+out)).
  const auto p = init_mlp_params(r, SineInit::Xavier, 3);
  EXPECT_EQ(p[r.bias_offset(0)], 0.0);
  EXPECT_LE(std::abs(p[0]), std::sqrt(6.0 / 101));
  EXPECT_EQ(p, init_mlp_params(r, SineInit::Xavier, 3));
  EXPECT_NE(p, init_mlp_params(r, SineInit::Xavier, 4));
}

TEST(SineTasks, SeededAndInRange) {
  const auto a = sine_test_tasks(10, 7), b = sine_test_tasks(10, 7);
  ASSERT_EQ(a.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].amplitude, b[i].amplitude);
    EXPECT_GE(a[i].amplitude, 0.2);
    EXPECT_LE(a[i].amplitude, 5.0);
    EXPECT_LE(std::abs(a[i].phase), M_PI);
  }
  const SineData d = sample_sine_data(sine_train_task(), 100, 1);
  for (size_t i = 0; i < d.x.size(); ++i) {
    EXPECT_LE(std::abs(d.x[i]), 2.0);
    EXPECT_NEAR(d.y[i], std::sin(d.x[i] - M_PI), 1e-15);
  }
}

// (a) autograd outer gradient vs central finite differences (double). At the
// reference alpha = 1e-3 the meta-gradient is ~1e-4 while L_T ~ 0.4, so the
// differences are rounding-limited at eps = 1e-6 (~2e-6 relative); eps = 1e-5
// with a checked ReLU margin keeps both truncation and rounding below 1e-6.
TEST(SineMetaGradient, AutogradMatchesFiniteDifferences) {
  const double eps = 1e-5;
  for (int steps : {1, 2}) {
    for (double lr : {1e-3, 0.05}) {
      const Tiny t = tiny(lr, steps, 1);
      double margin;
      const std::vector<double> fd = finite_difference(t, eps, &margin);
      // A perturbation of eps moves any pre-activation by about eps times an
      // activation (all O(1) here), far less than the margin: no ReLU kink is
      // crossed, so central differences are exact to O(eps^2).
      ASSERT_GT(margin, 1e2 * eps) << "K=" << steps << " lr=" << lr;
      const MetaGradient ag = sine_meta_gradient(SineImpl::Autograd, t.pb, t.theta, t.phi, t.data);
      EXPECT_LE(rel_l2(ag.grad, fd), 1e-6) << "K=" << steps << " lr=" << lr;
      EXPECT_NEAR(ag.task_loss, sine_task_loss_after_inner(t.pb, t.theta, t.phi, t.data), 1e-12);
    }
  }
}

// (b) the Eigen fast path matches autograd (double tightly, float loosely),
// on the tiny problem and at the reference sizes.
TEST(SineMetaGradient, EigenMatchesAutograd) {
  for (double lr : {1e-3, 0.05}) {
    const Tiny t = tiny(lr, 1, 5);
    const MetaGradient e = sine_meta_gradient(SineImpl::Eigen, t.pb, t.theta, t.phi, t.data);
    const MetaGradient a = sine_meta_gradient(SineImpl::Autograd, t.pb, t.theta, t.phi, t.data);
    EXPECT_LE(rel_l2(e.grad, a.grad), 1e-10) << lr;
    EXPECT_NEAR(e.task_loss, a.task_loss, 1e-12);
    EXPECT_NEAR(e.inner_loss, a.inner_loss, 1e-12);
  }
  SineProblem pb;
  pb.regressor = sine_regressor_shape({100, 10});
  pb.loss = sine_loss_shape({50, 50});
  const SineData data = sample_sine_data(sine_train_task(), 100, 3);
  const auto theta = init_mlp_params(pb.regressor, SineInit::Xavier, 4);
  const auto phi = init_mlp_params(pb.loss, SineInit::Xavier, 5);
  for (bool f64 : {true, false}) {
    pb.float64 = f64;
    const MetaGradient e = sine_meta_gradient(SineImpl::Eigen, pb, theta, phi, data);
    const MetaGradient a = sine_meta_gradient(SineImpl::Autograd, pb, theta, phi, data);
    EXPECT_LE(rel_l2(e.grad, a.grad), f64 ? 1e-12 : 1e-5) << (f64 ? "double" : "float");  // measured 3e-16, 2e-7
    EXPECT_NEAR(e.task_loss, a.task_loss, f64 ? 1e-12 : 1e-5);
  }
}

TEST(SineMetaGradient, EigenRejectsSeveralInnerSteps) {
  Tiny t = tiny(1e-3, 2, 1);
  EXPECT_NE(error_of([&] { sine_meta_gradient(SineImpl::Eigen, t.pb, t.theta, t.phi, t.data); }).find("inner_steps=1 only"),
            std::string::npos);
  t.pb.inner_steps = 1;
  t.phi.pop_back();
  EXPECT_NE(error_of([&] { sine_meta_gradient(SineImpl::Eigen, t.pb, t.theta, t.phi, t.data); }).find("phi has"),
            std::string::npos);
}

// SGD at meta-test: the Eigen and autograd trainers follow the same trajectory.
TEST(SineTrain, EigenAndAutogradTrajectoriesAgree) {
  const Tiny t = tiny(0.01, 1, 9);
  for (bool learned : {true, false}) {
    const std::vector<double> phi = learned ? t.phi : std::vector<double>{};
    std::vector<double> te = t.theta, ta = t.theta;
    const auto tre = sine_train_regressor(SineImpl::Eigen, t.pb, te, phi, t.data, 0.01, 20);
    const auto tra = sine_train_regressor(SineImpl::Autograd, t.pb, ta, phi, t.data, 0.01, 20);
    ASSERT_EQ(tre.size(), 21u);
    EXPECT_LE(rel_l2(te, ta), 1e-12);
    EXPECT_NEAR(tre.back(), tra.back(), 1e-12);
  }
  // Training on the MSE lowers the MSE.
  std::vector<double> th = t.theta;
  const auto tr = sine_train_regressor(SineImpl::Eigen, t.pb, th, {}, t.data, 0.05, 50);
  EXPECT_LT(tr.back(), tr.front());
}

Config small_config(const std::vector<std::string>& overrides) {
  return load_sine_config("", overrides);
}

// (c) a short meta-training (reference sizes, 300 iterations) lowers the task
// loss after one inner step, and 100 SGD steps on the meta-train task with the
// trained loss beat both the untrained loss and the MSE (held-out inits).
TEST(SineMetaTrain, ShortMetaTrainingReducesTaskLoss) {
  const Config cfg = small_config({"sine.iterations=300"});
  SineMetaLearner learner(cfg);
  const SineLoss before = learner.loss();
  for (int it = 1; it <= 300; ++it) learner.step(it);
  const SineLoss after = learner.loss();
  const SineProblem& pb = learner.problem();
  double lt_before = 0, lt_after = 0, sgd_before = 0, sgd_after = 0, sgd_mse = 0;
  for (uint64_t s = 0; s < 5; ++s) {
    const auto theta = init_mlp_params(pb.regressor, SineInit::Xavier, mix_seed(999, s));
    lt_before += sine_meta_gradient(SineImpl::Eigen, pb, theta, before.phi, learner.data()).task_loss;
    lt_after += sine_meta_gradient(SineImpl::Eigen, pb, theta, after.phi, learner.data()).task_loss;
    auto th = theta;
    sgd_before += sine_train_regressor(SineImpl::Eigen, pb, th, before.phi, learner.data(), pb.inner_lr, 100).back();
    th = theta;
    sgd_after += sine_train_regressor(SineImpl::Eigen, pb, th, after.phi, learner.data(), pb.inner_lr, 100).back();
    th = theta;
    sgd_mse += sine_train_regressor(SineImpl::Eigen, pb, th, {}, learner.data(), pb.inner_lr, 100).back();
  }
  EXPECT_LT(lt_after, 0.9 * lt_before) << lt_before / 5 << " -> " << lt_after / 5;
  EXPECT_LT(sgd_after, 0.5 * sgd_before) << sgd_before / 5 << " -> " << sgd_after / 5;
  EXPECT_LT(sgd_after, 0.5 * sgd_mse) << "MSE training: " << sgd_mse / 5 << ", learned loss: " << sgd_after / 5;
}

// (d) the learned-loss file round-trips bit-exactly; damaged files are rejected.
TEST(SineLossFile, RoundTripAndCorruption) {
  const fs::path dir = temp_dir("lossfile");
  for (bool f64 : {false, true}) {
    SineMetaLearner learner(small_config({std::string("sine.float64=") + (f64 ? "true" : "false"),
                                          "sine.loss_hidden=[6,5]"}));
    for (int it = 1; it <= 5; ++it) learner.step(it);
    const SineLoss loss = learner.loss();
    const std::string path = (dir / (f64 ? "l64.ml3" : "l32.ml3")).string();
    save_sine_loss(path, loss, {{"seed", 0}});
    const SineLoss back = load_sine_loss(path);
    EXPECT_EQ(back.sizes, loss.sizes);
    EXPECT_EQ(back.float64, f64);
    ASSERT_EQ(back.phi.size(), loss.phi.size());
    EXPECT_EQ(std::memcmp(back.phi.data(), loss.phi.data(), loss.phi.size() * sizeof(double)), 0);
  }
  const std::string good = (dir / "l32.ml3").string();
  const std::string bytes = read_text(good);
  // Flipped byte in the middle.
  std::string bad = bytes;
  bad[bad.size() / 2] ^= 0x5a;
  std::ofstream(dir / "flipped.ml3", std::ios::binary) << bad;
  EXPECT_NE(error_of([&] { load_sine_loss((dir / "flipped.ml3").string()); }).find("flipped.ml3"), std::string::npos);
  // Truncated.
  std::ofstream(dir / "short.ml3", std::ios::binary) << bytes.substr(0, bytes.size() - 13);
  EXPECT_NE(error_of([&] { load_sine_loss((dir / "short.ml3").string()); }).find("short.ml3"), std::string::npos);
  // Wrong kind.
  Archive other("checkpoint");
  other.save((dir / "other.ml3").string());
  EXPECT_NE(error_of([&] { load_sine_loss((dir / "other.ml3").string()); }).find("expected a sine_loss"),
            std::string::npos);
  // Sizes in the metadata that do not match the tensors.
  Archive a = Archive::load(good);
  a.meta()["sizes"] = {2, 7, 5, 1};
  a.save((dir / "sizes.ml3").string());
  const std::string msg = error_of([&] { load_sine_loss((dir / "sizes.ml3").string()); });
  EXPECT_NE(msg.find("sizes.ml3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("phi.0"), std::string::npos) << msg;
  fs::remove_all(dir);
}

// (e) config errors.
TEST(SineConfig, ErrorsAndShippedConfig) {
  EXPECT_NE(error_of([] { small_config({"sine.inner_lrr=0.1"}); }).find("unknown config key 'sine.inner_lrr'"),
            std::string::npos);
  EXPECT_NE(error_of([] { small_config({"sine.implementation=jax"}); }).find("sine.implementation"), std::string::npos);
  EXPECT_NE(error_of([] { small_config({"sine.inner_steps=3"}); }).find("inner_steps=1 only"), std::string::npos);
  EXPECT_EQ(error_of([] { small_config({"sine.inner_steps=3", "sine.implementation=autograd"}); }), "(no error)");
  const fs::path dir = temp_dir("config");
  std::ofstream(dir / "bad.yaml") << "sine:\n  iterations: 10\n  regresor_hidden: [4]\n";
  const std::string msg = error_of([&] { load_sine_config((dir / "bad.yaml").string()); });
  EXPECT_NE(msg.find("bad.yaml:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown config key 'sine.regresor_hidden'"), std::string::npos) << msg;
  fs::remove_all(dir);

  // The shipped config writes out every key, with the defaults (the reference settings).
  const std::string path = std::string(ML3_SOURCE_DIR) + "/configs/sine_ml3.yaml";
  const Config shipped = load_sine_config(path);
  EXPECT_EQ(shipped.values(), Config(sine_schema()).values());
  const std::string text = read_text(path);
  const Schema schema = sine_schema();
  for (const auto& d : schema.params()) {
    const std::string leaf = d.key.substr(d.key.rfind('.') == std::string::npos ? 0 : d.key.rfind('.') + 1);
    EXPECT_NE(text.find(leaf + ":"), std::string::npos) << d.key;
  }
}

// End to end: meta-train writes its run folder, meta-test reads the loss.
TEST(SineRun, MetaTrainThenMetaTest) {
  const fs::path dir = temp_dir("run");
  const Config cfg = small_config({"sine.iterations=20", "sine.regressor_hidden=[16,8]", "sine.loss_hidden=[8,8]",
                                   "sine.transfer_hidden=[12]", "sine.test_tasks=2", "sine.test_seeds=2",
                                   "sine.test_steps=10", "seed=3"});
  // Meta-training runs under the runner (ml3 meta-train), like every algorithm.
  std::ofstream(dir / "sine.yaml") << cfg.to_yaml();
  RunArgs args;
  args.command = Command::MetaTrain;
  args.config_path = (dir / "sine.yaml").string();
  args.out_dir = (dir / "run").string();
  args.quiet = true;
  const auto summary = nlohmann::json::parse(run(args).summary);
  const fs::path run_dir = dir / "run";
  for (const char* f : {"config.yaml", "metrics.csv", "metrics.jsonl", "loss.ml3", "summary.json", "meta_curve.png",
                        "checkpoints/last.ckpt"})
    EXPECT_TRUE(fs::exists(run_dir / f)) << f;
  EXPECT_EQ(summary.at("seed"), 3);
  EXPECT_EQ(summary.at("iterations"), 20);
  EXPECT_GT(summary.at("meta_step_ms_median").get<double>(), 0.0);
  EXPECT_TRUE(summary.at("final_task_loss").is_number());
  EXPECT_EQ(summary.at("loss_file"), (run_dir / "loss.ml3").string());
  EXPECT_EQ(nlohmann::json::parse(read_text(run_dir / "summary.json")), summary);
  // One metrics row per iteration (+ CSV header).
  std::ifstream csv(run_dir / "metrics.csv");
  std::string line, header;
  std::getline(csv, header);
  EXPECT_EQ(header, "iteration,wall_seconds,task_loss,inner_loss,grad_norm,step_ms");
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 20);
  // Stopped after 8 and resumed: the same metrics (timing aside) and the same loss, bit for bit.
  test::run_stopped_and_resumed(args, dir / "split", 8);
  auto losses = [](const fs::path& d) {
    std::vector<std::string> out;
    std::ifstream in(d / "metrics.jsonl");
    for (std::string l; std::getline(in, l);) {
      auto j = nlohmann::json::parse(l);
      out.push_back(j["task_loss"].dump() + " " + j["grad_norm"].dump());
    }
    return out;
  };
  EXPECT_EQ(losses(run_dir), losses(dir / "split"));
  EXPECT_EQ(load_sine_loss((run_dir / "loss.ml3").string()).phi, load_sine_loss((dir / "split" / "loss.ml3").string()).phi);
  // The stored config reloads to the same values.
  EXPECT_EQ(load_sine_config((run_dir / "config.yaml").string()).values(), cfg.values());

  const auto test = nlohmann::json::parse(run_sine_meta_test((run_dir / "loss.ml3").string(), cfg, true));
  EXPECT_EQ(test.at("split"), "ood");
  EXPECT_EQ(test.at("tasks"), 2);
  EXPECT_EQ(test.at("seeds"), 2);
  EXPECT_EQ(test.at("regressor").at("hidden"), (std::vector<int>{16, 8}));
  EXPECT_EQ(test.at("transfer").at("hidden"), (std::vector<int>{12}));
  for (const char* part : {"regressor", "transfer"}) {
    EXPECT_TRUE(test.at(part).at("mse_learned_loss").is_number()) << part;
    EXPECT_TRUE(test.at(part).at("mse_mse").is_number()) << part;
    EXPECT_EQ(test.at(part).at("per_task").size(), 2u);
  }
  // Deterministic: the same run twice gives the same numbers.
  EXPECT_EQ(nlohmann::json::parse(run_sine_meta_test((run_dir / "loss.ml3").string(), cfg, true)), test);
  EXPECT_NE(error_of([&] { run_sine_meta_test((dir / "missing.ml3").string(), cfg, true); }).find("missing.ml3"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ml3
