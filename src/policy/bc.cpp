// Behaviour cloning of a demonstrations file (ml3 demos; docs/demos.md), and
// the ways of combining it with PPO: the baselines that answer "what does a
// loss shaped with these demonstrations add over simply using them?".
//
// `bc`: every update takes bc.steps_per_update Adam steps on minibatches of
// bc.batch_rows demonstrated (observation, action) rows, minimising
// |mean_theta(obs) - action|^2 (the log-std is not trained; evaluation uses
// the mean). Trained to convergence by early stopping: a fixed random
// bc.holdout fraction of the rows is held out, its error is measured every
// bc.check_every steps, the policy is always the best one on those rows so
// far, and cloning stops after bc.patience checks without improvement. It
// collects no episodes (0 environment steps).
// `ppo_from_bc`: PPO whose policy starts as such a converged clone (at most
// bc.pretrain_steps steps), with a value warm-up: for the first
// bc.value_warmup updates PPO runs on the clone's own batches but its policy
// steps are discarded (the policy stays the clone) so that the value network
// learns the clone's returns before any policy step uses its advantages; then
// both of PPO's optimisers start afresh. Without the warm-up, the first
// updates' advantages come from an untrained critic and unlearn the clone.
// `dapg`: ppo_from_bc plus a decaying behaviour-cloning term (after
// Rajeswaran et al. 2018, "DAPG"): after each PPO update k (counted from the
// end of the warm-up), dapg.bc_steps cloning steps at learning rate
// bc.lr * dapg.decay^k with their own Adam. DAPG adds lambda0 lambda1^k times
// an advantage-weighted log-likelihood of the demonstrations to the policy
// gradient; with Adam a loss weight only matters relative to the other term,
// so the weight is carried as a decaying rate of interleaved steps, which
// keeps PPO's update (either backend) untouched.
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/rng.h"
#include "envs/demos.h"
#include "src/policy/trainer.h"

namespace ml3 {

AlgorithmEntry ppo_algorithm();

namespace {

// bc.*: the demonstrations, the cloning optimiser and its early stopping.
struct BcData {
  std::string demos;
  double lr = 1e-3;
  int batch_rows = 256;
  double holdout = 0.1;
  int check_every = 50;
  int patience = 10;
  template <class F>
  void data_fields(F& f) {
    f("demos", demos, "demonstrations file to imitate (ml3 demos; required)");
    f("lr", lr, "Adam learning rate of behaviour cloning", Bounds::in(0.0, 10.0, true));
    f("batch_rows", batch_rows, "demonstrated (observation, action) rows per cloning step");
    f("holdout", holdout,
      "fraction of the demonstrated rows held out for early stopping (0: no early stopping, every row trains)",
      Bounds::in(0.0, 0.5));
    f("check_every", check_every, "cloning steps between two measurements of the held-out error");
    f("patience", patience, "held-out checks without improvement after which cloning stops (the best policy is kept)");
  }
};
struct BcSection : BcData {
  int steps_per_update = 10;
  template <class F>
  void fields(F& f) {
    data_fields(f);
    f("steps_per_update", steps_per_update,
      "cloning steps per policy update (at most: none once early stopping has stopped cloning)");
  }
};
struct BcPretrainSection : BcData {
  int pretrain_steps = 20000;
  int value_warmup = 5;
  template <class F>
  void fields(F& f) {
    data_fields(f);
    f("pretrain_steps", pretrain_steps,
      "at most this many cloning steps before the first PPO update (early stopping may stop sooner; update 0 is "
      "the clone)",
      Bounds::at_least(0));
    f("value_warmup", value_warmup,
      "first updates in which only the value network learns (PPO's policy steps are discarded, the policy stays "
      "the clone); then PPO's optimisers restart",
      Bounds::at_least(0));
  }
};
// dapg.*: the decaying behaviour-cloning term.
struct DapgSection {
  int bc_steps = 20;
  double decay = 0.95;
  template <class F>
  void fields(F& f) {
    f("bc_steps", bc_steps, "cloning steps after each PPO update", Bounds::at_least(0));
    f("decay", decay, "their learning rate is bc.lr * decay^k after PPO update k (k = 0 right after the warm-up)",
      Bounds::in(0.0, 1.0));
  }
};

// Early stopping's state: the best policy on the held-out rows so far.
struct EarlyStop {
  double best = std::numeric_limits<double>::infinity();
  int bad = 0;
  bool stopped = false;
  Params best_params;
  void save(Archive& a, const std::string& prefix) const {
    a.put_f64(prefix + "state", {best, double(bad), stopped ? 1.0 : 0.0});
    if (!best_params.empty()) put_params(a, prefix + "best/", best_params);
  }
  void load(const Archive& a, const std::string& prefix, size_t tensors) {
    const auto v = a.get_f64(prefix + "state");
    best = v.at(0), bad = static_cast<int>(v.at(1)), stopped = v.at(2) != 0;
    best_params = std::isfinite(best) ? get_params(a, prefix + "best/", tensors) : Params{};
  }
};

// The demonstrated rows of a file, checked against the environment, split
// into training rows and held-out rows (a fixed random bc.holdout fraction),
// and Adam steps of |mean_theta(obs) - action|^2 on random minibatches of the
// training rows.
class Cloner {
 public:
  Cloner(const BcData& d, const std::string& key, const PolicyModels& m) : d_(d), models_(m) {
    if (d.demos.empty()) throw Error("config: key '" + key + "' is required (a demonstrations file of ml3 demos)");
    const Demonstrations demos = load_demos(d.demos, &m.spec);
    std::vector<double> obs;
    std::vector<float> act;
    for (const auto& e : demos.episodes) {
      obs.insert(obs.end(), e.observations.begin(), e.observations.end());
      act.insert(act.end(), e.actions.begin(), e.actions.end());
    }
    const int64_t rows = static_cast<int64_t>(act.size()) / demos.act_dim;
    if (rows == 0) throw Error(d.demos + ": no demonstrated rows");
    // A fixed permutation (the same for every seed and method): the first
    // rows are held out.
    std::vector<int64_t> perm(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) perm[i] = i;
    Rng rng(0xB0C5EEDull);
    for (int64_t i = rows - 1; i > 0; --i) std::swap(perm[i], perm[rng.next() % static_cast<uint64_t>(i + 1)]);
    int64_t held = d.holdout > 0 ? std::max<int64_t>(1, static_cast<int64_t>(std::llround(d.holdout * rows))) : 0;
    if (held >= rows)
      throw Error(d.demos + ": " + std::to_string(rows) + " demonstrated rows are too few to hold out " +
                  std::to_string(held) + " (key '" + key.substr(0, key.size() - 5) + "holdout')");
    const Tensor all_obs = torch::from_blob(obs.data(), {rows, demos.obs_dim}, torch::kFloat64).clone();
    const Tensor all_act = torch::from_blob(act.data(), {rows, demos.act_dim}, torch::kFloat32).clone();
    const Tensor p = torch::from_blob(perm.data(), {rows}, torch::kInt64).clone();
    val_obs_ = all_obs.index_select(0, p.slice(0, 0, held));
    val_act_ = all_act.index_select(0, p.slice(0, 0, held));
    raw_obs_ = all_obs.index_select(0, p.slice(0, held));
    act_ = all_act.index_select(0, p.slice(0, held));
    rows_ = rows - held;
  }

  bool early_stopping() const { return val_act_.size(0) > 0; }

  // `steps` Adam steps on `pp` (in place); returns the last minibatch's loss.
  double fit(Params& pp, Adam& adam, int steps, double lr, uint64_t seed) const {
    Rng rng(seed);
    Params p = clone_params(pp, true);
    double last = 0;
    for (int s = 0; s < steps; ++s) {
      std::vector<int64_t> idx(static_cast<size_t>(d_.batch_rows));
      for (auto& i : idx) i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(rows_));
      const Tensor rows = torch::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, torch::kInt64).clone();
      const Tensor loss =
          squared_action_error(models_.policy.mean(observations(raw_obs_.index_select(0, rows)), p),
                               act_.index_select(0, rows));
      last = loss.item<double>();
      if (!std::isfinite(last)) throw NonFiniteError("non-finite behaviour-cloning loss");
      // The log-std gets no gradient (allow_unused): zero, so Adam leaves it.
      auto grads = torch::autograd::grad({loss}, p, {}, false, false, /*allow_unused=*/true);
      for (size_t i = 0; i < grads.size(); ++i)
        if (!grads[i].defined()) grads[i] = torch::zeros_like(p[i]);
      adam.step(p, grads, lr);
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < pp.size(); ++i) pp[i].copy_(p[i]);
    return last;
  }

  // The squared action error on the held-out rows.
  double holdout_error(const Params& p) const {
    torch::NoGradGuard no_grad;
    return squared_action_error(models_.policy.mean(observations(val_obs_), p), val_act_).item<double>();
  }

  // Up to `steps` cloning steps of `cur` with early stopping: the held-out
  // error after every d.check_every steps; `es` keeps the best parameters and
  // stops after d.patience checks without improvement. Returns the steps taken.
  int fit_early_stopped(Params& cur, Adam& adam, int steps, double lr, uint64_t seed, EarlyStop& es,
                        double* last_loss) const {
    int done = 0;
    if (es.best_params.empty()) {
      es.best = holdout_error(cur);
      es.best_params = clone_params(cur, false);
    }
    for (int chunk = 0; done < steps && !es.stopped; ++chunk) {
      const int n = std::min(d_.check_every, steps - done);
      *last_loss = fit(cur, adam, n, lr, mix_seed(seed, static_cast<uint64_t>(chunk)));
      done += n;
      const double err = holdout_error(cur);
      if (!std::isfinite(err)) throw NonFiniteError("non-finite held-out behaviour-cloning error");
      if (err < es.best) {
        es.best = err, es.bad = 0, es.best_params = clone_params(cur, false);
      } else if (++es.bad >= d_.patience) {
        es.stopped = true;
      }
    }
    return done;
  }

 private:
  // Rows as the policy sees them (normalised when policy.obs_norm is on).
  Tensor observations(const Tensor& raw_rows) const {
    const Tensor raw = raw_rows.contiguous();
    if (!models_.norm.enabled()) return raw.to(torch::kFloat32);
    Tensor out = torch::empty(raw.sizes(), torch::kFloat32);
    models_.norm.normalize(raw.data_ptr<double>(), out.data_ptr<float>(), raw.size(0));
    return out;
  }

  BcData d_;
  const PolicyModels& models_;
  int64_t rows_ = 0;
  Tensor raw_obs_, act_, val_obs_, val_act_;
};

void copy_into(Params& dst, const Params& src) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
}

class BcUpdate : public PolicyUpdate {
 public:
  BcUpdate(const Config& c, const std::string& prefix, const PolicyModels& m)
      : cfg_(read<BcSection>(c, prefix + "bc.")), cloner_(cfg_, prefix + "bc.demos", m) {}
  void init(Params& policy, Params&, uint64_t) override {
    adam_ = Adam(policy, 1e-8);
    cur_ = clone_params(policy, false);
  }
  double gamma() const override { return 0.99; }  // returns are not used
  double lr() const override { return cfg_.lr; }
  int64_t policy_steps() const override { return adam_.steps(); }
  bool learns_from_env() const override { return false; }
  UpdateStats update(Batch&, Params& pp, Params&, double lr_scale, uint64_t shuffle_seed) override {
    UpdateStats st;
    if (!cloner_.early_stopping()) {
      st.policy_loss = cloner_.fit(pp, adam_, cfg_.steps_per_update, cfg_.lr * lr_scale, shuffle_seed);
      st.policy_updates = cfg_.steps_per_update;
      return st;
    }
    double last = 0;
    st.policy_updates =
        cloner_.fit_early_stopped(cur_, adam_, cfg_.steps_per_update, cfg_.lr * lr_scale, shuffle_seed, es_, &last);
    st.policy_loss = es_.best;  // the held-out error of the policy handed out (the best so far)
    copy_into(pp, es_.best_params);
    return st;
  }
  void save(Archive& a, const std::string& prefix) const override {
    adam_.save(a, prefix + "adam_policy/");
    put_params(a, prefix + "current/", cur_);
    es_.save(a, prefix + "early_stop/");
  }
  void load(const Archive& a, const std::string& prefix) override {
    adam_.load(a, prefix + "adam_policy/");
    cur_ = get_params(a, prefix + "current/", cur_.size());
    es_.load(a, prefix + "early_stop/", cur_.size());
  }

 private:
  BcSection cfg_;
  Cloner cloner_;
  Adam adam_;
  Params cur_;  // the iterate of the optimiser (the policy is the best one so far)
  EarlyStop es_;
};

// PPO whose policy starts as the converged behaviour clone, with a value
// warm-up, and optionally DAPG's decaying cloning term.
class FromCloneUpdate : public PolicyUpdate {
 public:
  FromCloneUpdate(const Config& c, const std::string& prefix, const PolicyModels& m,
                  std::unique_ptr<PolicyUpdate> rule, bool dapg)
      : cfg_(read<BcPretrainSection>(c, prefix + "bc.")),
        cloner_(cfg_, prefix + "bc.demos", m),
        rule_(std::move(rule)),
        dapg_(dapg) {
    if (dapg_) dapg_cfg_ = read<DapgSection>(c, prefix + "dapg.");
  }
  void init(Params& policy, Params& value, uint64_t seed) override {
    Adam adam(policy, 1e-8);
    double last = 0;
    if (cloner_.early_stopping()) {
      EarlyStop es;
      pretrain_steps_ = cloner_.fit_early_stopped(policy, adam, cfg_.pretrain_steps, cfg_.lr, seed, es, &last);
      copy_into(policy, es.best_params);
    } else {
      cloner_.fit(policy, adam, cfg_.pretrain_steps, cfg_.lr, seed);
      pretrain_steps_ = cfg_.pretrain_steps;
    }
    rule_->init(policy, value, seed);
    seed_ = seed;
    if (dapg_) bc_adam_ = Adam(policy, 1e-8);
  }
  double gamma() const override { return rule_->gamma(); }
  double gae_lambda() const override { return rule_->gae_lambda(); }
  double lr() const override { return rule_->lr(); }
  bool anneal_lr() const override { return rule_->anneal_lr(); }
  bool fast_backend() const override { return rule_->fast_backend(); }
  UpdateStats update(Batch& b, Params& pp, Params& vp, double lr_scale, uint64_t shuffle_seed) override {
    ++updates_;
    if (updates_ <= cfg_.value_warmup) {
      const Params clone = clone_params(pp, false);
      UpdateStats st = rule_->update(b, pp, vp, lr_scale, shuffle_seed);
      copy_into(pp, clone);
      warmup_steps_ += st.policy_updates;
      st.policy_updates = 0;
      if (updates_ == cfg_.value_warmup) rule_->init(pp, vp, seed_);  // fresh optimisers for PPO proper
      return st;
    }
    UpdateStats st = rule_->update(b, pp, vp, lr_scale, shuffle_seed);
    if (dapg_ && dapg_cfg_.bc_steps > 0) {
      const int k = updates_ - cfg_.value_warmup - 1;
      cloner_.fit(pp, bc_adam_, dapg_cfg_.bc_steps, cfg_.lr * std::pow(dapg_cfg_.decay, k) * lr_scale,
                  mix_seed(shuffle_seed, 0xDA96ull));
      st.policy_updates += dapg_cfg_.bc_steps;
    }
    return st;
  }
  // Every optimiser step on the policy: cloning (pre-training and DAPG's
  // term), PPO's, and the discarded ones of the warm-up.
  int64_t policy_steps() const override {
    return pretrain_steps_ + warmup_steps_ + rule_->policy_steps() + (dapg_ ? bc_adam_.steps() : 0);
  }
  void save(Archive& a, const std::string& prefix) const override {
    rule_->save(a, prefix);
    a.put_f64(prefix + "from_clone", {double(updates_), double(pretrain_steps_), double(warmup_steps_)});
    if (dapg_) bc_adam_.save(a, prefix + "adam_bc/");
  }
  void load(const Archive& a, const std::string& prefix) override {
    rule_->load(a, prefix);
    const auto v = a.get_f64(prefix + "from_clone");
    updates_ = static_cast<int>(v.at(0)), pretrain_steps_ = static_cast<int64_t>(v.at(1));
    warmup_steps_ = static_cast<int64_t>(v.at(2));
    if (dapg_) bc_adam_.load(a, prefix + "adam_bc/");
  }

 private:
  BcPretrainSection cfg_;
  Cloner cloner_;
  std::unique_ptr<PolicyUpdate> rule_;
  bool dapg_ = false;
  DapgSection dapg_cfg_;
  Adam bc_adam_;
  uint64_t seed_ = 0;
  int updates_ = 0;
  int64_t pretrain_steps_ = 0, warmup_steps_ = 0;
};

// The demonstrations file: recorded on the config's environment.
nlohmann::json demos_inputs(const Config& c) {
  const std::string file = c.get_string("bc.demos");
  if (file.empty()) throw Error("config: key 'bc.demos' is required (a demonstrations file of ml3 demos)");
  const Demonstrations d = load_demos(file);
  const std::string env = c.get_string("env.name");
  if (d.env != env) throw Error(file + ": demonstrations of " + d.env + ", not of " + env + " (key 'bc.demos')");
  const DemoSummary s = summarize(d);
  return {{"file", file}, {"demo_episodes", s.episodes}, {"demo_success_rate", s.success_rate},
          {"demo_split", split_name(d.split)}};
}

// What both entries share: the demonstrations file, no meta-test baseline.
AlgorithmEntry demos_entry(const char* name, const char* lr_key, const char* description) {
  AlgorithmEntry e;
  e.name = name;
  e.define_rule().lr_key = lr_key;
  e.command = Command::Train;
  e.description = description;
  e.define_rule().inputs = demos_inputs;
  e.define_rule().meta_test_baseline = false;
  return e;
}

}  // namespace

AlgorithmEntry bc_algorithm() {
  AlgorithmEntry e = demos_entry("bc", "bc.lr",
                                 "behaviour cloning of a demonstrations file (bc.demos): Adam on |mean(obs) - action|^2");
  e.declare = [](Schema& s, const std::string& prefix) { declare<BcSection>(s, prefix + "bc."); };
  e.define_rule().make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<BcUpdate>(c, prefix, m);
  };
  return e;
}

AlgorithmEntry ppo_from_bc_algorithm() {
  AlgorithmEntry e = demos_entry("ppo_from_bc", "optim.lr",
                                 "PPO started from a converged behaviour clone of bc.demos, with a value warm-up");
  e.declare = [](Schema& s, const std::string& prefix) {
    ppo_algorithm().declare(s, prefix);
    declare<BcPretrainSection>(s, prefix + "bc.");
  };
  e.define_rule().make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<FromCloneUpdate>(c, prefix, m, ppo_algorithm().rule().make_update(c, prefix, m), false);
  };
  return e;
}

AlgorithmEntry dapg_algorithm() {
  AlgorithmEntry e = demos_entry("dapg", "optim.lr",
                                 "DAPG-style: ppo_from_bc plus cloning steps of bc.demos at a decaying rate "
                                 "(Rajeswaran et al. 2018)");
  e.declare = [](Schema& s, const std::string& prefix) {
    ppo_algorithm().declare(s, prefix);
    declare<BcPretrainSection>(s, prefix + "bc.");
    declare<DapgSection>(s, prefix + "dapg.");
  };
  e.define_rule().make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<FromCloneUpdate>(c, prefix, m, ppo_algorithm().rule().make_update(c, prefix, m), true);
  };
  return e;
}

}  // namespace ml3
