// The model-based reacher's commands: `ml3 dynamics fit` / `eval`,
// meta-test of a loss file, and the gradient check.
#include "src/testbeds/mbrl/internal.h"

namespace ml3 {

using namespace mbrl;


std::string run_dynamics_fit(const Config& cfg, const std::string& out_dir, bool force, bool quiet) {
  check_mbrl_config(cfg, "config");
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  start_output(out_dir, force, cfg);
  RealSim sim(cfg);
  const int T = sim.horizon();
  Progress progress("dynamics fit", 3, quiet);
  const auto t0 = std::chrono::steady_clock::now();
  const Episodes all = sim.babble(s.babble_episodes, s.babble_hold, mix_seed(seed, kTagBabble));
  progress.update(1, fmt::format("{} babbling episodes", all.count));
  const int train_n = all.count - s.holdout_episodes;
  Episodes train;
  train.count = train_n;
  train.obs.assign(all.obs.begin(), all.obs.begin() + static_cast<int64_t>(train_n) * (T + 1) * kObs);
  train.act.assign(all.act.begin(), all.act.begin() + static_cast<int64_t>(train_n) * T * kAct);
  Fitted f = fit_from_scratch(s, seed, train, T);
  const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.update(2, fmt::format("fitted, NLL {:.3f}", f.nll));
  const Tensor obs = obs_tensor(all, T).narrow(0, train_n, s.holdout_episodes);
  const Tensor act = act_tensor(all, T).narrow(0, train_n, s.holdout_episodes);
  nlohmann::json j = {{"model_file", (fs::path(out_dir) / "dynamics.ml3").string()},
                      {"train_episodes", train_n},
                      {"train_transitions", train_n * T},
                      {"members", s.ensemble},
                      {"final_nll", f.nll},
                      {"fit_seconds", fit_seconds},
                      {"kinematics", kinematics_json(f.kin)},
                      {"kinematics_max_residual", f.kin_residual},
                      {"held_out", model_errors(f.model, f.kin, obs, act)}};
  f.model.save(j["model_file"].get<std::string>(), model_meta(f.kin, cfg));
  progress.update(3, "written");
  progress.finish();
  write_file_atomic((fs::path(out_dir) / "fit.json").string(), j.dump(2) + "\n");
  return j.dump(2);
}

std::string run_dynamics_eval(const std::string& model_file, const Config& cfg) {
  check_mbrl_config(cfg, "config");
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const LoadedModel lm = load_model_file(model_file);
  RealSim sim(cfg);
  const int T = sim.horizon();
  const Episodes e = sim.babble(s.holdout_episodes, s.babble_hold,
                                mix_seed(static_cast<uint64_t>(s.test_seed), kTagEvalBabble));
  return nlohmann::json{{"model_file", model_file},
                        {"held_out", model_errors(lm.model, lm.kin, obs_tensor(e, T), act_tensor(e, T))}}
      .dump(2);
}

std::string run_mbrl_meta_test(const std::string& loss_file, const Config& cfg, const std::string& split,
                               const std::string& out_dir, bool force, bool quiet) {
  check_mbrl_config(cfg, "config");
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const MlpLossFile loss = load_loss_file(loss_file);
  const std::string model_file =
      s.dynamics_file.empty() ? (fs::path(loss_file).parent_path() / "dynamics.ml3").string() : s.dynamics_file;
  LoadedModel lm = load_model_file(model_file);
  start_output(out_dir, force, cfg);
  RealSim sim(cfg);
  Problem pb{policy_net(s), std::move(lm.model), lm.kin, sim.horizon()};
  const GoalSet gs = eval_goals(sim, parse_split(split), static_cast<uint64_t>(s.test_seed), s.test_goals);
  const Params w0 =
      fresh_policies(pb.policy, static_cast<uint64_t>(s.test_seed), kTagTestPolicy, 0, s.test_goals, s.policy_init_scale);
  Progress progress("meta-test mbrl " + split, 2 * (s.test_steps + 1), quiet);
  int done = 0;
  const double thr = sim.env().spec().success_threshold;
  const auto t0 = std::chrono::steady_clock::now();
  const TestCurve learned = test_policies(pb, sim, {&loss.net, &loss.phi}, gs, w0, s.test_steps, s.inner_lr, thr,
                                          [&](int k) { progress.update(++done, fmt::format("learned loss step {}", k)); });
  const TestCurve task = test_policies(pb, sim, {}, gs, w0, s.test_steps, s.task_lr, thr,
                                       [&](int k) { progress.update(++done, fmt::format("task loss step {}", k)); });
  progress.finish();
  const nlohmann::json j = {{"loss_file", loss_file},
                            {"dynamics_file", model_file},
                            {"split", split},
                            {"goals", s.test_goals},
                            {"steps", s.test_steps},
                            {"lr", s.inner_lr},
                            {"task_lr", s.task_lr},
                            {"success_threshold", thr},
                            {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                            {"learned_loss", curve_json(learned, s.test_steps)},
                            {"task_loss", curve_json(task, s.test_steps)}};
  write_file_atomic((fs::path(out_dir) / "results.json").string(), j.dump(2) + "\n");
  return j.dump(2);
}

std::string mbrl_meta_test_table(const std::string& results_json) {
  const auto j = nlohmann::json::parse(results_json);
  std::string out = fmt::format("model-based reacher, {} goals ({}), {} SGD steps through the model (learned loss "
                                "at lr {}, task loss at lr {}); final fingertip distance in MuJoCo (m), mean over "
                                "goals:\n",
                                j["goals"].get<int>(), j["split"].get<std::string>(), j["steps"].get<int>(),
                                j["lr"].get<double>(), j["task_lr"].get<double>());
  out += fmt::format("{:>6} {:>14} {:>14} {:>16} {:>16}\n", "step", "learned loss", "task loss", "learned success",
                     "task success");
  const auto& l = j["learned_loss"];
  const auto& t = j["task_loss"];
  for (size_t k = 0; k < l["final_distance_mean_after_steps"].size(); ++k)
    out += fmt::format("{:>6} {:>14.4f} {:>14.4f} {:>15.0f}% {:>15.0f}%\n", k,
                       l["final_distance_mean_after_steps"][k].get<double>(),
                       t["final_distance_mean_after_steps"][k].get<double>(),
                       100 * l["success_rate_after_steps"][k].get<double>(),
                       100 * t["success_rate_after_steps"][k].get<double>());
  return out;
}

nlohmann::json mbrl_gradient_check(const Config& cfg, double eps) {
  const MbrlSection s = read<MbrlSection>(cfg, "mbrl.");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  RealSim sim(cfg);
  const Episodes data = sim.babble(s.babble_episodes, s.babble_hold, mix_seed(seed, kTagBabble));
  Fitted f = fit_from_scratch(s, seed, data, sim.horizon());
  // float64 copies of the model and one policy.
  const Problem pb{policy_net(s), f.model.to_float64(), f.kin, sim.horizon()};
  const GoalSet gs = eval_goals(sim, Split::Test, 0, 1);
  const Tensor s0 = gs.s0.to(torch::kFloat64), g = gs.g.to(torch::kFloat64);
  Params w = fresh_policies(pb.policy, seed, kTagTestPolicy, 0, 1, 1.0);
  for (auto& p : w) p = p.to(torch::kFloat64).requires_grad_(true);
  auto loss_at = [&](const Params& p) { return task_loss(model_rollout(pb, p, s0, g), g, pb.kin).sum(); };
  const Tensor l = loss_at(w);
  const auto grads = torch::autograd::grad({l}, w);
  torch::NoGradGuard ng;
  Rng rng(seed);
  double dir = 0, sq = 0;
  Params plus, minus;
  for (size_t i = 0; i < w.size(); ++i) {
    Tensor v = torch::empty_like(w[i]);
    auto* vd = v.data_ptr<double>();
    for (int64_t k = 0; k < v.numel(); ++k) vd[k] = rng.normal();
    dir += (grads[i] * v).sum().item<double>();
    sq += grads[i].pow(2).sum().item<double>();
    plus.push_back(w[i].detach() + eps * v), minus.push_back(w[i].detach() - eps * v);
  }
  const double fd = (loss_at(plus).item<double>() - loss_at(minus).item<double>()) / (2 * eps);
  return {{"grad_norm", std::sqrt(sq)}, {"directional_autograd", dir}, {"directional_fd", fd}, {"task_loss", l.item<double>()}};
}

}  // namespace ml3
