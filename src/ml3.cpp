// ML3 for policies: meta-training a learned loss over a pool of policies at
// different stages of learning, and meta-testing it against REINFORCE and PPO.
#include "src/ml3.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "src/ml3_core.h"
#include "src/plot.h"
#include "src/run.h"
#include "src/trainer.h"

namespace fs = std::filesystem;

namespace ml3 {

// ---- core -----------------------------------------------------------------------
LossFeatureInputs loss_inputs(const Minibatch& mb, const PolicyEval& ev) {
  LossFeatureInputs in;
  in.obs = mb.raw_obs;
  in.goal = mb.goals;
  in.action = mb.actions;
  in.reward = mb.rewards;
  in.rtg = mb.rtg;
  in.time = mb.time_frac;
  in.mean = ev.mean;
  in.logp = ev.logp;
  return in;
}

Tensor LearnedLossObjective::policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats*) const {
  return loss_.loss(loss_inputs(mb, ev), phi_);
}

Params inner_step(const LearnedLoss& loss, const Params& phi, const GaussianPolicy& policy, const Params& theta,
                  const Minibatch& mb, double alpha, bool create_graph, double* inner_loss) {
  const PolicyEval ev = policy_eval(policy, theta, mb);
  const Tensor l = loss.loss(loss_inputs(mb, ev), phi);
  if (inner_loss) *inner_loss = l.item<double>();
  // allow_unused: with features that do not include log_prob, the log-std
  // does not enter the loss (its gradient is zero).
  const auto g = torch::autograd::grad({l}, theta, {}, create_graph, create_graph, /*allow_unused=*/true);
  Params out;
  for (size_t i = 0; i < theta.size(); ++i) out.push_back(g[i].defined() ? theta[i] - alpha * g[i] : theta[i]);
  return out;
}

Tensor task_loss(const GaussianPolicy& policy, const Params& theta, const Batch& fresh) {
  const Minibatch mb = flatten_batch(fresh);
  // Per-timestep baseline: mean reward-to-go over the episodes at that step.
  const Tensor mask = fresh.mask;
  const Tensor base = (fresh.rtg * mask).sum(1, true) / mask.sum(1, true).clamp_min(1.0);
  Tensor adv = ((fresh.rtg - base) * mask).reshape({-1}).index_select(0, mask.reshape({-1}).nonzero().squeeze(-1));
  adv = (adv - adv.mean()) / (adv.std() + 1e-8);
  const PolicyEval ev = policy_eval(policy, theta, mb);
  return -(ev.logp * adv.to(ev.logp.scalar_type())).mean();
}

// ---- config -----------------------------------------------------------------------
Schema meta_schema(const std::string& env_name) {
  Schema s;
  s.add_string("kind", "policy", "meta-learning problem: policy (this schema) or sine (configs/sine_ml3.yaml)",
               {"policy", "sine"});
  s.add_int("seed", 1, "seed of everything random", 0);
  s.add_int("threads", 2, "simulation threads (batched environment)", 1, 256);
  s.add_int("torch_threads", 1, "LibTorch intra-op threads", 1, 256);
  s.add_string("env.name", env_name, "environment (see ml3 envs)");
  s.include("env.", find_env(env_name).schema);
  add_policy_keys(s);
  s.set_default("policy.obs_norm", "false");
  s.add_string("loss.features", "all",
               "learned-loss inputs, comma-separated from: obs, goal, action, reward, return_to_go, time, "
               "policy_mean, log_prob (or all)");
  s.add_int_list("loss.hidden", {32, 32}, "learned-loss MLP hidden sizes");
  s.add_string("loss.activation", "tanh", "learned-loss hidden activation", {"tanh", "relu", "elu"});
  s.add_double("loss.init_scale", 0.01, "scale of the learned loss's output layer at initialisation", 0.0, 10.0, true);
  s.add_int("loss.norm_iterations", 50, "meta-iterations whose features set the input normalisation (then frozen)");
  s.add_int("meta.iterations", 1000, "outer (meta) iterations");
  s.add_int("meta.tasks_per_iteration", 4, "tasks (batches of train goals) per outer gradient");
  s.add_int("meta.episodes_per_task", 64, "episodes per task = batch size of every policy update");
  s.add_double("meta.inner_lr", 0.5, "inner SGD step size alpha (meta-train and meta-test)", 0.0, 1e6, true);
  s.add_int("meta.inner_steps", 1, "differentiable inner steps K (fresh rollouts each)", 1, 20);
  s.add_double("meta.outer_lr", 1e-3, "Adam learning rate of the learned loss", 0.0, 10.0, true);
  s.add_double("meta.max_grad_norm", 1.0, "outer gradient-norm clip (0: off)", 0.0);
  s.add_string("meta.schedule", "pool",
               "policies the loss is meta-trained on: pool (policies keep training with the current loss, "
               "reset every pool_reset_every updates) or fresh (a new policy every step)",
               {"pool", "fresh"});
  s.add_int("meta.pool_size", 4, "policies in the pool");
  s.add_int("meta.pool_reset_every", 200, "inner updates after which a pool policy is re-initialised");
  s.add_double("meta.gamma", 0.99, "discount of reward-to-go (features and task loss)", 0.0, 1.0);
  s.add_int("meta.checkpoint_every", 100, "checkpoint (and loss.ml3) every K iterations");
  s.add_int("meta_test.updates", 200, "policy updates per method and seed (one batch each)");
  s.add_int("meta_test.seeds", 3, "policy seeds per method");
  s.add_int("meta_test.eval_every", 10, "evaluate every K updates (deterministic policy)");
  s.add_int("meta_test.eval_episodes", 100, "goals per evaluation");
  s.add_int("meta_test.eval_seed", 0, "seed of the evaluation goals", 0);
  s.add_double("meta_test.success_target", 0.8, "success rate whose first crossing is reported", 0.0, 1.0);
  s.add_string("meta_test.methods", "ml3,reinforce,ppo", "methods compared (comma-separated: ml3, reinforce, ppo)");
  s.add_double("baselines.reinforce_lr", 5e-3, "REINFORCE Adam learning rate (tune: see README sweep)", 0.0, 10.0, true);
  s.add_double("baselines.ppo_lr", 3e-4, "PPO Adam learning rate", 0.0, 10.0, true);
  s.add_double("baselines.value_lr", 1e-3, "value-baseline Adam learning rate", 0.0, 10.0, true);
  s.add_double("baselines.gae_lambda", 0.95, "PPO GAE lambda (REINFORCE uses 1)", 0.0, 1.0);
  s.add_int("baselines.epochs", 10, "PPO epochs (REINFORCE: value-fit epochs)");
  s.add_int("baselines.minibatches", 32, "minibatches per epoch");
  s.add_double("baselines.clip", 0.2, "PPO clip", 0.0, 1.0, true);
  s.add_double("baselines.max_grad_norm", 0.5, "gradient-norm clip of the baselines", 0.0);
  s.add_double("baselines.entropy_coef", 0.0, "entropy bonus of the baselines", 0.0);
  return s;
}

Config load_meta_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c = load_env_config(path, overrides, meta_schema);
  if (c.get_bool("policy.obs_norm"))
    throw Error((path.empty() ? std::string("config") : path) +
                ": key 'policy.obs_norm': meta-learning trains policies on raw observations; set it to false");
  parse_loss_features(c.get_string("loss.features"));
  return c;
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

LearnedLossSpec loss_spec(const Config& c, const EnvSpec& env) {
  LearnedLossSpec s;
  s.features = parse_loss_features(c.get_string("loss.features"));
  s.hidden = c.get_int_list("loss.hidden");
  s.activation = parse_activation(c.get_string("loss.activation"));
  s.init_scale = c.get_double("loss.init_scale");
  s.obs_dim = env.obs_dim, s.act_dim = env.act_dim, s.goal_dim = env.goal_dim;
  return s;
}

bool all_finite(const Params& p) {
  for (const auto& t : p)
    if (!torch::isfinite(t).all().item<bool>()) return false;
  return true;
}

const std::vector<std::string> kMetaColumns = {"iteration",    "wall_seconds", "seconds",       "task_loss",
                                               "inner_loss",   "pool_success_rate", "post_success_rate",
                                               "pool_return",  "post_return",  "grad_norm",     "skipped", "resets",
                                               "collect_seconds", "pool_log_std"};

struct PoolSlot {
  Params theta;
  int age = 0;
};

}  // namespace

// ---- meta-train -------------------------------------------------------------------
std::string run_meta_train(const MetaTrainArgs& args) {
  Config cfg;
  const bool resume = !args.resume_dir.empty();
  const fs::path run_dir = open_run_folder(args.config_path, args.overrides, args.out_dir, args.resume_dir,
                                           args.force, load_meta_config, &cfg);
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const std::string env_name = cfg.get_string("env.name");
  const int iterations = static_cast<int>(cfg.get_int("meta.iterations"));
  const int n_tasks = static_cast<int>(cfg.get_int("meta.tasks_per_iteration"));
  const int episodes = static_cast<int>(cfg.get_int("meta.episodes_per_task"));
  const double alpha = cfg.get_double("meta.inner_lr");
  const int K = static_cast<int>(cfg.get_int("meta.inner_steps"));
  const double outer_lr = cfg.get_double("meta.outer_lr");
  const double max_norm = cfg.get_double("meta.max_grad_norm");
  const bool fresh_schedule = cfg.get_string("meta.schedule") == "fresh";
  const int pool_size = static_cast<int>(cfg.get_int("meta.pool_size"));
  const int reset_every = static_cast<int>(cfg.get_int("meta.pool_reset_every"));
  const double gamma = cfg.get_double("meta.gamma");
  const int norm_iterations = static_cast<int>(cfg.get_int("loss.norm_iterations"));
  const int ck_every = static_cast<int>(cfg.get_int("meta.checkpoint_every"));

  VecEnv venv(env_name, cfg.subset("env."), episodes, static_cast<int>(cfg.get_int("threads")));
  const EnvSpec& spec = venv.spec();
  const PolicySetup ps = make_policy_setup(cfg, spec.obs_dim, spec.act_dim);
  LearnedLoss loss(loss_spec(cfg, spec));
  Params phi = loss.init(mix_seed(seed, 21));
  Adam adam(phi, 1e-8);
  std::vector<PoolSlot> pool(pool_size);
  uint64_t resets = 0;
  auto reset_slot = [&](PoolSlot& slot) {
    slot.theta = ps.policy.init(mix_seed(seed, 5000 + resets++));
    slot.age = 0;
  };
  for (int j = 0; j < pool_size; ++j) {
    reset_slot(pool[j]);
    // Staggered ages: the pool holds policies at different stages of learning.
    if (!fresh_schedule) pool[j].age = j * reset_every / pool_size;
  }

  int start_it = 0;
  double wall0 = 0;
  const fs::path ck_path = run_dir / "checkpoints" / "last.ckpt";
  if (resume) {
    const Archive a = Archive::load(ck_path.string(), "meta_checkpoint");
    loss = LearnedLoss::get(a, "loss/", &phi);
    adam = Adam(phi, 1e-8);
    adam.load(a, "adam/");
    for (int j = 0; j < pool_size; ++j) {
      pool[j].theta = get_params(a, "pool/" + std::to_string(j) + "/", pool[j].theta.size());
      pool[j].age = a.meta().at("ages").at(j).get<int>();
    }
    start_it = a.meta().at("iteration").get<int>();
    wall0 = a.meta().at("wall_seconds").get<double>();
    resets = a.meta().at("resets").get<uint64_t>();
    truncate_metrics(run_dir, start_it);
    std::fprintf(stderr, "resuming %s at meta-iteration %d/%d\n", run_dir.c_str(), start_it, iterations);
  }

  auto save_all = [&](int it, double wall) {
    Archive a("meta_checkpoint");
    std::vector<int> ages;
    for (const auto& s : pool) ages.push_back(s.age);
    a.meta() = {{"format", 1},       {"iteration", it}, {"wall_seconds", wall},
                {"resets", resets},  {"ages", ages},    {"config", cfg.to_yaml()}, {"env", env_name}};
    loss.put(a, "loss/", phi);
    adam.save(a, "adam/");
    for (int j = 0; j < pool_size; ++j) put_params(a, "pool/" + std::to_string(j) + "/", pool[j].theta);
    a.save(ck_path.string());
    loss.save((run_dir / "loss.ml3").string(), phi,
              {{"env", env_name}, {"meta_iteration", it}, {"seed", seed}, {"run", run_dir.string()}});
  };

  MetricsWriter metrics(run_dir, kMetaColumns, resume);
  Progress progress("meta-train " + env_name, iterations, args.quiet);
  const auto t0 = Clock::now();
  const int stop_at = args.stop_after > 0 ? std::min(args.stop_after, iterations) : iterations;
  const ObsNormalizer raw(spec.obs_dim, false);
  std::vector<double> step_seconds;
  int total_skipped = 0;
  for (int it = start_it + 1; it <= stop_at; ++it) {
    const auto it_start = Clock::now();
    Params acc;
    int ok = 0, skipped = 0;
    double task_l = 0, inner_l = 0, pool_s = 0, post_s = 0, pool_r = 0, post_r = 0, collect_s = 0, log_std_sum = 0;
    for (int k = 0; k < n_tasks; ++k) {
      PoolSlot& slot = pool[(static_cast<size_t>(it - 1) * n_tasks + k) % pool_size];
      const uint64_t tseed = mix_seed(seed, static_cast<uint64_t>(it) * 1000 + k);
      const auto tasks = sample_tasks(venv.env(0), Split::Train, tseed, episodes);
      Params theta = clone_params(slot.theta, true);
      auto tc = Clock::now();
      Batch b1 = collect(venv, ps.policy, theta, raw, tasks, mix_seed(tseed, 1), false);
      collect_s += since(tc);
      compute_rtg(b1, gamma);
      const Minibatch mb1 = flatten_batch(b1);
      if (it <= norm_iterations) {
        torch::NoGradGuard ng;
        loss.update_stats(loss_inputs(mb1, policy_eval(ps.policy, theta, mb1)));
      }
      double il = 0;
      Params theta_k = inner_step(loss, phi, ps.policy, theta, mb1, alpha, true, &il);
      for (int step = 2; step <= K; ++step) {
        Batch bk = collect(venv, ps.policy, theta_k, raw, tasks, mix_seed(tseed, step + 10), false);
        compute_rtg(bk, gamma);
        theta_k = inner_step(loss, phi, ps.policy, theta_k, flatten_batch(bk), alpha, true);
      }
      tc = Clock::now();
      Batch b2 = collect(venv, ps.policy, theta_k, raw, tasks, mix_seed(tseed, 2), false);
      collect_s += since(tc);
      compute_rtg(b2, gamma);
      const Tensor lt = task_loss(ps.policy, theta_k, b2);
      std::vector<Tensor> g;
      bool finite = std::isfinite(lt.item<double>());
      if (finite) {
        g = torch::autograd::grad({lt}, phi);
        finite = all_finite(g) && all_finite(theta_k);
      }
      if (!finite) {
        // Skip this task's gradient and restart the policy that produced it.
        ++skipped;
        reset_slot(slot);
        continue;
      }
      if (acc.empty()) acc = g;
      else for (size_t i = 0; i < g.size(); ++i) acc[i] = acc[i] + g[i];
      ++ok;
      task_l += lt.item<double>(), inner_l += il;
      pool_s += b1.success_rate, post_s += b2.success_rate, pool_r += b1.return_mean, post_r += b2.return_mean;
      log_std_sum += ps.policy.log_std(theta_k).mean().item<double>();
      slot.theta = clone_params(theta_k, true);
      if (fresh_schedule || ++slot.age >= reset_every) reset_slot(slot);
    }
    double gn = NAN;
    if (ok > 0) {
      for (auto& t : acc) t = t / static_cast<double>(ok);
      gn = clip_grad_norm(acc, max_norm);
      if (std::isfinite(gn)) adam.step(phi, acc, outer_lr);
      else ++skipped;
    }
    total_skipped += skipped;
    const double secs = since(it_start);
    step_seconds.push_back(secs);
    const double n = std::max(ok, 1);
    nlohmann::json row = {{"iteration", it},           {"wall_seconds", wall0 + since(t0)}, {"seconds", secs},
                          {"task_loss", task_l / n},   {"inner_loss", inner_l / n},  {"pool_success_rate", pool_s / n},
                          {"post_success_rate", post_s / n}, {"pool_return", pool_r / n}, {"post_return", post_r / n},
                          {"grad_norm", gn},           {"skipped", skipped},         {"resets", resets},
                          {"collect_seconds", collect_s},
                          {"pool_log_std", log_std_sum / n}};
    metrics.append(row);
    if (it % ck_every == 0 || it == stop_at) save_all(it, wall0 + since(t0));
    char line[160];
    std::snprintf(line, sizeof(line), "task loss %.4f | pool success %.0f%% -> %.0f%% | %.2fs/it%s", task_l / n,
                  100 * pool_s / n, 100 * post_s / n, secs, skipped ? " | skipped non-finite" : "");
    progress.update(it, line);
  }
  progress.finish();
  if (stop_at < iterations) {
    std::fprintf(stderr, "stopped after meta-iteration %d of %d; continue with: ml3 meta-train --resume %s\n", stop_at,
                 iterations, run_dir.c_str());
    return "";
  }
  std::vector<double> sorted = step_seconds;
  std::sort(sorted.begin(), sorted.end());
  nlohmann::json summary = {{"env", env_name},
                            {"seed", seed},
                            {"iterations", iterations},
                            {"schedule", cfg.get_string("meta.schedule")},
                            {"tasks_per_iteration", n_tasks},
                            {"episodes_per_task", episodes},
                            {"wall_seconds", wall0 + since(t0)},
                            {"meta_iteration_seconds_median", sorted.empty() ? NAN : sorted[sorted.size() / 2]},
                            {"skipped_non_finite", total_skipped},
                            {"loss_file", (run_dir / "loss.ml3").string()}};
  const std::string err = make_plot("meta", (run_dir / "metrics.csv").string(), (run_dir / "meta_curve.png").string(),
                                    "ML3 meta-training on " + env_name + " (seed " + std::to_string(seed) + ")");
  if (!err.empty()) std::fprintf(stderr, "warning: meta-training curve not plotted: %s\n", err.c_str());
  const std::string text = summary.dump(2);
  write_file_atomic((run_dir / "summary.json").string(), text + "\n");
  return text;
}

// ---- meta-test --------------------------------------------------------------------
namespace {

struct CurvePoint {
  int update;
  double success, distance, ret;
};

LearnerConfig baseline_config(const Config& c, const std::string& method) {
  LearnerConfig l;
  l.algorithm = method;
  l.lr = c.get_double(method == "ppo" ? "baselines.ppo_lr" : "baselines.reinforce_lr");
  l.value_lr = c.get_double("baselines.value_lr");
  l.gamma = c.get_double("meta.gamma");
  l.gae_lambda = method == "ppo" ? c.get_double("baselines.gae_lambda") : 1.0;
  l.epochs = static_cast<int>(c.get_int("baselines.epochs"));
  l.minibatches = static_cast<int>(c.get_int("baselines.minibatches"));
  l.clip = c.get_double("baselines.clip");
  l.max_grad_norm = c.get_double("baselines.max_grad_norm");
  l.entropy_coef = c.get_double("baselines.entropy_coef");
  return l;
}

}  // namespace

std::string run_meta_test(const MetaTestArgs& args) {
  if (args.loss_file.empty()) throw UsageError("meta-test needs --loss FILE");
  const Config cfg = load_meta_config(args.config_path, args.overrides);
  Params phi;
  nlohmann::json loss_meta;
  const LearnedLoss loss = LearnedLoss::load(args.loss_file, &phi, &loss_meta);
  const Split split = parse_split(args.split);
  const fs::path out = args.out_dir.empty()
                           ? fs::path("runs") / (fs::path(args.config_path).stem().string() + "_meta_test_" + args.split)
                           : fs::path(args.out_dir);
  prepare_run_dir(out, args.force);
  write_file_atomic((out / "config.yaml").string(), cfg.to_yaml());
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));

  const std::string env_name = cfg.get_string("env.name");
  const int threads = static_cast<int>(cfg.get_int("threads"));
  const int episodes = static_cast<int>(cfg.get_int("meta.episodes_per_task"));
  const int updates = static_cast<int>(cfg.get_int("meta_test.updates"));
  const int n_seeds = static_cast<int>(cfg.get_int("meta_test.seeds"));
  const int eval_every = static_cast<int>(cfg.get_int("meta_test.eval_every"));
  const int eval_episodes = static_cast<int>(cfg.get_int("meta_test.eval_episodes"));
  const uint64_t eval_seed = static_cast<uint64_t>(cfg.get_int("meta_test.eval_seed"));
  const double target = cfg.get_double("meta_test.success_target");
  const double gamma = cfg.get_double("meta.gamma");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  std::vector<std::string> methods;
  {
    std::stringstream ss(cfg.get_string("meta_test.methods"));
    std::string m;
    while (std::getline(ss, m, ','))
      if (m == "ml3" || m == "reinforce" || m == "ppo") methods.push_back(m);
      else throw Error("config: key 'meta_test.methods': unknown method '" + m + "' (expected ml3, reinforce, ppo)");
  }

  VecEnv venv(env_name, cfg.subset("env."), episodes, threads);
  VecEnv eval_env(env_name, cfg.subset("env."), eval_episodes, threads);
  const EnvSpec& spec = venv.spec();
  loss.check_dims(spec.obs_dim, spec.act_dim, spec.goal_dim, args.loss_file);
  const PolicySetup ps = make_policy_setup(cfg, spec.obs_dim, spec.act_dim);
  const ObsNormalizer raw(spec.obs_dim, false);

  Progress progress("meta-test " + env_name + " (" + args.split + ")",
                    static_cast<int>(methods.size()) * n_seeds * updates, args.quiet);
  int done = 0;
  std::map<std::string, std::vector<std::vector<CurvePoint>>> curves;
  for (const auto& method : methods) {
    for (int s = 0; s < n_seeds; ++s) {
      const uint64_t ps_seed = mix_seed(seed, 7000 + s);
      Params theta = ps.policy.init(mix_seed(ps_seed, 11));
      Params vparams = ps.value_net.init(mix_seed(ps_seed, 12));
      const LearnerConfig lcfg = method == "ml3" ? LearnerConfig{} : baseline_config(cfg, method);
      std::unique_ptr<PolicyGradientLearner> learner;
      if (method == "ml3") {
        LearnerConfig lc;
        lc.lr = cfg.get_double("meta.inner_lr");
        lc.gamma = gamma;
        learner = std::make_unique<PolicyGradientLearner>(lc, ps.policy, ps.value_net,
                                                          std::make_unique<LearnedLossObjective>(loss, phi));
      } else {
        learner = std::make_unique<PolicyGradientLearner>(lcfg, ps.policy, ps.value_net);
      }
      learner->init_optimizers(theta, vparams);
      std::vector<CurvePoint> curve;
      auto eval_now = [&](int u) {
        const EvalResult r = evaluate(eval_env, ps.policy, theta, raw, split, eval_episodes, eval_seed);
        curve.push_back({u, r.success_rate, r.final_distance_mean, r.return_mean});
      };
      eval_now(0);
      bool diverged = false;
      for (int u = 1; u <= updates; ++u) {
        if (!diverged) {
          const auto tasks = sample_tasks(venv.env(0), split, mix_seed(ps_seed, 100000 + u), episodes);
          Batch b = collect(venv, ps.policy, theta, raw, tasks, mix_seed(ps_seed, 200000 + u), false);
          compute_rtg(b, gamma);
          if (method != "ml3") {
            compute_values(b, ps.value_net, vparams);
            compute_gae(b, gamma, lcfg.gae_lambda);
          }
          try {
            learner->update(b, theta, vparams, 1.0, mix_seed(ps_seed, 300000 + u));
            if (!all_finite(theta)) throw NonFiniteError("non-finite policy parameters");
          } catch (const NonFiniteError& e) {
            std::fprintf(stderr, "\nwarning: %s seed %d diverged at update %d (%s); counted as failing from here\n",
                         method.c_str(), s, u, e.what());
            diverged = true;
          }
        }
        if (u % eval_every == 0 || u == updates) {
          if (diverged) curve.push_back({u, 0.0, curve.back().distance, curve.back().ret});
          else eval_now(u);
        }
        char line[128];
        std::snprintf(line, sizeof(line), "%s seed %d | success %.0f%%", method.c_str(), s, 100 * curve.back().success);
        progress.update(++done, line);
      }
      curves[method].push_back(curve);
    }
  }
  progress.finish();

  // Aggregate.
  auto first_reach = [](const std::vector<CurvePoint>& c, double level) -> int {
    for (const auto& p : c)
      if (p.success >= level - 1e-12) return p.update;
    return -1;
  };
  nlohmann::json results = {{"env", env_name},
                            {"split", args.split},
                            {"loss_file", args.loss_file},
                            {"loss_meta_trained_on", loss_meta.value("env", "?")},
                            {"updates", updates},
                            {"episodes_per_update", episodes},
                            {"seeds", n_seeds},
                            {"success_target", target},
                            {"policy_hidden", cfg.get_int_list("policy.hidden")},
                            {"methods", nlohmann::json::array()}};
  nlohmann::json curves_json = {{"x_label", "policy updates"}, {"panels", nlohmann::json::array()}};
  nlohmann::json panel_s = {{"y_label", "success rate (" + args.split + " goals)"}, {"methods", nlohmann::json::object()}};
  nlohmann::json panel_d = {{"y_label", "final distance (" + args.split + " goals)"}, {"methods", nlohmann::json::object()}};
  for (const auto& method : methods) {
    const auto& cs = curves[method];
    double fs_mean = 0, fd_mean = 0, reach_sum = 0;
    int reached = 0;
    nlohmann::json per_seed = nlohmann::json::array();
    std::vector<std::vector<double>> ys, yd;
    for (const auto& c : cs) {
      fs_mean += c.back().success / cs.size();
      fd_mean += c.back().distance / cs.size();
      const int r = first_reach(c, target);
      if (r >= 0) reach_sum += r, ++reached;
      per_seed.push_back({{"final_success_rate", c.back().success},
                          {"final_distance_mean", c.back().distance},
                          {"updates_to_threshold", r >= 0 ? nlohmann::json(r) : nlohmann::json()}});
      std::vector<double> a, b;
      for (const auto& p : c) a.push_back(p.success), b.push_back(p.distance);
      ys.push_back(a), yd.push_back(b);
    }
    panel_s["methods"][method] = ys;
    panel_d["methods"][method] = yd;
    results["methods"].push_back({{"name", method},
                                  {"final_success_rate", fs_mean},
                                  {"final_distance_mean", fd_mean},
                                  {"updates_to_threshold", reached == n_seeds ? nlohmann::json(reach_sum / reached)
                                                                              : nlohmann::json()},
                                  {"seeds_reaching_threshold", reached},
                                  {"per_seed", per_seed}});
  }
  std::vector<int> xs;
  for (const auto& p : curves[methods.front()].front()) xs.push_back(p.update);
  panel_s["x"] = xs, panel_d["x"] = xs;
  curves_json["panels"].push_back(panel_s);
  curves_json["panels"].push_back(panel_d);
  // Headline: updates ML3 needs to reach REINFORCE's final success rate.
  if (curves.count("ml3") && curves.count("reinforce")) {
    double rf = 0;
    for (const auto& c : curves["reinforce"]) rf += c.back().success / curves["reinforce"].size();
    double sum = 0;
    int reached = 0;
    for (const auto& c : curves["ml3"]) {
      const int r = first_reach(c, rf);
      if (r >= 0) sum += r, ++reached;
    }
    results["headline"] = {{"reinforce_final_success_rate", rf},
                           {"reinforce_updates", updates},
                           {"ml3_seeds_reaching_it", reached},
                           {"ml3_updates_to_reach_it", reached ? nlohmann::json(sum / reached) : nlohmann::json()},
                           {"ratio", reached == n_seeds ? nlohmann::json(sum / reached / updates) : nlohmann::json()}};
  }
  write_file_atomic((out / "curves.json").string(), curves_json.dump() + "\n");
  const std::string err = make_plot("compare", (out / "curves.json").string(), (out / "curves.png").string(),
                                    "meta-test on " + env_name + " (" + args.split + " split): learned loss vs REINFORCE vs PPO");
  if (!err.empty()) std::fprintf(stderr, "warning: curves not plotted: %s\n", err.c_str());
  results["plot"] = err.empty() ? (out / "curves.png").string() : "";
  const std::string text = results.dump(2);
  write_file_atomic((out / "results.json").string(), text + "\n");
  return text;
}

std::string meta_test_table(const std::string& results_json) {
  const auto j = nlohmann::json::parse(results_json);
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof(line), "meta-test on %s, %s split: %d updates x %d episodes, %d seeds, success target %.0f%%\n",
                j["env"].get<std::string>().c_str(), j["split"].get<std::string>().c_str(), j["updates"].get<int>(),
                j["episodes_per_update"].get<int>(), j["seeds"].get<int>(), 100 * j["success_target"].get<double>());
  os << line;
  std::snprintf(line, sizeof(line), "%-10s %14s %15s %22s\n", "method", "final success", "final distance",
                "updates to target");
  os << line;
  for (const auto& m : j["methods"]) {
    std::string reach = m["updates_to_threshold"].is_null()
                            ? "not reached (" + std::to_string(m["seeds_reaching_threshold"].get<int>()) + "/" +
                                  std::to_string(j["seeds"].get<int>()) + " seeds)"
                            : std::to_string(static_cast<int>(std::lround(m["updates_to_threshold"].get<double>())));
    std::snprintf(line, sizeof(line), "%-10s %13.1f%% %15.4f %22s\n", m["name"].get<std::string>().c_str(),
                  100 * m["final_success_rate"].get<double>(), m["final_distance_mean"].get<double>(), reach.c_str());
    os << line;
  }
  if (j.contains("headline")) {
    const auto& h = j["headline"];
    std::snprintf(line, sizeof(line), "REINFORCE's final success %.1f%% after %d updates; ML3 reaches it after %s updates (%d/%d seeds)\n",
                  100 * h["reinforce_final_success_rate"].get<double>(), h["reinforce_updates"].get<int>(),
                  h["ml3_updates_to_reach_it"].is_null() ? "-" : std::to_string(static_cast<int>(std::lround(h["ml3_updates_to_reach_it"].get<double>()))).c_str(),
                  h["ml3_seeds_reaching_it"].get<int>(), j["seeds"].get<int>());
    os << line;
  }
  return os.str();
}

}  // namespace ml3
