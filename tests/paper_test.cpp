// Tests of the paper's shaping experiments: the shaped sine (src/testbeds/sine/, the
// frequency model y = sin(theta x)) and the mountain car with an intermediate
// goal (src/testbeds/mountain_car/mountain_car.h), and their landscapes. Small networks, few
// iterations, fixed seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/archive.h"
#include "core/error.h"
#include "src/run/algorithm.h"
#include "core/rng.h"
#include "src/testbeds/mbrl/mbrl.h"
#include "src/testbeds/mountain_car/mountain_car.h"
#include "src/testbeds/sine/sine.h"
#include "run_util.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using test::error_of;
using test::read_text;
using test::temp_dir;

SineProblem frequency_problem(bool shaping) {
  SineProblem pb;
  pb.model = SineModel::Frequency;
  pb.regressor = frequency_model_shape();
  pb.loss = sine_loss_shape({6, 6}, SineModel::Frequency);
  pb.inner_lr = 1.0;
  pb.float64 = true;
  pb.shaping = shaping;
  return pb;
}

// The autograd meta-gradient through sin(theta x), the ELU loss with biases and
// either task loss (|theta' - theta*| or the MSE) matches central finite
// differences; theta_after is theta - lr dL/dtheta.
TEST(ShapedSine, MetaGradientMatchesFiniteDifferences) {
  for (bool shaping : {true, false}) {
    const SineProblem pb = frequency_problem(shaping);
    const SineData data = frequency_data(0.7, 16, 3);
    const std::vector<double> theta{0.1};
    std::vector<double> phi = init_mlp_params(pb.loss, SineInit::Torch, 5);  // random biases too
    const MetaGradient mg = sine_meta_gradient(SineImpl::Autograd, pb, theta, phi, data);
    ASSERT_EQ(mg.grad.size(), pb.loss.num_params());
    ASSERT_EQ(mg.theta_after.size(), 1u);
    if (shaping) {
      EXPECT_NEAR(mg.task_loss, std::abs(mg.theta_after[0] - 0.7), 1e-12);
    }
    std::vector<double> fd(phi.size());
    const double eps = 1e-6;
    double num = 0, den = 0;
    for (size_t j = 0; j < phi.size(); ++j) {
      std::vector<double> p = phi, m = phi;
      p[j] += eps, m[j] -= eps;
      fd[j] = (sine_meta_gradient(SineImpl::Autograd, pb, theta, p, data).task_loss -
               sine_meta_gradient(SineImpl::Autograd, pb, theta, m, data).task_loss) / (2 * eps);
      num += (fd[j] - mg.grad[j]) * (fd[j] - mg.grad[j]), den += fd[j] * fd[j];
    }
    EXPECT_GT(den, 0.0);
    EXPECT_LT(std::sqrt(num / den), 1e-6) << "shaping " << shaping;
  }
}

// The hand-derived Eigen engine of the frequency model (ELU loss: the backward
// pass carries elu'' through the tangent) agrees with autograd to 1e-12 in
// double: meta-gradient, both losses, theta after the step, and SGD training
// on the learned loss and on the MSE.
TEST(ShapedSine, EigenEngineMatchesAutograd) {
  for (bool shaping : {true, false}) {
    const SineProblem pb = frequency_problem(shaping);
    const SineData data = frequency_data(-1.3, 32, 4);
    std::vector<double> phi = init_mlp_params(pb.loss, SineInit::Torch, 6);
    for (const double th : {0.1, 0.9, -2.0}) {
      const MetaGradient a = sine_meta_gradient(SineImpl::Autograd, pb, {th}, phi, data);
      const MetaGradient e = sine_meta_gradient(SineImpl::Eigen, pb, {th}, phi, data);
      EXPECT_NEAR(e.task_loss, a.task_loss, 1e-12);
      EXPECT_NEAR(e.inner_loss, a.inner_loss, 1e-12);
      EXPECT_NEAR(e.theta_after[0], a.theta_after[0], 1e-12);
      double scale = 0, diff = 0;
      for (size_t j = 0; j < a.grad.size(); ++j)
        scale = std::max(scale, std::abs(a.grad[j])), diff = std::max(diff, std::abs(e.grad[j] - a.grad[j]));
      EXPECT_GT(scale, 1e-6);
      EXPECT_LT(diff, 1e-12 * std::max(1.0, scale)) << "shaping " << shaping << " theta " << th;
    }
    for (const bool learned : {true, false}) {
      std::vector<double> ta{0.1}, te{0.1};
      const std::vector<double> p = learned ? phi : std::vector<double>{};
      const auto ma = sine_train_regressor(SineImpl::Autograd, pb, ta, p, data, 0.5, 5);
      const auto me = sine_train_regressor(SineImpl::Eigen, pb, te, p, data, 0.5, 5);
      ASSERT_EQ(ma.size(), me.size());
      for (size_t k = 0; k < ma.size(); ++k) EXPECT_NEAR(me[k], ma[k], 1e-12);
      EXPECT_NEAR(te[0], ta[0], 1e-12);
    }
  }
}

Config shaped_config(const std::vector<std::string>& extra) {
  std::vector<std::string> o{"sine.iterations=40", "sine.tasks_per_iteration=2", "sine.task_steps=10", "seed=1",
                             "sine.outer_lr_decay=0"};
  o.insert(o.end(), extra.begin(), extra.end());
  return load_sine_config(std::string(ML3_SOURCE_DIR) + "/configs/shaped_sine_ml3.yaml", o);
}

// theta after 10 meta-test steps with the loss meta-trained under `cfg`.
double theta_after_10(const Config& cfg, const fs::path& dir, const std::string& name, bool train = true) {
  SineMetaLearner learner(cfg);
  for (int it = 1; train && it <= cfg.get_int("sine.iterations"); ++it) learner.step(it);
  const std::string path = (dir / name).string();
  save_sine_loss(path, learner.loss());
  const auto j = nlohmann::json::parse(run_sine_meta_test(path, cfg, true));
  return j.at("theta_after_steps").at("10").get<double>();
}

// A half-length meta-training (500 iterations x 4 tasks, the shipped eigen
// engine in double and outer-lr decay) with shaping moves theta from 0.1 to
// within 0.1 of theta* = 0.7 in 10 SGD steps, for each of three meta-training
// seeds, and much closer than the untrained loss of the same seed. (Short runs
// are chaotic in the last bits: the former single-seed, 40-iteration,
// constant-rate, float32 version of this test passed or failed with the CPU's
// BLAS kernel; these settings end within 0.035 of theta* for seeds 0-4. The
// unshaped loss is no part of the assertion: at short budgets it too gets near
// theta* for some seeds.)
TEST(ShapedSine, ShapingMovesThetaToTheTargetForEverySeed) {
  const fs::path dir = temp_dir("shaped_sine");
  double shaped_error = 0, untrained_error = 0;
  for (const int seed : {0, 1, 2}) {
    const Config cfg = shaped_config({"sine.iterations=500", "sine.tasks_per_iteration=4", "sine.outer_lr_decay=0.9",
                                      "seed=" + std::to_string(seed)});
    const double shaped = theta_after_10(cfg, dir, "shaped.ml3");
    const double untrained = theta_after_10(cfg, dir, "untrained.ml3", false);
    EXPECT_LT(std::abs(shaped - 0.7), 0.1) << "seed " << seed << ": shaped " << shaped;
    std::printf("seed %d: theta after 10 steps: shaped %.4f, untrained %.4f\n", seed, shaped, untrained);
    shaped_error += std::abs(shaped - 0.7) / 3, untrained_error += std::abs(untrained - 0.7) / 3;
  }
  EXPECT_LT(shaped_error, 0.5 * untrained_error);
  fs::remove_all(dir);
}

// The frequency loss file keeps its model, biases and bits; a loss of one
// model is refused by a config of the other.
TEST(ShapedSine, LossFileAndConfigErrors) {
  const fs::path dir = temp_dir("shaped_file");
  SineMetaLearner learner(shaped_config({"sine.iterations=2"}));
  learner.step(1);
  const SineLoss loss = learner.loss();
  EXPECT_EQ(loss.model, SineModel::Frequency);
  EXPECT_EQ(loss.sizes, (std::vector<int>{3, 10, 10, 10, 1}));
  save_sine_loss((dir / "f.ml3").string(), loss);
  const SineLoss back = load_sine_loss((dir / "f.ml3").string());
  EXPECT_EQ(back.model, SineModel::Frequency);
  ASSERT_EQ(back.phi.size(), loss.phi.size());
  EXPECT_EQ(std::memcmp(back.phi.data(), loss.phi.data(), loss.phi.size() * sizeof(double)), 0);
  const Config mlp = load_sine_config("", {});
  EXPECT_NE(error_of([&] { run_sine_meta_test((dir / "f.ml3").string(), mlp, true); }).find("sine.model=frequency"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_sine_config("", {"sine.shaping=true"}); }).find("needs sine.model=frequency"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_sine_config("", {"sine.model=frequency", "sine.inner_steps=2"}); })
                .find("sine.inner_steps=1 only"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_sine_config("", {"sine.model=freq"}); }).find("sine.model"), std::string::npos);
  fs::remove_all(dir);
}

// ml3 landscape of a shaped-sine loss: JSON, CSVs and the minima; the MSE's
// minimum over theta on the grid is at theta* (within a grid step).
TEST(ShapedSine, Landscape) {
  const fs::path dir = temp_dir("landscape");
  SineMetaLearner learner(shaped_config({"sine.iterations=2"}));
  learner.step(1);
  save_sine_loss((dir / "f.ml3").string(), learner.loss());
  std::ofstream(dir / "c.yaml") << shaped_config({}).to_yaml();
  LandscapeArgs a;
  a.loss_file = (dir / "f.ml3").string();
  a.config_path = (dir / "c.yaml").string();
  a.out_dir = (dir / "out").string();
  a.points = 15;
  const auto summary = nlohmann::json::parse(run_landscape(a));
  for (const char* f : {"landscape.json", "landscape_1d.csv", "landscape_2d.csv", "config.yaml"})
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  const auto j = nlohmann::json::parse(read_text(dir / "out" / "landscape.json"));
  ASSERT_EQ(j.at("one_d").size(), 1u);
  EXPECT_EQ(j["one_d"][0]["x"].size(), 15u);
  EXPECT_EQ(j["two_d"][0]["surfaces"]["MSE"].size(), 15u);
  const double step = 14.0 / 14;
  EXPECT_NEAR(summary.at("minima").at("1d: task theta* = 0.7: MSE").at("x").get<double>(), 0.7, step);
  // 1 header + 15 rows; 2 surfaces x 15 x 15 rows + header.
  const std::string one = read_text(dir / "out" / "landscape_1d.csv");
  EXPECT_EQ(std::count(one.begin(), one.end(), '\n'), 16);
  const std::string two = read_text(dir / "out" / "landscape_2d.csv");
  EXPECT_EQ(std::count(two.begin(), two.end(), '\n'), 1 + 2 * 15 * 15);
  // An existing output folder is kept unless --force.
  EXPECT_NE(error_of([&] { run_landscape(a); }).find("exists"), std::string::npos);
  a.force = true;
  EXPECT_EQ(error_of([&] { run_landscape(a); }), "(no error)");
  fs::remove_all(dir);
}

// The differentiable dynamics are the reference's equations.
TEST(MountainCar, RolloutFollowsTheEquations) {
  for (const std::array<double, 2> w : {std::array<double, 2>{0.0, 0.0}, {-0.3, 2.0}, {5.0, 0.1}}) {
    const auto states = mountain_car_rollout(w, 35);
    ASSERT_EQ(states.size(), 36u);
    double p = -0.55, v = 0;
    for (int t = 0; t < 35; ++t) {
      const double a = std::clamp(w[0] * p + w[1] * v, -0.25, 0.25);
      v += (-9.8 * 0.2 * std::cos(3 * p) + a / 0.2 - 0.3 * v) * 0.1;
      p += v * 0.1;
      v = std::clamp(v, -1.5, 1.5);
      p = std::clamp(p, -1.2, 0.5);
      if (p <= -1.2 && v < 0) v = 0;
      EXPECT_NEAR(states[t + 1][0], p, 1e-9) << t;
      EXPECT_NEAR(states[t + 1][1], v, 1e-9) << t;
    }
  }
}


// Meta-trains `config_path` into dir/whole, and into dir/split stopped after
// `stop_after` and resumed (both quiet); returns the whole run's summary.
nlohmann::json run_whole_and_resumed(const std::string& config_path, const fs::path& dir, int stop_after) {
  RunArgs args;
  args.command = Command::MetaTrain;
  args.config_path = config_path;
  args.out_dir = (dir / "whole").string();
  args.quiet = true;
  const auto summary = nlohmann::json::parse(run(args).summary);
  test::run_stopped_and_resumed(args, dir / "split", stop_after);
  return summary;
}

// Mountain car under the runner (ml3 meta-train): a short shaped meta-training
// (100 iterations, the reference's loss network) gets the first test policy to
// the goal and keeps it there for at least 20 of 50 test steps; plain SGD on the task loss itself does not get there; the run folder
// has the loss file, metrics and the summary's median iteration time, and a
// stopped and resumed run gives the same numbers.
// The hand-derived meta-step (forward-mode tangents through the rollout, the
// stacked ELU pass) equals LibTorch autograd's in double: task and inner loss,
// the policies after the inner step, their final positions and dL_T/dphi, with
// and without shaping, for policies whose actions stay inside the clamp and
// ones that saturate it.
TEST(MountainCar, EigenMetaStepMatchesAutograd) {
  for (const bool shaping : {true, false}) {
    const Config cfg = load_config(Command::MetaTrain, std::string(ML3_SOURCE_DIR) + "/configs/mountain_car_ml3.yaml",
                                   {"mountain_car.loss_hidden=[16,12]", std::string("mountain_car.shaping=") +
                                                                            (shaping ? "true" : "false")});
    std::vector<double> phi(4 * 16 + 16 + 16 * 12 + 12 + 12 + 1);
    Rng rng(7);
    for (double& v : phi) v = rng.uniform(-0.6, 0.6);
    const std::vector<std::array<double, 2>> pool{{0.3, -0.2}, {-0.45, 0.1}, {5.0, 2.0}};
    std::vector<double> ga, ge;
    const MountainCarStep a = mountain_car_meta_step(cfg, true, phi, pool, ga);
    const MountainCarStep e = mountain_car_meta_step(cfg, false, phi, pool, ge);
    EXPECT_NEAR(e.task_loss, a.task_loss, 1e-10 * std::abs(a.task_loss));
    EXPECT_NEAR(e.inner_loss, a.inner_loss, 1e-10 * std::max(1.0, std::abs(a.inner_loss)));
    for (size_t q = 0; q < pool.size(); ++q) {
      EXPECT_NEAR(e.w_after[q][0], a.w_after[q][0], 1e-12);
      EXPECT_NEAR(e.w_after[q][1], a.w_after[q][1], 1e-12);
      EXPECT_NEAR(e.final_positions[q], a.final_positions[q], 1e-10);
    }
    ASSERT_EQ(ge.size(), ga.size());
    double scale = 0, diff = 0;
    for (size_t j = 0; j < ga.size(); ++j)
      scale = std::max(scale, std::abs(ga[j])), diff = std::max(diff, std::abs(ge[j] - ga[j]));
    EXPECT_GT(scale, 1e-8);
    EXPECT_LT(diff, 1e-9 * scale) << "shaping " << shaping;
  }
}

TEST(MountainCar, ShapedMetaTrainingReachesTheGoal) {
  const fs::path dir = temp_dir("mcar");
  const std::string cfg_path = (dir / "mc.yaml").string();
  std::ofstream(cfg_path) << load_config(Command::MetaTrain, std::string(ML3_SOURCE_DIR) + "/configs/mountain_car_ml3.yaml",
                                         {"mountain_car.iterations=100", "mountain_car.test_seeds=1",
                                          "mountain_car.eval_every=0", "mountain_car.checkpoint_every=50"})
                                 .to_yaml();
  RunArgs args;
  args.command = Command::MetaTrain;
  args.config_path = cfg_path;
  args.out_dir = (dir / "run").string();
  args.quiet = true;
  const auto summary = nlohmann::json::parse(run(args).summary);
  EXPECT_GT(summary.at("meta_iteration_seconds_median").get<double>(), 0.0);
  for (const char* f : {"loss.ml3", "metrics.csv", "summary.json", "checkpoints/last.ckpt"})
    EXPECT_TRUE(fs::exists(dir / "run" / f)) << f;
  const Config cfg = load_config(Command::MetaTrain, cfg_path, {});
  const auto j = nlohmann::json::parse(run_mountain_car_meta_test((dir / "run" / "loss.ml3").string(), cfg, true));
  EXPECT_EQ(j.at("final_position_after_steps").size(), 50u);
  EXPECT_GE(j.at("max_consecutive_steps_at_goal").get<int>(), 20) << j.at("final_position_after_steps").dump();
  EXPECT_EQ(j.at("task_loss_sgd").at("max_consecutive_steps_at_goal").get<int>(), 0);
  // Stopped and resumed: the same metrics and loss (a 10-iteration run).
  const std::string short_path = (dir / "short.yaml").string();
  std::ofstream(short_path) << load_config(Command::MetaTrain, cfg_path, {"mountain_car.iterations=10",
                                                                          "mountain_car.checkpoint_every=2"})
                                   .to_yaml();
  run_whole_and_resumed(short_path, dir, 4);
  auto rows = [](const fs::path& d) { return test::metric_columns(d, {"task_loss", "grad_norm", "pool_final_position"}); };
  EXPECT_EQ(rows(dir / "whole"), rows(dir / "split"));
  EXPECT_EQ(rows(dir / "whole").size(), 10u);
  EXPECT_EQ(read_text(dir / "whole" / "loss.ml3"), read_text(dir / "split" / "loss.ml3"));
  EXPECT_NE(error_of([&] { run_mountain_car_meta_test((dir / "missing.ml3").string(), cfg, true); }).find("missing.ml3"),
            std::string::npos);
  // A checkpoint whose learned-loss tensor has another shape is refused by
  // name (the flat parameters are read by shape; nothing is read past them).
  RunArgs split;
  split.command = Command::MetaTrain;
  split.config_path = short_path;
  split.out_dir = (dir / "bad").string();
  split.stop_after = 4;
  split.quiet = true;
  run(split);
  const std::string ckpt = (dir / "bad" / "checkpoints" / "last.ckpt").string();
  Archive a = Archive::load(ckpt);
  const std::vector<float> small(6, 0.f);
  a.put("phi/0", "f32", {2, 3}, small.data(), small.size() * sizeof(float));
  a.save(ckpt);
  RunArgs resume;
  resume.command = Command::MetaTrain;
  resume.resume_dir = (dir / "bad").string();
  resume.quiet = true;
  const std::string err = error_of([&] { run(resume); });
  EXPECT_NE(err.find(ckpt + ": learned loss tensor 0 has shape [2, 3]"), std::string::npos) << err;
  fs::remove_all(dir);
}


// ---- the model-based reacher (src/testbeds/mbrl/mbrl.h) ----------------------------------------
// A small, fast version of configs/reacher_mbrl_ml3.yaml.
Config mbrl_config(const std::vector<std::string>& extra) {
  std::vector<std::string> o{"mbrl.babble_episodes=40", "mbrl.holdout_episodes=8", "mbrl.ensemble=2",
                             "mbrl.model_hidden=[32,32]", "mbrl.fit_epochs=20", "mbrl.model_batch=128",
                             "mbrl.policy_hidden=[8]", "mbrl.loss_hidden=[16,16]", "mbrl.pool_size=2",
                             "mbrl.pool_reset_every=3", "mbrl.eval_goals=2", "mbrl.test_goals=3", "mbrl.test_steps=2",
                             "env.episode_steps=20"};
  o.insert(o.end(), extra.begin(), extra.end());
  return load_config(Command::MetaTrain, std::string(ML3_SOURCE_DIR) + "/configs/reacher_mbrl_ml3.yaml", o);
}

// The ensemble fitted on babbling predicts held-out MuJoCo transitions better
// than "no change" (the fingertip too), the kinematics are exact, the model file is
// written; a truncated model file is refused naming the file.
TEST(Mbrl, DynamicsFitBeatsZeroChangeAndTruncatedFileIsNamed) {
  const fs::path dir = temp_dir("mbrl_fit");
  const Config cfg = mbrl_config({});
  const auto j = nlohmann::json::parse(run_dynamics_fit(cfg, (dir / "fit").string(), false, true));
  const auto& h = j.at("held_out");
  const auto rmse = h.at("one_step_rmse").get<std::vector<double>>();
  const auto zero = h.at("one_step_rmse_zero_change").get<std::vector<double>>();
  ASSERT_EQ(rmse.size(), 4u);
  // q0, q1, qdot0 far better than "no change"; qdot1 jumps where the elbow
  // hits its limit (+-3 rad), which this small model does not capture.
  for (size_t i = 0; i < 3; ++i) EXPECT_LT(rmse[i], 0.5 * zero[i]) << "state dimension " << i;
  EXPECT_LT(j.at("kinematics_max_residual").get<double>(), 1e-6);
  EXPECT_LT(h.at("one_step_fingertip_error_mean").get<double>(), 0.5 * h.at("one_step_fingertip_error_mean_zero_change").get<double>());
  EXPECT_NEAR(j.at("kinematics").at("l1").get<double>(), 0.1, 1e-6);
  EXPECT_NEAR(j.at("kinematics").at("l2").get<double>(), 0.11, 1e-6);
  EXPECT_TRUE(std::isfinite(h.at("horizon_fingertip_error_mean").get<double>()));
  EXPECT_EQ(h.at("horizon").get<int>(), 20);
  EXPECT_TRUE(fs::exists(dir / "fit" / "dynamics.ml3"));
  EXPECT_TRUE(fs::exists(dir / "fit" / "fit.json"));
  // Same seed, same numbers.
  EXPECT_EQ(nlohmann::json::parse(run_dynamics_fit(cfg, (dir / "again").string(), false, true)).at("held_out"), h);
  EXPECT_NE(error_of([&] { run_dynamics_fit(cfg, (dir / "fit").string(), false, true); }).find("--force"),
            std::string::npos);
  // A truncated model file: one error naming it.
  const std::string text = read_text(dir / "fit" / "dynamics.ml3");
  const fs::path cut = dir / "cut_dynamics.ml3";
  std::ofstream(cut, std::ios::binary) << text.substr(0, text.size() / 2);
  const Config with_cut = mbrl_config({"mbrl.dynamics_file=" + cut.string(), "mbrl.iterations=1"});
  RunArgs args;
  args.command = Command::MetaTrain;
  const std::string cfg_path = (dir / "cut.yaml").string();
  std::ofstream(cfg_path) << with_cut.to_yaml();
  args.config_path = cfg_path;
  args.out_dir = (dir / "cut_run").string();
  args.quiet = true;
  EXPECT_NE(error_of([&] { run(args); }).find("cut_dynamics.ml3"), std::string::npos);
  fs::remove_all(dir);
}

// The model rollout is differentiable with respect to the policy parameters:
// the autograd gradient of the task loss is finite, non-zero and matches a
// central finite difference along a random direction (float64).
TEST(Mbrl, ModelRolloutGradientMatchesFiniteDifferences) {
  const auto j = mbrl_gradient_check(mbrl_config({}), 1e-6);
  const double g = j.at("grad_norm").get<double>(), a = j.at("directional_autograd").get<double>(),
               fd = j.at("directional_fd").get<double>();
  EXPECT_TRUE(std::isfinite(g));
  EXPECT_GT(g, 1e-6);
  EXPECT_NEAR(a, fd, 1e-5 * std::max(1.0, std::abs(fd))) << j.dump();
}

// A short meta-training run writes loss.ml3, dynamics.ml3, the metrics and
// the summary; stopped and resumed (across a refit of the model) it gives
// the same numbers; meta-test writes results.json with the expected fields.
TEST(Mbrl, MetaTrainResumesIdenticallyAndMetaTests) {
  const fs::path dir = temp_dir("mbrl_run");
  const std::string cfg_path = (dir / "m.yaml").string();
  std::ofstream(cfg_path) << mbrl_config({"mbrl.iterations=6", "mbrl.data_every=2", "mbrl.eval_every=3",
                                          "mbrl.checkpoint_every=2"})
                                 .to_yaml();
  const auto summary = run_whole_and_resumed(cfg_path, dir, 3);
  EXPECT_GT(summary.at("meta_iteration_seconds_median").get<double>(), 0.0);
  EXPECT_EQ(summary.at("data_episodes").get<int>(), 40 + 3 * 2);
  for (const char* f : {"loss.ml3", "dynamics.ml3", "metrics.csv", "summary.json", "checkpoints/last.ckpt"})
    EXPECT_TRUE(fs::exists(dir / "whole" / f)) << f;
  auto rows = [](const fs::path& d) {
    return test::metric_columns(d, {"task_loss", "grad_norm", "pool_model_distance", "model_nll", "eval_real_distance"});
  };
  EXPECT_EQ(rows(dir / "whole"), rows(dir / "split"));
  EXPECT_EQ(rows(dir / "whole").size(), 6u);
  EXPECT_EQ(read_text(dir / "whole" / "loss.ml3"), read_text(dir / "split" / "loss.ml3"));
  EXPECT_EQ(read_text(dir / "whole" / "dynamics.ml3"), read_text(dir / "split" / "dynamics.ml3"));
  const Config cfg = load_config(Command::MetaTrain, cfg_path, {});
  const auto j = nlohmann::json::parse(
      run_mbrl_meta_test((dir / "whole" / "loss.ml3").string(), cfg, "ood", (dir / "test").string(), false, true));
  EXPECT_EQ(j.at("split"), "ood");
  for (const char* k : {"learned_loss", "task_loss"}) {
    const auto& c = j.at(k);
    EXPECT_EQ(c.at("final_distance_mean_after_steps").size(), 3u) << k;
    EXPECT_EQ(c.at("success_rate_after_steps").size(), 3u) << k;
    EXPECT_EQ(c.at("model_final_distance_mean_after_steps").size(), 3u) << k;
    EXPECT_EQ(c.at("final_distance_per_goal_after_last_step").size(), 3u) << k;
    EXPECT_TRUE(c.contains("final_distance_mean_after_2")) << k;
  }
  // Untrained policies are the same for both losses.
  EXPECT_EQ(j.at("learned_loss").at("final_distance_mean_after_steps")[0],
            j.at("task_loss").at("final_distance_mean_after_steps")[0]);
  EXPECT_TRUE(fs::exists(dir / "test" / "results.json"));
  EXPECT_NE(mbrl_meta_test_table(j.dump()).find("learned loss"), std::string::npos);
  EXPECT_NE(error_of([&] { run_mbrl_meta_test((dir / "missing.ml3").string(), cfg, "test", (dir / "t2").string(), false, true); })
                .find("missing.ml3"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config(Command::MetaTrain, "", {"algorithm=mbrl", "env.name=pointmass"}); }).find("reacher"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config(Command::MetaTrain, "", {"algorithm=mbrl", "env.name=reacher", "mbrl.inner_lrr=1"}); })
                .find("did you mean 'mbrl.inner_lr'"),
            std::string::npos);
  fs::remove_all(dir);
}

// The shipped configs load and write out every key of their schema.
TEST(PaperConfigs, ShippedConfigsWriteOutEveryKey) {
  for (const char* name : {"shaped_sine_ml3", "mountain_car_ml3", "reacher_mbrl_ml3"}) {
    const std::string path = std::string(ML3_SOURCE_DIR) + "/configs/" + name + ".yaml";
    const Config c = load_config(Command::MetaTrain, path, {});
    const std::string text = read_text(path);
    for (const auto& d : c.schema().params())
      EXPECT_NE(text.find(d.key.substr(d.key.rfind('.') + 1) + ":"), std::string::npos) << name << " lacks " << d.key;
  }
  EXPECT_NE(error_of([] { load_config(Command::MetaTrain, "", {"algorithm=mountain_car", "mountain_car.horizon=10"}); })
                .find("horizon > 15"),
            std::string::npos);
}


// The MLP sine loss's landscape: along the training path (a = 0: the fresh
// regressor, a = 1: trained) and a plane; training with the loss lowered it.
TEST(SineLandscape, MlpAlongTheTrainingPath) {
  const Config cfg = load_sine_config("", {"sine.regressor_hidden=[8,4]", "sine.loss_hidden=[6,6]", "sine.test_steps=20",
                                            "sine.inner_lr=0.01", "sine.points=16"});
  SineMetaLearner learner(cfg);
  for (int it = 1; it <= 5; ++it) learner.step(it);
  const fs::path dir = temp_dir("mlp_landscape");
  save_sine_loss((dir / "l.ml3").string(), learner.loss());
  const auto j = nlohmann::json::parse(sine_landscape((dir / "l.ml3").string(), cfg, 5));
  const auto& one = j.at("one_d").at(0);
  EXPECT_EQ(one.at("x"), (std::vector<double>{-0.5, 0.0, 0.5, 1.0, 1.5}));
  const auto& l = one.at("curves").at("learned loss");
  EXPECT_LT(l[3].get<double>(), l[1].get<double>()) << "20 SGD steps on the loss did not lower it";
  EXPECT_EQ(j.at("two_d").at(0).at("surfaces").at("MSE").size(), 5u);
  EXPECT_NE(error_of([&] { sine_landscape((dir / "l.ml3").string(), cfg, 2); }).find("at least 3"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ml3
