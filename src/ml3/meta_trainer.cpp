// ML3 for policies: meta-training a learned loss that replaces the
// policy-gradient objective, over a pool of policies at different stages of
// learning (the `ml3` algorithm of `ml3 meta-train`). The core pieces --
// features, the differentiable inner step and the REINFORCE task loss -- are
// declared in src/ml3/inner_loop.h; shaping in src/ml3/shaping.h.
#include "src/ml3/meta_trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"
#include "src/compare/meta_test.h"
#include "src/compare/sections.h"
#include "src/run/run.h"

namespace ml3 {
namespace ml3meta {

namespace fs = std::filesystem;

namespace {
// LibTorch's intra-op threads before any tensor work of the trainer.
dist::Comm& with_threads(const Config& c, dist::Comm& comm) {
  set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
  return comm;
}
}  // namespace

std::vector<double> IterationSums::flat() const {
  std::vector<double> v{ok,          skipped,     task_loss,       inner_loss, pool_success,   post_success,
                        pool_return, post_return, collect_seconds, log_std,    imitation_error};
  v.insert(v.end(), task_status.begin(), task_status.end());
  return v;
}

void IterationSums::assign(const std::vector<double>& v) {
  ok = v.at(0), skipped = v.at(1), task_loss = v.at(2), inner_loss = v.at(3), pool_success = v.at(4);
  post_success = v.at(5), pool_return = v.at(6), post_return = v.at(7), collect_seconds = v.at(8);
  log_std = v.at(9), imitation_error = v.at(10);
  task_status.assign(v.begin() + 11, v.end());
}

Ml3MetaTrainer::Ml3MetaTrainer(const Config& c, const std::string& run_dir, dist::Comm& comm)
    : comm_(with_threads(c, comm)),
      cfg_(c),
      meta_(read<MetaSection>(c, "meta.")),
      lsec_(read<LossSection>(c, "loss.")),
      seed_(static_cast<uint64_t>(c.get_int("seed"))),
      env_name_(c.get_string("env.name")),
      run_dir_(run_dir),
      venv_(env_name_, c.subset("env."), meta_.episodes_per_task, static_cast<int>(c.get_int("threads"))),
      raw_(venv_.spec().obs_dim, false),
      models_(make_policy_models(c, venv_.spec())),
      loss_(loss_spec(lsec_, venv_.spec())),
      phi_(loss_.init(mix_seed(seed_, 21))),
      adam_(phi_, 1e-8),
      shaping_(read<ShapingSection>(c, "shaping."), lsec_, loss_, venv_.spec(), seed_),
      fresh_(meta_.schedule == "fresh") {
  shaping_.init_target(loss_, phi_);
  inner_ = InnerOptimizer::named(meta_.inner_optimizer, meta_.inner_lr, meta_.steps_per_batch);
  if (comm_.distributed() && meta_.pool_size < meta_.tasks_per_iteration)
    throw Error(fmt::format("config: key 'meta.pool_size' ({}) must be at least meta.tasks_per_iteration ({}) in a "
                            "distributed run (the tasks of an outer step then train distinct pool policies)",
                            meta_.pool_size, meta_.tasks_per_iteration));
  pool_.resize(meta_.pool_size);
  for (int j = 0; j < meta_.pool_size; ++j) {
    reset_slot(pool_[j]);
    // Staggered ages: the pool holds policies at different stages of learning.
    if (!fresh_) pool_[j].age = j * meta_.pool_reset_every / meta_.pool_size;
  }
}

std::vector<std::string> Ml3MetaTrainer::columns() const {
  return {"iteration",   "wall_seconds", "seconds",   "task_loss", "inner_loss",      "pool_success_rate",
          "post_success_rate", "pool_return", "post_return", "grad_norm", "skipped", "resets",
          "collect_seconds", "pool_log_std", "imitation_error", "shaping_weight", "target_fit_error",
          "comm_seconds", "wait_seconds"};
}

nlohmann::json Ml3MetaTrainer::iterate(int it) {
  const auto it_start = Clock::now();
  dist::Comm& comm = comm_;
  comm.set_step(it);
  comm.take_comm_seconds(), comm.take_wait_seconds();
  const int n_tasks = meta_.tasks_per_iteration;
  IterationSums s(n_tasks);
  Params acc;
  const double weight = shaping_.weight(it);
  const bool norm = it <= lsec_.norm_iterations;
  if (!comm.distributed()) {
    for (int k = 0; k < n_tasks; ++k) {
      TaskRun t = begin_task(it, k, &s);
      if (shaping_.expert_labels()) shaping_.remember(t.mb1);
      if (norm) loss_.update_stats_rows(t.stat_rows);
      run_task(t, loss_, weight, &acc, &s);
      finish_task(pool_[t.slot], t.ok, t.theta_k, t.state);
    }
  } else {
    // Tasks k with k % world == rank; then the state every task touches is
    // made the same on every rank, in task order (docs/distributed.md).
    std::vector<TaskRun> mine;
    for (int k = comm.rank(); k < n_tasks; k += comm.world()) mine.push_back(begin_task(it, k, &s));
    comm.sync("first batches");
    if (shaping_.expert_labels()) share_rows(mine, false);
    const std::vector<LearnedLoss> snaps = norm ? share_rows(mine, true) : std::vector<LearnedLoss>();
    for (size_t i = 0; i < mine.size(); ++i) run_task(mine[i], norm ? snaps[i] : loss_, weight, &acc, &s);
    comm.sync("meta-gradients");
    share_results(it, mine, &acc, &s);
  }
  const int ok = static_cast<int>(s.ok);
  int skipped = static_cast<int>(s.skipped);
  double gn = NAN;
  if (ok > 0) {
    for (auto& t : acc) t = t / static_cast<double>(ok);
    // Fitted, not meta-trained: T's part of the meta-gradient is dropped
    // (Adam's moments of it stay zero, so T moves only by target fitting).
    if (!shaping_.target_meta_gradient())
      for (auto& t : loss_.target_params(acc)) t.zero_();
    gn = clip_grad_norm(acc, meta_.max_grad_norm);
    if (std::isfinite(gn)) adam_.step(phi_, acc, meta_.outer_lr);
    else ++skipped;
  }
  total_skipped_ += skipped;
  const double fit_err = shaping_.fit_target(it, loss_, phi_);
  const double secs = since(it_start);
  step_seconds_.push_back(secs);
  meta_seconds_ += secs;
  const double n = std::max(ok, 1);
  return {{"iteration", it},         {"seconds", secs},
          {"task_loss", s.task_loss / n}, {"inner_loss", s.inner_loss / n},
          {"pool_success_rate", s.pool_success / n}, {"post_success_rate", s.post_success / n},
          {"pool_return", s.pool_return / n}, {"post_return", s.post_return / n},
          {"grad_norm", gn},         {"skipped", skipped},
          {"resets", resets_},       {"collect_seconds", s.collect_seconds},
          {"pool_log_std", s.log_std / n},
          {"imitation_error", shaping_.shaped() ? nlohmann::json(s.imitation_error / n_tasks) : nlohmann::json()},
          {"shaping_weight", shaping_.shaped() ? nlohmann::json(weight) : nlohmann::json()},
          {"target_fit_error", std::isfinite(fit_err) ? nlohmann::json(fit_err) : nlohmann::json()},
          {"comm_seconds", comm.take_comm_seconds()},
          {"wait_seconds", comm.take_wait_seconds()}};
}

std::string Ml3MetaTrainer::progress_text(const nlohmann::json& r) const {
  return fmt::format("task loss {:.4f} | pool success {:.0f}% -> {:.0f}%{} | {:.2f}s/it{}",
                     r["task_loss"].get<double>(), 100 * r["pool_success_rate"].get<double>(),
                     100 * r["post_success_rate"].get<double>(),
                     r["imitation_error"].is_null() ? ""
                                                    : fmt::format(" | imitation {:.3f}", r["imitation_error"].get<double>()),
                     r["seconds"].get<double>(), r["skipped"].get<int>() ? " | skipped non-finite" : "");
}

void Ml3MetaTrainer::save(Archive& a) const {
  std::vector<int> ages;
  for (const auto& s : pool_) ages.push_back(s.age);
  a.meta()["resets"] = resets_;
  a.meta()["ages"] = ages;
  a.meta()["skipped"] = total_skipped_;
  a.meta()["meta_training_seconds"] = meta_seconds_;
  loss_.put(a, "loss/", phi_);
  adam_.save(a, "adam/");
  shaping_.save(a, loss_);
  for (size_t j = 0; j < pool_.size(); ++j) {
    const std::string p = "pool/" + std::to_string(j) + "/";
    put_params(a, p, pool_[j].theta);
    pool_[j].opt_state.save(a, p);
  }
}

void Ml3MetaTrainer::load(const Archive& a) {
  loss_ = LearnedLoss::get(a, "loss/", &phi_);
  adam_ = Adam(phi_, 1e-8);
  adam_.load(a, "adam/");
  shaping_.load(a, loss_, phi_);
  for (size_t j = 0; j < pool_.size(); ++j) {
    const std::string p = "pool/" + std::to_string(j) + "/";
    pool_[j].theta = get_params(a, p, pool_[j].theta.size());
    pool_[j].age = a.meta().at("ages").at(j).get<int>();
    pool_[j].opt_state.load(a, p, pool_[j].theta.size());
  }
  resets_ = a.meta().at("resets").get<uint64_t>();
  total_skipped_ = a.meta().at("skipped").get<int>();
  meta_seconds_ = a.meta().value("meta_training_seconds", 0.0);
}

void Ml3MetaTrainer::write_artifacts(const std::string& run_dir, int it) const {
  loss_.save((fs::path(run_dir) / "loss.ml3").string(), phi_,
             {{"env", env_name_},
              {"meta_iteration", it},
              {"seed", seed_},
              {"run", run_dir},
              {"shaped", shaping_.shaped()},
              {"shaping", shaping_.kind()},
              {"target_meta_gradient", shaping_.target_meta_gradient()},
              {"inner_optimizer", meta_.inner_optimizer},
              {"steps_per_batch", meta_.steps_per_batch},
              // The cost of meta-training so far (every rank's tasks): the
              // meta-iterations' wall time, and the environment steps of
              // their rollouts (before, between and after the inner steps).
              {"meta_training_seconds", meta_seconds_},
              {"meta_training_env_steps", static_cast<int64_t>(it) * meta_.tasks_per_iteration *
                                              meta_.episodes_per_task * venv_.spec().episode_steps *
                                              (meta_.inner_steps + 1)}});
}

nlohmann::json Ml3MetaTrainer::summary(double) {
  return {{"env", env_name_},
          {"algorithm", "ml3"},
          {"seed", seed_},
          {"schedule", meta_.schedule},
          {"tasks_per_iteration", meta_.tasks_per_iteration},
          {"episodes_per_task", meta_.episodes_per_task},
          {"meta_iteration_seconds_median", median(step_seconds_)},
          {"skipped_non_finite", total_skipped_},
          {"loss_file", (fs::path(run_dir_) / "loss.ml3").string()}};
}

Algorithm::Plot Ml3MetaTrainer::plot() const {
  return {"meta", "meta_curve.png", fmt::format("ML3 meta-training on {} (seed {})", env_name_, seed_)};
}

Ml3MetaTrainer::TaskRun Ml3MetaTrainer::begin_task(int it, int k, IterationSums* s) {
  TaskRun t;
  t.k = k;
  t.slot = slot_of(it, k);
  t.tseed = mix_seed(seed_, static_cast<uint64_t>(it) * 1000 + k);
  t.tasks = sample_tasks(venv_.env(0), Split::Train, t.tseed, meta_.episodes_per_task);
  t.theta = clone_params(pool_[t.slot].theta, true);
  const auto tc = Clock::now();
  t.b1 = collect(venv_, models_.policy, t.theta, raw_, t.tasks, mix_seed(t.tseed, 1), false, shaping_.expert_labels());
  s->collect_seconds += since(tc);
  compute_rtg(t.b1, meta_.gamma);
  compute_reinforce_advantages(t.b1);  // for an anchored loss
  t.mb1 = flatten_batch(t.b1);
  if (it <= lsec_.norm_iterations) {
    torch::NoGradGuard ng;
    t.stat_rows = loss_.stat_rows(loss_inputs(t.mb1, policy_eval(models_.policy, t.theta, t.mb1)));
  }
  return t;
}

void Ml3MetaTrainer::run_task(TaskRun& t, const LearnedLoss& loss, double weight, Params* acc, IterationSums* s) {
  const GaussianPolicy& policy = models_.policy;
  double il = 0;
  t.state = pool_[t.slot].opt_state.detached();
  Params theta_k = inner_update(loss, phi_, policy, t.theta, t.mb1, inner_, &t.state, true, &il);
  for (int step = 2; step <= meta_.inner_steps; ++step) {
    Batch bk = collect(venv_, policy, theta_k, raw_, t.tasks, mix_seed(t.tseed, step + 10), false);
    compute_rtg(bk, meta_.gamma);
    compute_reinforce_advantages(bk);
    theta_k = inner_update(loss, phi_, policy, theta_k, flatten_batch(bk), inner_, &t.state, true);
  }
  const auto tc = Clock::now();
  Batch b2 = collect(venv_, policy, theta_k, raw_, t.tasks, mix_seed(t.tseed, 2), false, shaping_.expert_labels());
  s->collect_seconds += since(tc);
  compute_rtg(b2, meta_.gamma);
  Tensor lt = task_loss(policy, theta_k, b2);
  if (shaping_.shaped()) {
    lt = shaping_.rl_weight() * lt;
    // Shaping: the updated policy's squared action error (src/ml3/shaping.h).
    // It depends on phi through theta_k (the inner steps), so its gradient
    // reaches the loss exactly as the task loss's does.
    const Tensor err = shaping_.imitation_error(policy, loss_, phi_, theta_k, flatten_batch(b2), mix_seed(t.tseed, 3));
    s->imitation_error += err.item<double>();
    if (weight > 0) lt = lt + weight * err;
  }
  std::vector<Tensor> g;
  bool finite = std::isfinite(lt.item<double>());
  if (finite) {
    g = torch::autograd::grad({lt}, phi_);
    finite = all_finite(g) && all_finite(theta_k);
  }
  t.ok = finite;
  s->task_status[t.k] = finite ? 1 : 2;
  if (!finite) {  // skip this task's gradient; finish_task restarts its policy
    s->skipped += 1;
    return;
  }
  if (acc->empty()) *acc = g;
  else for (size_t i = 0; i < g.size(); ++i) (*acc)[i] = (*acc)[i] + g[i];
  s->ok += 1, s->task_loss += lt.item<double>(), s->inner_loss += il;
  s->pool_success += t.b1.success_rate, s->post_success += b2.success_rate, s->pool_return += t.b1.return_mean, s->post_return += b2.return_mean;
  s->log_std += policy.log_std(theta_k).mean().item<double>();
  t.theta_k = theta_k;
}

void Ml3MetaTrainer::finish_task(PoolSlot& slot, bool ok, const Params& theta_k, const InnerState& state) {
  if (!ok) return reset_slot(slot);
  slot.theta = clone_params(theta_k, true);
  slot.opt_state = state.detached();
  if (fresh_ || ++slot.age >= meta_.pool_reset_every) reset_slot(slot);
}

void Ml3MetaTrainer::reset_slot(PoolSlot& slot) {
  slot.theta = models_.policy.init(mix_seed(seed_, 5000 + resets_++));
  slot.opt_state = InnerState();
  slot.age = 0;
}

}  // namespace ml3meta

namespace {
using ml3meta::Ml3MetaTrainer;

void declare_ml3(Schema& s, const std::string&) {
  declare<PolicySection>(s, "policy.", PolicySection{{64, 64}, "tanh", -0.5, -5.0, 1.0, false});
  declare<ValueSection>(s, "value.");
  declare<LossSection>(s, "loss.");
  declare<MetaSection>(s, "meta.");
  declare<ShapingSection>(s, "shaping.");
  declare<MetaTestSection>(s, "meta_test.");
  declare_baselines(s);
}

void check_ml3(const Config& c, const std::string& source) {
  if (c.get_bool("policy.obs_norm"))
    throw Error(source + ": key 'policy.obs_norm': meta-learning trains policies on raw observations; set it to false");
  parse_loss_features(c.get_string("loss.features"));
}

}  // namespace

AlgorithmEntry ml3_algorithm() {
  AlgorithmEntry e;
  e.name = "ml3";
  e.command = Command::MetaTrain;
  e.description = "ML3: a learned loss that replaces the policy-gradient objective (Bechtle et al. 2021)";
  e.declare = declare_ml3;
  e.check = check_ml3;
  e.define_problem().make = [](const Config& c, const std::string& run_dir, dist::Comm& comm) -> std::unique_ptr<Algorithm> {
    return std::make_unique<Ml3MetaTrainer>(c, run_dir, comm);
  };
  e.define_problem().meta_test = [](const std::string& loss_file, const Config& c, const std::string& split, const std::string& out,
                   bool force, bool quiet) {
    return run_policy_meta_test(loss_file, c, split, read<MetaSection>(c, "meta.").episodes_per_task, out, force, quiet);
  };
  e.define_problem().meta_test_spreads_over_ranks = true;
  e.define_problem().meta_test_table = policy_meta_test_table;
  return e;
}

}  // namespace ml3
