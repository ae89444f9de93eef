#pragma once
// The ML3 meta-trainer of policies (the `ml3` algorithm of `ml3 meta-train`):
// a learned loss that replaces the policy-gradient objective, meta-trained
// over a pool of policies at different stages of learning. Included by
// src/ml3_meta.cpp (the trainer and its registry entry) and src/ml3_dist.cpp
// (how the tasks of an outer step are spread over the ranks of a distributed
// run) only.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "envs/demos.h"
#include "src/dist.h"
#include "src/meta_test.h"
#include "src/ml3_core.h"
#include "src/policy_trainer.h"
#include "src/run.h"

namespace ml3::ml3meta {

namespace fs = std::filesystem;

inline LearnedLossSpec loss_spec(const LossSection& l, const EnvSpec& env) {
  LearnedLossSpec s;
  s.features = parse_loss_features(l.features);
  s.hidden = l.hidden;
  s.activation = parse_activation(l.activation);
  s.init_scale = l.init_scale;
  if (l.target) s.target_hidden = l.target_hidden, s.target_weight = l.target_weight;
  s.anchor_weight = l.anchor_weight;
  s.anchor_clip = l.anchor_clip;
  s.obs_dim = env.obs_dim, s.act_dim = env.act_dim, s.goal_dim = env.goal_dim;
  return s;
}

struct PoolSlot {
  Params theta;
  InnerState opt_state;  // the inner optimiser's state (Adam), kept across updates
  int age = 0;
};

class Ml3MetaTrainer : public Algorithm {
 public:
  Ml3MetaTrainer(const Config& c, const std::string& run_dir)
      : cfg_(c),
        meta_(read<MetaSection>(c, "meta.")),
        lsec_(read<LossSection>(c, "loss.")),
        shaping_(read<ShapingSection>(c, "shaping.")),
        seed_(static_cast<uint64_t>(c.get_int("seed"))),
        env_name_(c.get_string("env.name")),
        run_dir_(run_dir),
        venv_(env_name_, c.subset("env."), meta_.episodes_per_task, static_cast<int>(c.get_int("threads"))),
        raw_(venv_.spec().obs_dim, false) {
    set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
    models_ = make_policy_models(c, venv_.spec());
    loss_ = LearnedLoss(loss_spec(lsec_, venv_.spec()));
    phi_ = loss_.init(mix_seed(seed_, 21));
    adam_ = Adam(phi_, 1e-8);
    fresh_ = meta_.schedule == "fresh";
    if (!shaping_.demos.empty()) load_demonstrations();
    labels_ = shaping_.expert_labels;
    if (shaping_.target_labels && (labels_ || !demo_obs_.defined() || !loss_.has_target() ||
                                   (shaping_.target_fit_steps == 0 && lsec_.target_prefit_steps == 0)))
      throw Error("config: key 'shaping.target_labels' true needs shaping.demos, loss.target: true, "
                  "shaping.target_fit_steps > 0 or loss.target_prefit_steps > 0, and shaping.expert_labels: false");
    if (shaping_.target_fit_steps > 0 && !loss_.has_target())
      throw Error("config: key 'shaping.target_fit_steps' needs loss.target: true");
    if (shaping_.target_fit_steps > 0 && !labels_ && !demo_obs_.defined())
      throw Error("config: key 'shaping.target_fit_steps' needs shaping.demos or shaping.expert_labels");
    if (!shaping_.target_meta_gradient && (!loss_.has_target() || (shaping_.target_fit_steps == 0 &&
                                                                   lsec_.target_prefit_steps == 0)))
      throw Error("config: key 'shaping.target_meta_gradient' false needs loss.target: true and "
                  "shaping.target_fit_steps > 0 or loss.target_prefit_steps > 0 (nothing else would train T)");
    if (loss_.has_target()) target_adam_ = Adam(loss_.target_params(phi_), 1e-8);
    if (lsec_.target_prefit_steps > 0) prefit_target();
    inner_ = InnerOptimizer::named(meta_.inner_optimizer, meta_.inner_lr, meta_.steps_per_batch);
    if (dist::Comm::get().distributed() && meta_.pool_size < meta_.tasks_per_iteration)
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

  std::string label() const override { return "meta-train " + env_name_; }
  int iterations() const override { return meta_.iterations; }
  int checkpoint_every() const override { return meta_.checkpoint_every; }
  std::vector<std::string> columns() const override {
    return {"iteration",   "wall_seconds", "seconds",   "task_loss", "inner_loss",      "pool_success_rate",
            "post_success_rate", "pool_return", "post_return", "grad_norm", "skipped", "resets",
            "collect_seconds", "pool_log_std", "imitation_error", "shaping_weight", "target_fit_error",
            "comm_seconds", "wait_seconds"};
  }

  nlohmann::json iterate(int it) override {
    const auto it_start = Clock::now();
    dist::Comm& comm = dist::Comm::get();
    comm.set_step(it);
    comm.take_comm_seconds(), comm.take_wait_seconds();
    const int n_tasks = meta_.tasks_per_iteration;
    Sums s(n_tasks);
    Params acc;
    const double weight = shaping_weight(it);
    const bool norm = it <= lsec_.norm_iterations;
    if (!comm.distributed()) {
      for (int k = 0; k < n_tasks; ++k) {
        TaskRun t = begin_task(it, k, &s);
        if (labels_) remember(t.mb1);
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
      if (labels_) share_rows(mine, false);
      const std::vector<LearnedLoss> snaps = norm ? share_rows(mine, true) : std::vector<LearnedLoss>();
      for (size_t i = 0; i < mine.size(); ++i) run_task(mine[i], norm ? snaps[i] : loss_, weight, &acc, &s);
      comm.sync("meta-gradients");
      share_results(it, mine, &acc, &s);
    }
    const int ok = static_cast<int>(s.v[0]);
    int skipped = static_cast<int>(s.v[1]);
    double gn = NAN;
    if (ok > 0) {
      for (auto& t : acc) t = t / static_cast<double>(ok);
      // Fitted, not meta-trained: T's part of the meta-gradient is dropped
      // (Adam's moments of it stay zero, so T moves only by target fitting).
      if (!shaping_.target_meta_gradient)
        for (auto& t : loss_.target_params(acc)) t.zero_();
      gn = clip_grad_norm(acc, meta_.max_grad_norm);
      if (std::isfinite(gn)) adam_.step(phi_, acc, meta_.outer_lr);
      else ++skipped;
    }
    total_skipped_ += skipped;
    const double fit_err = fit_target(it);
    const double secs = since(it_start);
    step_seconds_.push_back(secs);
    meta_seconds_ += secs;
    const double n = std::max(ok, 1);
    return {{"iteration", it},         {"seconds", secs},
            {"task_loss", s.v[2] / n}, {"inner_loss", s.v[3] / n},
            {"pool_success_rate", s.v[4] / n}, {"post_success_rate", s.v[5] / n},
            {"pool_return", s.v[6] / n}, {"post_return", s.v[7] / n},
            {"grad_norm", gn},         {"skipped", skipped},
            {"resets", resets_},       {"collect_seconds", s.v[8]},
            {"pool_log_std", s.v[9] / n},
            {"imitation_error", shaped() ? nlohmann::json(s.v[10] / n_tasks) : nlohmann::json()},
            {"shaping_weight", shaped() ? nlohmann::json(weight) : nlohmann::json()},
            {"target_fit_error", std::isfinite(fit_err) ? nlohmann::json(fit_err) : nlohmann::json()},
            {"comm_seconds", comm.take_comm_seconds()},
            {"wait_seconds", comm.take_wait_seconds()}};
  }

  std::string progress_text(const nlohmann::json& r) const override {
    return fmt::format("task loss {:.4f} | pool success {:.0f}% -> {:.0f}%{} | {:.2f}s/it{}",
                       r["task_loss"].get<double>(), 100 * r["pool_success_rate"].get<double>(),
                       100 * r["post_success_rate"].get<double>(),
                       r["imitation_error"].is_null() ? ""
                                                      : fmt::format(" | imitation {:.3f}", r["imitation_error"].get<double>()),
                       r["seconds"].get<double>(), r["skipped"].get<int>() ? " | skipped non-finite" : "");
  }

  void save(Archive& a) const override {
    std::vector<int> ages;
    for (const auto& s : pool_) ages.push_back(s.age);
    a.meta()["resets"] = resets_;
    a.meta()["ages"] = ages;
    a.meta()["skipped"] = total_skipped_;
    a.meta()["meta_training_seconds"] = meta_seconds_;
    loss_.put(a, "loss/", phi_);
    adam_.save(a, "adam/");
    if (loss_.has_target()) target_adam_.save(a, "target_adam/");
    if (labels_) {
      a.meta()["buffer_rows"] = buf_n_;
      a.meta()["buffer_pos"] = buf_pos_;
      put_params(a, "buffer/", {buf_obs_, buf_act_});
    }
    for (size_t j = 0; j < pool_.size(); ++j) {
      const std::string p = "pool/" + std::to_string(j) + "/";
      put_params(a, p, pool_[j].theta);
      pool_[j].opt_state.save(a, p);
    }
  }

  void load(const Archive& a) override {
    loss_ = LearnedLoss::get(a, "loss/", &phi_);
    adam_ = Adam(phi_, 1e-8);
    adam_.load(a, "adam/");
    if (loss_.has_target()) {
      target_adam_ = Adam(loss_.target_params(phi_), 1e-8);
      target_adam_.load(a, "target_adam/");
    }
    if (labels_) {
      const Params buf = get_params(a, "buffer/", 2);
      buf_obs_ = buf[0], buf_act_ = buf[1];
      buf_n_ = a.meta().at("buffer_rows").get<int64_t>();
      buf_pos_ = a.meta().at("buffer_pos").get<int64_t>();
    }
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

  void write_artifacts(const std::string& run_dir, int it) const override {
    loss_.save((fs::path(run_dir) / "loss.ml3").string(), phi_,
               {{"env", env_name_},
                {"meta_iteration", it},
                {"seed", seed_},
                {"run", run_dir},
                {"shaped", shaped()},
                {"shaping", labels_                  ? "expert_labels"
                            : shaping_.target_labels ? "demos_target_labels"
                            : demo_obs_.defined()    ? "demos"
                                                     : "none"},
                {"target_meta_gradient", shaping_.target_meta_gradient},
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

  nlohmann::json summary(double) override {
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

  bool spreads_over_ranks() const override { return true; }

  Plot plot() const override {
    return {"meta", "meta_curve.png", fmt::format("ML3 meta-training on {} (seed {})", env_name_, seed_)};
  }

 private:
  // ---- one task of an outer step (src/ml3_dist.cpp spreads them over ranks) ----
  // Sums of an iteration: ok, skipped, task loss, inner loss, pool/post
  // success, pool/post return, collect seconds, log std, imitation error; then
  // one status per task (1 ok, 2 skipped; a rank fills in its own).
  struct Sums {
    explicit Sums(int n_tasks) : v(11 + static_cast<size_t>(n_tasks), 0.0) {}
    std::vector<double> v;
  };
  struct TaskRun {
    int k = 0;
    size_t slot = 0;
    uint64_t tseed = 0;
    std::vector<Task> tasks;
    Params theta, theta_k;
    Batch b1;
    Minibatch mb1;
    Tensor stat_rows;  // the loss's normalisation inputs (first loss.norm_iterations)
    InnerState state;
    bool ok = false;
  };
  // The first batch of task k (rollouts of its pool policy).
  TaskRun begin_task(int it, int k, Sums* s) {
    TaskRun t;
    t.k = k;
    t.slot = slot_of(it, k);
    t.tseed = mix_seed(seed_, static_cast<uint64_t>(it) * 1000 + k);
    t.tasks = sample_tasks(venv_.env(0), Split::Train, t.tseed, meta_.episodes_per_task);
    t.theta = clone_params(pool_[t.slot].theta, true);
    const auto tc = Clock::now();
    t.b1 = collect(venv_, models_.policy, t.theta, raw_, t.tasks, mix_seed(t.tseed, 1), false, labels_);
    s->v[8] += since(tc);
    compute_rtg(t.b1, meta_.gamma);
    compute_reinforce_advantages(t.b1);  // for an anchored loss
    t.mb1 = flatten_batch(t.b1);
    if (it <= lsec_.norm_iterations) {
      torch::NoGradGuard ng;
      t.stat_rows = loss_.stat_rows(loss_inputs(t.mb1, policy_eval(models_.policy, t.theta, t.mb1)));
    }
    return t;
  }
  // The inner updates of task t under `loss` (its normalisation statistics)
  // and the meta-gradient of its task loss, added to *acc.
  void run_task(TaskRun& t, const LearnedLoss& loss, double weight, Params* acc, Sums* s) {
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
    Batch b2 = collect(venv_, policy, theta_k, raw_, t.tasks, mix_seed(t.tseed, 2), false, labels_);
    s->v[8] += since(tc);
    compute_rtg(b2, meta_.gamma);
    Tensor lt = task_loss(policy, theta_k, b2);
    if (shaped()) {
      lt = shaping_.rl_weight * lt;
      // Shaping: the updated policy's squared action error on demonstrated
      // states, or on the states it visits itself with expert labels or the
      // target network's (held constant). It depends on phi through theta_k
      // (the inner steps), so its gradient reaches the loss exactly as the
      // task loss's does.
      const Tensor err = labels_                  ? visited_imitation_error(theta_k, flatten_batch(b2))
                         : shaping_.target_labels ? target_labelled_error(theta_k, flatten_batch(b2))
                                                  : imitation_error(theta_k, mix_seed(t.tseed, 3));
      s->v[10] += err.item<double>();
      if (weight > 0) lt = lt + weight * err;
    }
    std::vector<Tensor> g;
    bool finite = std::isfinite(lt.item<double>());
    if (finite) {
      g = torch::autograd::grad({lt}, phi_);
      finite = all_finite(g) && all_finite(theta_k);
    }
    t.ok = finite;
    s->v[11 + t.k] = finite ? 1 : 2;
    if (!finite) {  // skip this task's gradient; finish_task restarts its policy
      s->v[1] += 1;
      return;
    }
    if (acc->empty()) *acc = g;
    else for (size_t i = 0; i < g.size(); ++i) (*acc)[i] = (*acc)[i] + g[i];
    s->v[0] += 1, s->v[2] += lt.item<double>(), s->v[3] += il;
    s->v[4] += t.b1.success_rate, s->v[5] += b2.success_rate, s->v[6] += t.b1.return_mean, s->v[7] += b2.return_mean;
    s->v[9] += policy.log_std(theta_k).mean().item<double>();
    t.theta_k = theta_k;
  }
  // The pool slot after its task: the updated policy and optimiser state (a
  // restart when the task was skipped or the policy is old enough).
  void finish_task(PoolSlot& slot, bool ok, const Params& theta_k, const InnerState& state) {
    if (!ok) return reset_slot(slot);
    slot.theta = clone_params(theta_k, true);
    slot.opt_state = state.detached();
    if (fresh_ || ++slot.age >= meta_.pool_reset_every) reset_slot(slot);
  }
  size_t slot_of(int it, int k) const {
    return (static_cast<size_t>(it - 1) * meta_.tasks_per_iteration + k) % pool_.size();
  }
  bool resets_after(const PoolSlot& slot) const { return fresh_ || slot.age + 1 >= meta_.pool_reset_every; }
  // src/ml3_dist.cpp: every rank gets every task's rows in task order --
  // expert labels into the buffer (stats false) or normalisation inputs into
  // the loss's statistics (stats true: returns the loss as each of this
  // rank's tasks sees it, after the tasks before it); then the gradient and
  // sums all-reduced and the pool slots from their tasks' ranks.
  std::vector<LearnedLoss> share_rows(const std::vector<TaskRun>& mine, bool stats);
  void share_results(int it, const std::vector<TaskRun>& mine, Params* acc, Sums* s);

  // Every (state, action) row of the demonstrations, checked against the env.
  void load_demonstrations() {
    const Demonstrations d = load_demos(shaping_.demos, &venv_.spec());
    std::vector<float> obs, act;
    for (const auto& e : d.episodes) {
      obs.insert(obs.end(), e.observations.begin(), e.observations.end());
      act.insert(act.end(), e.actions.begin(), e.actions.end());
    }
    const int64_t rows = static_cast<int64_t>(act.size()) / d.act_dim;
    demo_obs_ = torch::from_blob(obs.data(), {rows, d.obs_dim}, torch::kFloat32).clone();
    demo_act_ = torch::from_blob(act.data(), {rows, d.act_dim}, torch::kFloat32).clone();
  }
  // shaping.demo_rows random demonstrated rows (with replacement), from Rng(seed).
  Tensor demo_rows(uint64_t seed) const {
    Rng rng(seed);
    std::vector<int64_t> idx(static_cast<size_t>(shaping_.demo_rows));
    for (auto& i : idx) i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(demo_obs_.size(0)));
    return torch::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, torch::kInt64).clone();
  }
  // mean over shaping.demo_rows random demonstrated rows of |mean_theta(s) - a|^2.
  Tensor imitation_error(const Params& theta, uint64_t seed) const {
    const Tensor rows = demo_rows(seed);
    const Tensor mu = models_.policy.mean(demo_obs_.index_select(0, rows), theta);
    return squared_action_error(mu, demo_act_.index_select(0, rows));
  }
  // Behaviour cloning of the target network on the demonstrations (Adam,
  // shaping.target_fit_lr, minibatches of shaping.demo_rows): the loss then
  // starts out as "imitate what the demonstrations did", and meta-training
  // refines it.
  void prefit_target() {
    if (!loss_.has_target()) throw Error("config: key 'loss.target_prefit_steps' needs loss.target: true");
    if (!demo_obs_.defined()) throw Error("config: key 'loss.target_prefit_steps' needs shaping.demos");
    double err = 0;
    for (int step = 1; step <= lsec_.target_prefit_steps; ++step) err = target_step(mix_seed(seed_, 900000 + step));
    std::fprintf(stderr, "target network pre-fitted to the demonstrations: %d steps, squared action error %.4f\n",
                 lsec_.target_prefit_steps, err);
  }
  // One Adam step of the target network on shaping.demo_rows random labelled
  // rows (demonstrations and expert-labelled visited states, uniformly);
  // returns the squared action error before the step.
  double target_step(uint64_t seed) {
    const int64_t d = demo_obs_.defined() ? demo_obs_.size(0) : 0, total = d + buf_n_;
    Rng rng(seed);
    std::vector<int64_t> di, bi;
    for (int r = 0; r < shaping_.demo_rows; ++r) {
      const int64_t i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(total));
      (i < d ? di : bi).push_back(i < d ? i : i - d);
    }
    auto idx = [](std::vector<int64_t>& v) {
      return torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, torch::kInt64).clone();
    };
    std::vector<Tensor> obs, act;
    if (!di.empty()) obs.push_back(demo_obs_.index_select(0, idx(di))), act.push_back(demo_act_.index_select(0, idx(di)));
    if (!bi.empty()) obs.push_back(buf_obs_.index_select(0, idx(bi))), act.push_back(buf_act_.index_select(0, idx(bi)));
    Params tp = loss_.target_params(phi_);
    const Tensor err = squared_action_error(loss_.target(torch::cat(obs), phi_), torch::cat(act));
    auto g = torch::autograd::grad({err}, tp);
    target_adam_.step(tp, g, shaping_.target_fit_lr);
    return err.item<double>();
  }
  // shaping.target_fit_steps target steps after meta-iteration `it`; the
  // error of the last (NaN when none).
  double fit_target(int it) {
    double err = NAN;
    if (buf_n_ == 0 && !demo_obs_.defined()) return err;
    for (int step = 1; step <= shaping_.target_fit_steps; ++step)
      err = target_step(mix_seed(seed_, 800000000ull + static_cast<uint64_t>(it) * 1000 + step));
    return err;
  }
  // The expert-labelled rows of a batch into the ring buffer of visited states.
  void remember(const Minibatch& mb) {
    torch::NoGradGuard ng;
    const int64_t cap = shaping_.buffer_rows, n = mb.obs.size(0);
    if (!buf_obs_.defined()) {
      buf_obs_ = torch::zeros({cap, mb.obs.size(1)}, torch::kFloat32);
      buf_act_ = torch::zeros({cap, mb.expert.size(1)}, torch::kFloat32);
    }
    const int64_t keep = std::min(cap, n);  // the last rows when the batch alone overflows the buffer
    const Tensor idx = (torch::arange(keep, torch::kInt64) + buf_pos_).remainder(cap);
    buf_obs_.index_copy_(0, idx, mb.obs.slice(0, n - keep));
    buf_act_.index_copy_(0, idx, mb.expert.slice(0, n - keep));
    buf_pos_ = (buf_pos_ + keep) % cap;
    buf_n_ = std::min(cap, buf_n_ + keep);
  }
  // mean over the rows of `mb` of |mean_theta(s) - expert(s)|^2.
  Tensor visited_imitation_error(const Params& theta, const Minibatch& mb) const {
    return squared_action_error(models_.policy.mean(mb.obs, theta), mb.expert);
  }
  // mean over the rows of `mb` of |mean_theta(s) - T(s)|^2, the loss's target
  // network T a constant label here (no meta-gradient through the labels).
  Tensor target_labelled_error(const Params& theta, const Minibatch& mb) const {
    Tensor labels;
    {
      torch::NoGradGuard ng;
      labels = loss_.target(mb.obs, phi_);
    }
    return squared_action_error(models_.policy.mean(mb.obs, theta), labels);
  }
  bool shaped() const { return labels_ || demo_obs_.defined(); }

  double shaping_weight(int it) const {
    if (shaping_.anneal_iterations <= 0) return shaping_.imitation_weight;
    return shaping_.imitation_weight * std::max(0.0, 1.0 - static_cast<double>(it - 1) / shaping_.anneal_iterations);
  }

  void reset_slot(PoolSlot& slot) {
    slot.theta = models_.policy.init(mix_seed(seed_, 5000 + resets_++));
    slot.opt_state = InnerState();
    slot.age = 0;
  }

  Config cfg_;
  MetaSection meta_;
  LossSection lsec_;
  ShapingSection shaping_;
  Tensor demo_obs_, demo_act_;  // demonstrated rows (shaping), undefined when unshaped
  bool labels_ = false;         // shaping.expert_labels
  Tensor buf_obs_, buf_act_;    // expert-labelled visited states (ring buffer)
  int64_t buf_n_ = 0, buf_pos_ = 0;
  Adam target_adam_;            // of the target network's own fitting steps
  uint64_t seed_;
  std::string env_name_, run_dir_;
  VecEnv venv_;
  ObsNormalizer raw_;
  PolicyModels models_;
  LearnedLoss loss_;
  Params phi_;
  Adam adam_;
  bool fresh_ = false;
  InnerOptimizer inner_;
  std::vector<PoolSlot> pool_;
  uint64_t resets_ = 0;
  int total_skipped_ = 0;
  std::vector<double> step_seconds_;
  double meta_seconds_ = 0;  // the meta-iterations' wall time, over resumes
};

}  // namespace ml3::ml3meta
