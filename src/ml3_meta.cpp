// ML3 for policies: meta-training a learned loss that replaces the
// policy-gradient objective, over a pool of policies at different stages of
// learning (the `ml3` algorithm of `ml3 meta-train`). The core pieces --
// features, the differentiable inner step and the REINFORCE task loss -- are
// declared in src/ml3_core.h.
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
#include "src/meta_test.h"
#include "src/ml3_core.h"
#include "src/policy_trainer.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {

// ---- meta-training -------------------------------------------------------------------
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

LearnedLossSpec loss_spec(const LossSection& l, const EnvSpec& env) {
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
    if (shaping_.target_fit_steps > 0 && !loss_.has_target())
      throw Error("config: key 'shaping.target_fit_steps' needs loss.target: true");
    if (shaping_.target_fit_steps > 0 && !labels_ && !demo_obs_.defined())
      throw Error("config: key 'shaping.target_fit_steps' needs shaping.demos or shaping.expert_labels");
    if (loss_.has_target()) target_adam_ = Adam(loss_.target_params(phi_), 1e-8);
    if (lsec_.target_prefit_steps > 0) prefit_target();
    inner_ = InnerOptimizer::named(meta_.inner_optimizer, meta_.inner_lr, meta_.steps_per_batch);
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
            "collect_seconds", "pool_log_std", "imitation_error", "shaping_weight", "target_fit_error"};
  }

  nlohmann::json iterate(int it) override {
    const auto it_start = Clock::now();
    const int n_tasks = meta_.tasks_per_iteration, episodes = meta_.episodes_per_task, K = meta_.inner_steps;
    const GaussianPolicy& policy = models_.policy;
    Params acc;
    int ok = 0, skipped = 0;
    double task_l = 0, inner_l = 0, pool_s = 0, post_s = 0, pool_r = 0, post_r = 0, collect_s = 0, log_std_sum = 0;
    double imit = 0;
    const double weight = shaping_weight(it);
    for (int k = 0; k < n_tasks; ++k) {
      PoolSlot& slot = pool_[(static_cast<size_t>(it - 1) * n_tasks + k) % pool_.size()];
      const uint64_t tseed = mix_seed(seed_, static_cast<uint64_t>(it) * 1000 + k);
      const auto tasks = sample_tasks(venv_.env(0), Split::Train, tseed, episodes);
      Params theta = clone_params(slot.theta, true);
      auto tc = Clock::now();
      Batch b1 = collect(venv_, policy, theta, raw_, tasks, mix_seed(tseed, 1), false, labels_);
      collect_s += since(tc);
      compute_rtg(b1, meta_.gamma);
      compute_reinforce_advantages(b1);  // for an anchored loss
      const Minibatch mb1 = flatten_batch(b1);
      if (labels_) remember(mb1);
      if (it <= lsec_.norm_iterations) {
        torch::NoGradGuard ng;
        loss_.update_stats(loss_inputs(mb1, policy_eval(policy, theta, mb1)));
      }
      double il = 0;
      InnerState state = slot.opt_state.detached();
      Params theta_k = inner_update(loss_, phi_, policy, theta, mb1, inner_, &state, true, &il);
      for (int step = 2; step <= K; ++step) {
        Batch bk = collect(venv_, policy, theta_k, raw_, tasks, mix_seed(tseed, step + 10), false);
        compute_rtg(bk, meta_.gamma);
        compute_reinforce_advantages(bk);
        theta_k = inner_update(loss_, phi_, policy, theta_k, flatten_batch(bk), inner_, &state, true);
      }
      tc = Clock::now();
      Batch b2 = collect(venv_, policy, theta_k, raw_, tasks, mix_seed(tseed, 2), false, labels_);
      collect_s += since(tc);
      compute_rtg(b2, meta_.gamma);
      Tensor lt = task_loss(policy, theta_k, b2);
      if (shaped()) {
        lt = shaping_.rl_weight * lt;
        // Shaping: the updated policy's squared action error on demonstrated
        // states, or with expert labels on the states it visits itself. It
        // depends on phi through theta_k (the inner steps), so its gradient
        // reaches the loss exactly as the task loss's does.
        const Tensor err = labels_ ? visited_imitation_error(theta_k, flatten_batch(b2))
                                   : imitation_error(theta_k, mix_seed(tseed, 3));
        imit += err.item<double>();
        if (weight > 0) lt = lt + weight * err;
      }
      std::vector<Tensor> g;
      bool finite = std::isfinite(lt.item<double>());
      if (finite) {
        g = torch::autograd::grad({lt}, phi_);
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
      log_std_sum += policy.log_std(theta_k).mean().item<double>();
      slot.theta = clone_params(theta_k, true);
      slot.opt_state = state.detached();
      if (fresh_ || ++slot.age >= meta_.pool_reset_every) reset_slot(slot);
    }
    double gn = NAN;
    if (ok > 0) {
      for (auto& t : acc) t = t / static_cast<double>(ok);
      gn = clip_grad_norm(acc, meta_.max_grad_norm);
      if (std::isfinite(gn)) adam_.step(phi_, acc, meta_.outer_lr);
      else ++skipped;
    }
    total_skipped_ += skipped;
    const double fit_err = fit_target(it);
    const double secs = since(it_start);
    step_seconds_.push_back(secs);
    const double n = std::max(ok, 1);
    return {{"iteration", it},         {"seconds", secs},
            {"task_loss", task_l / n}, {"inner_loss", inner_l / n},
            {"pool_success_rate", pool_s / n}, {"post_success_rate", post_s / n},
            {"pool_return", pool_r / n}, {"post_return", post_r / n},
            {"grad_norm", gn},         {"skipped", skipped},
            {"resets", resets_},       {"collect_seconds", collect_s},
            {"pool_log_std", log_std_sum / n},
            {"imitation_error", shaped() ? nlohmann::json(imit / n_tasks) : nlohmann::json()},
            {"shaping_weight", shaped() ? nlohmann::json(weight) : nlohmann::json()},
            {"target_fit_error", std::isfinite(fit_err) ? nlohmann::json(fit_err) : nlohmann::json()}};
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
  }

  void write_artifacts(const std::string& run_dir, int it) const override {
    loss_.save((fs::path(run_dir) / "loss.ml3").string(), phi_,
               {{"env", env_name_},
                {"meta_iteration", it},
                {"seed", seed_},
                {"run", run_dir},
                {"shaped", shaped()},
                {"shaping", labels_ ? "expert_labels" : demo_obs_.defined() ? "demos" : "none"},
                {"inner_optimizer", meta_.inner_optimizer},
                {"steps_per_batch", meta_.steps_per_batch}});
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

  Plot plot() const override {
    return {"meta", "meta_curve.png", fmt::format("ML3 meta-training on {} (seed {})", env_name_, seed_)};
  }

 private:
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
};

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
  e.make = [](const Config& c, const std::string& run_dir) -> std::unique_ptr<Algorithm> {
    return std::make_unique<Ml3MetaTrainer>(c, run_dir);
  };
  e.meta_test = run_policy_meta_test;
  e.meta_test_table = policy_meta_test_table;
  return e;
}

}  // namespace ml3
