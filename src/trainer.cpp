#include "src/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "src/pg.h"
#include "src/plot.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {

void add_policy_keys(Schema& s) {
  s.add_int_list("policy.hidden", {64, 64}, "policy MLP hidden sizes");
  s.add_string("policy.activation", "tanh", "policy hidden activation", {"tanh", "relu", "elu"});
  s.add_double("policy.init_log_std", -0.5, "initial log standard deviation of the actions");
  s.add_double("policy.log_std_min", -5.0, "lower clamp of the log-std");
  s.add_double("policy.log_std_max", 1.0, "upper clamp of the log-std");
  s.add_bool("policy.obs_norm", true, "running observation normalisation (saved with the policy)");
  s.add_int_list("value.hidden", {64, 64}, "value MLP hidden sizes");
  s.add_string("value.activation", "tanh", "value hidden activation", {"tanh", "relu", "elu"});
}

void add_pg_keys(Schema& s) {
  s.add_double("optim.lr", 3e-4, "policy Adam learning rate", 0.0, 10.0, true);
  s.add_double("optim.value_lr", 1e-3, "value Adam learning rate", 0.0, 10.0, true);
  s.add_double("optim.adam_eps", 1e-5, "Adam epsilon", 0.0, 1.0, true);
  s.add_bool("optim.anneal_lr", true, "decay both learning rates linearly to 0 over the run");
  s.add_double("optim.max_grad_norm", 0.5, "global gradient-norm clip (0: off)", 0.0);
  s.add_double("pg.gamma", 0.99, "discount", 0.0, 1.0);
  s.add_double("pg.gae_lambda", 0.95, "GAE lambda (1: Monte-Carlo return minus baseline)", 0.0, 1.0);
  s.add_bool("pg.normalize_advantages", true, "normalise advantages per batch");
  s.add_double("pg.entropy_coef", 0.0, "entropy bonus weight", 0.0);
  s.add_int("pg.epochs", 10, "passes over the batch (PPO: policy and value; REINFORCE: value only)");
  s.add_int("pg.minibatches", 32, "minibatches per pass");
  s.add_double("ppo.clip", 0.2, "PPO ratio clip epsilon", 0.0, 1.0, true);
  s.add_double("ppo.target_kl", 0.0, "stop the epochs when approx. KL exceeds this (0: off)", 0.0);
}

Schema train_schema(const std::string& env_name) {
  Schema s;
  s.add_int("seed", 1, "seed of everything random (init, goals, noise, shuffling)", 0);
  s.add_int("threads", 2, "simulation threads (batched environment)", 1, 256);
  s.add_int("torch_threads", 1, "LibTorch intra-op threads (small networks: 1 is fastest)", 1, 256);
  s.add_string("algorithm", "ppo", "policy-gradient objective", {"ppo", "reinforce"});
  s.add_string("env.name", env_name, "environment (see ml3 envs)");
  s.include("env.", find_env(env_name).schema);
  s.add_int("train.iterations", 300, "policy-update iterations (each collects a batch of episodes)");
  s.add_int("train.episodes_per_iteration", 64, "episodes per iteration (batched envs; one train goal each)");
  s.add_int("train.checkpoint_every", 50, "write a checkpoint every K iterations (and at the end)");
  s.add_int("train.eval_every", 25, "deterministic evaluation on the test split every K iterations (0: end only)", 0);
  s.add_int("train.eval_episodes", 100, "test goals per evaluation");
  s.add_int("train.eval_seed", 0, "seed of the evaluation goals (same goals for every run)", 0);
  add_policy_keys(s);
  add_pg_keys(s);
  s.add_int("debug.nan_at_iteration", 0, "testing aid: inject a NaN reward at this iteration (0: off)", 0);
  return s;
}

Config load_env_config(const std::string& path, const std::vector<std::string>& overrides,
                       Schema (*schema)(const std::string& env_name)) {
  const std::string env = peek_config_value(path, overrides, "env.name", "");
  if (env.empty()) throw Error((path.empty() ? std::string("config") : path) + ": key 'env.name' is required");
  find_env(env);
  Config c(schema(env));
  if (!path.empty()) c.load_yaml_file(path);
  c.apply_overrides(overrides);
  return c;
}

Config load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  return load_env_config(path, overrides, train_schema);
}

// ---- the pieces a run is made of -------------------------------------------------
PolicySetup make_policy_setup(const Config& c, int obs_dim, int act_dim) {
  PolicySetup p;
  PolicyConfig pc;
  pc.hidden = c.get_int_list("policy.hidden");
  pc.activation = parse_activation(c.get_string("policy.activation"));
  pc.init_log_std = c.get_double("policy.init_log_std");
  pc.log_std_min = c.get_double("policy.log_std_min");
  pc.log_std_max = c.get_double("policy.log_std_max");
  if (!(pc.log_std_min < pc.log_std_max))
    throw Error("config: policy.log_std_min must be below policy.log_std_max");
  p.policy = GaussianPolicy(obs_dim, act_dim, pc);
  std::vector<int> vs{obs_dim};
  for (int h : c.get_int_list("value.hidden")) vs.push_back(h);
  vs.push_back(1);
  p.value_net = FunctionalMlp(vs, parse_activation(c.get_string("value.activation")));
  p.norm = ObsNormalizer(obs_dim, c.get_bool("policy.obs_norm"));
  return p;
}

LearnerConfig learner_config(const Config& c) {
  LearnerConfig l;
  l.algorithm = c.get_string("algorithm");
  l.lr = c.get_double("optim.lr");
  l.value_lr = c.get_double("optim.value_lr");
  l.adam_eps = c.get_double("optim.adam_eps");
  l.max_grad_norm = c.get_double("optim.max_grad_norm");
  l.gamma = c.get_double("pg.gamma");
  l.gae_lambda = c.get_double("pg.gae_lambda");
  l.normalize_advantages = c.get_bool("pg.normalize_advantages");
  l.entropy_coef = c.get_double("pg.entropy_coef");
  l.epochs = static_cast<int>(c.get_int("pg.epochs"));
  l.minibatches = static_cast<int>(c.get_int("pg.minibatches"));
  l.clip = c.get_double("ppo.clip");
  l.target_kl = c.get_double("ppo.target_kl");
  return l;
}

namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string> kMetricColumns = {
    "iteration",     "env_steps",     "wall_seconds",      "steps_per_s", "return_mean", "success_rate",
    "final_distance_mean", "policy_loss", "value_loss",    "entropy",     "approx_kl",   "clip_fraction",
    "grad_norm",     "lr",            "collect_seconds", "update_seconds",            "eval_success_rate", "eval_final_distance_mean", "eval_return_mean"};

struct Checkpoint {
  int iteration = 0;
  int64_t env_steps = 0;
  double wall_seconds = 0;
};

void save_checkpoint(const std::string& path, const Config& cfg, const Checkpoint& ck, const Params& pp,
                     const Params& vp, const ObsNormalizer& norm, PolicyGradientLearner& learner) {
  Archive a("checkpoint");
  a.meta() = {{"format", 1},
              {"iteration", ck.iteration},
              {"env_steps", ck.env_steps},
              {"wall_seconds", ck.wall_seconds},
              {"env", cfg.get_string("env.name")},
              {"algorithm", cfg.get_string("algorithm")},
              {"config", cfg.to_yaml()}};
  put_params(a, "policy/", pp);
  put_params(a, "value/", vp);
  norm.save(a, "norm/");
  learner.policy_adam().save(a, "adam_policy/");
  learner.value_adam().save(a, "adam_value/");
  a.save(path);
}

// Checks that loaded tensors have the shapes the configured networks expect.
void check_shapes(const Archive& a, const Params& loaded, const Params& expected, const std::string& what) {
  for (size_t i = 0; i < expected.size(); ++i)
    if (loaded[i].sizes() != expected[i].sizes())
      throw Error(a.path() + ": " + what + " tensor " + std::to_string(i) + " has shape " +
                  c10::str(loaded[i].sizes()) + ", the config's network expects " + c10::str(expected[i].sizes()));
}

std::string fmt_count(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof(buf), "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof(buf), "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

}  // namespace

// ---- the trainer -------------------------------------------------------------------
TrainSummary run_train(const TrainArgs& args) {
  Config cfg;
  const bool resume = !args.resume_dir.empty();
  const fs::path run_dir = open_run_folder(args.config_path, args.overrides, args.out_dir, args.resume_dir,
                                           args.force, load_train_config, &cfg);

  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  const int threads = static_cast<int>(cfg.get_int("threads"));
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const std::string env_name = cfg.get_string("env.name");
  const Config env_opts = cfg.subset("env.");
  const int iterations = static_cast<int>(cfg.get_int("train.iterations"));
  const int n_envs = static_cast<int>(cfg.get_int("train.episodes_per_iteration"));
  const int ck_every = static_cast<int>(cfg.get_int("train.checkpoint_every"));
  const int eval_every = static_cast<int>(cfg.get_int("train.eval_every"));
  const int eval_episodes = static_cast<int>(cfg.get_int("train.eval_episodes"));
  const uint64_t eval_seed = static_cast<uint64_t>(cfg.get_int("train.eval_seed"));
  const int nan_at = static_cast<int>(cfg.get_int("debug.nan_at_iteration"));
  const bool anneal = cfg.get_bool("optim.anneal_lr");

  VecEnv venv(env_name, env_opts, n_envs, threads);
  VecEnv eval_env(env_name, env_opts, eval_episodes, threads);
  const EnvSpec& spec = venv.spec();
  PolicySetup ps = make_policy_setup(cfg, spec.obs_dim, spec.act_dim);
  const LearnerConfig lc = learner_config(cfg);
  PolicyGradientLearner learner(lc, ps.policy, ps.value_net);
  Params pp = ps.policy.init(mix_seed(seed, 11));
  Params vp = ps.value_net.init(mix_seed(seed, 12));
  learner.init_optimizers(pp, vp);

  Checkpoint ck;
  const fs::path ck_dir = run_dir / "checkpoints";
  const fs::path last_path = ck_dir / "last.ckpt";
  if (resume) {
    const Archive a = Archive::load(last_path.string(), "checkpoint");
    const Params lp = get_params(a, "policy/", pp.size()), lv = get_params(a, "value/", vp.size());
    check_shapes(a, lp, pp, "policy");
    check_shapes(a, lv, vp, "value");
    pp = lp, vp = lv;
    ps.norm.load(a, "norm/");
    learner.policy_adam().load(a, "adam_policy/");
    learner.value_adam().load(a, "adam_value/");
    ck.iteration = a.meta().at("iteration").get<int>();
    ck.env_steps = a.meta().at("env_steps").get<int64_t>();
    ck.wall_seconds = a.meta().at("wall_seconds").get<double>();
    truncate_metrics(run_dir, ck.iteration);
    std::fprintf(stderr, "resuming %s at iteration %d/%d\n", run_dir.c_str(), ck.iteration, iterations);
  }

  MetricsWriter metrics(run_dir, kMetricColumns, resume);
  Progress progress("train " + env_name + " " + lc.algorithm, iterations, args.quiet);
  const auto start = Clock::now();
  const double wall0 = ck.wall_seconds;
  auto wall = [&] { return wall0 + std::chrono::duration<double>(Clock::now() - start).count(); };
  const int stop_at = args.stop_after > 0 ? std::min(args.stop_after, iterations) : iterations;
  double last_eval_success = NAN;
  int saved_iteration = ck.iteration;  // of checkpoints/last.ckpt (0: none yet)

  for (int it = ck.iteration + 1; it <= stop_at; ++it) {
    const auto it_start = Clock::now();
    const auto tasks = sample_tasks(venv.env(0), Split::Train, mix_seed(seed, it), n_envs);
    Batch batch = collect(venv, ps.policy, pp, ps.norm, tasks, mix_seed(seed, (1ull << 32) + it), false);
    const double collect_seconds = std::chrono::duration<double>(Clock::now() - it_start).count();
    if (it == nan_at) batch.rewards[0][0] = NAN;
    {
      // Normaliser statistics from this batch apply from the next rollout on.
      const Tensor raw = batch.raw_obs.reshape({-1, spec.obs_dim}).to(torch::kFloat64).contiguous();
      ps.norm.update(raw.data_ptr<double>(), raw.size(0));
    }
    compute_values(batch, ps.value_net, vp);
    compute_gae(batch, lc.gamma, lc.gae_lambda);
    const double lr_scale = anneal ? 1.0 - static_cast<double>(it - 1) / iterations : 1.0;
    UpdateStats us;
    const auto update_start = Clock::now();
    try {
      us = learner.update(batch, pp, vp, lr_scale, mix_seed(seed, (2ull << 32) + it));
      for (const auto* set : {&pp, &vp})
        for (const auto& t : *set)
          if (!torch::isfinite(t).all().item<bool>()) throw NonFiniteError("non-finite parameters after the update");
    } catch (const NonFiniteError& e) {
      progress.finish();
      throw Error("iteration " + std::to_string(it) + ": " + e.what() +
                  "; training stopped, nothing of this iteration was saved. Last good checkpoint: " +
                  (saved_iteration > 0 ? last_path.string() + " (iteration " + std::to_string(saved_iteration) + ")"
                                       : std::string("none yet")));
    }
    const double update_seconds = std::chrono::duration<double>(Clock::now() - update_start).count();
    ck.iteration = it;
    ck.env_steps += batch.steps();
    const double it_seconds = std::chrono::duration<double>(Clock::now() - it_start).count();

    nlohmann::json row = {{"iteration", it},
                          {"env_steps", ck.env_steps},
                          {"wall_seconds", wall()},
                          {"steps_per_s", batch.steps() / it_seconds},
                          {"return_mean", batch.return_mean},
                          {"success_rate", batch.success_rate},
                          {"final_distance_mean", batch.final_distance_mean},
                          {"policy_loss", us.policy_loss},
                          {"value_loss", us.value_loss},
                          {"entropy", us.entropy},
                          {"approx_kl", us.approx_kl},
                          {"clip_fraction", us.clip_fraction},
                          {"grad_norm", us.grad_norm},
                          {"lr", lc.lr * lr_scale},
                          {"collect_seconds", collect_seconds},
                          {"update_seconds", update_seconds}};
    if ((eval_every > 0 && it % eval_every == 0) || it == iterations) {
      const EvalResult ev = evaluate(eval_env, ps.policy, pp, ps.norm, Split::Test, eval_episodes, eval_seed);
      row["eval_success_rate"] = ev.success_rate;
      row["eval_final_distance_mean"] = ev.final_distance_mean;
      row["eval_return_mean"] = ev.return_mean;
      last_eval_success = ev.success_rate;
    }
    ck.wall_seconds = wall();
    metrics.append(row);
    if (it % ck_every == 0 || it == iterations || it == stop_at) {
      char name[32];
      std::snprintf(name, sizeof(name), "iter_%06d.ckpt", it);
      save_checkpoint((ck_dir / name).string(), cfg, ck, pp, vp, ps.norm, learner);
      fs::copy_file(ck_dir / name, last_path.string() + ".tmp", fs::copy_options::overwrite_existing);
      fs::rename(last_path.string() + ".tmp", last_path);
      saved_iteration = it;
    }
    char line[256];
    std::snprintf(line, sizeof(line), "%s steps | %s steps/s | return %.2f | success %.0f%% | eval %s", 
                  fmt_count(static_cast<double>(ck.env_steps)).c_str(), fmt_count(batch.steps() / it_seconds).c_str(),
                  batch.return_mean, 100 * batch.success_rate,
                  std::isfinite(last_eval_success) ? (std::to_string(static_cast<int>(std::lround(100 * last_eval_success))) + "%").c_str() : "-");
    progress.update(it, line);
  }
  progress.finish();

  TrainSummary out;
  out.run_dir = run_dir.string();
  if (stop_at < iterations) {
    std::fprintf(stderr, "stopped after iteration %d of %d; continue with: ml3 train --resume %s\n", stop_at,
                 iterations, run_dir.c_str());
    return out;
  }
  const EvalResult final_eval = evaluate(eval_env, ps.policy, pp, ps.norm, Split::Test, eval_episodes, eval_seed);
  nlohmann::json summary = {{"env", env_name},
                            {"algorithm", lc.algorithm},
                            {"seed", seed},
                            {"iterations", iterations},
                            {"policy_updates", learner.policy_adam().steps()},
                            {"env_steps", ck.env_steps},
                            {"wall_seconds", ck.wall_seconds},
                            {"train_steps_per_s", ck.env_steps / std::max(1e-9, ck.wall_seconds)},
                            {"threads", threads},
                            {"eval_split", "test"},
                            {"eval_episodes", eval_episodes},
                            {"final_success_rate", final_eval.success_rate},
                            {"final_distance_mean", final_eval.final_distance_mean},
                            {"final_return_mean", final_eval.return_mean},
                            {"success_threshold", spec.success_threshold},
                            {"checkpoint", last_path.string()}};
  const std::string plot_err = make_plot("curve", (run_dir / "metrics.csv").string(),
                                         (run_dir / "learning_curve.png").string(),
                                         env_name + " / " + lc.algorithm + " (seed " + std::to_string(seed) + ")");
  if (!plot_err.empty()) std::fprintf(stderr, "warning: learning curve not plotted: %s\n", plot_err.c_str());
  summary["plot"] = plot_err.empty() ? (run_dir / "learning_curve.png").string() : "";
  out.json = summary.dump(2);
  write_file_atomic((run_dir / "summary.json").string(), out.json + "\n");
  return out;
}

std::string run_eval(const EvalArgs& args) {
  std::string path = args.checkpoint;
  if (path.empty()) {
    if (args.run_dir.empty()) throw UsageError("eval needs --run DIR or --checkpoint FILE");
    path = (fs::path(args.run_dir) / "checkpoints" / "last.ckpt").string();
  }
  const Archive a = Archive::load(path, "checkpoint");
  Config cfg;
  const std::string env_name = a.meta().at("env").get<std::string>();
  cfg = Config(train_schema(env_name));
  cfg.load_yaml_string(a.meta().at("config").get<std::string>(), path + " (stored config)");
  for (const auto& o : args.env_overrides)
    if (o.rfind("env.", 0) != 0) throw UsageError("eval accepts only env.key=value overrides, got '" + o + "'");
  cfg.apply_overrides(args.env_overrides);
  const int threads = args.threads > 0 ? args.threads : static_cast<int>(cfg.get_int("threads"));
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  VecEnv venv(env_name, cfg.subset("env."), args.episodes, threads);
  PolicySetup ps = make_policy_setup(cfg, venv.spec().obs_dim, venv.spec().act_dim);
  const Params expected = ps.policy.init(0);
  const Params pp = get_params(a, "policy/", expected.size());
  check_shapes(a, pp, expected, "policy");
  ps.norm.load(a, "norm/");
  const EvalResult r = evaluate(venv, ps.policy, pp, ps.norm, parse_split(args.split), args.episodes, args.seed);
  nlohmann::json j = {{"checkpoint", path},
                      {"env", env_name},
                      {"algorithm", a.meta().at("algorithm")},
                      {"iteration", a.meta().at("iteration")},
                      {"split", args.split},
                      {"episodes", r.episodes},
                      {"seed", args.seed},
                      {"success_rate", r.success_rate},
                      {"final_distance_mean", r.final_distance_mean},
                      {"return_mean", r.return_mean},
                      {"success_threshold", venv.spec().success_threshold}};
  return j.dump();
}

}  // namespace ml3
