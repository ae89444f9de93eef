// Behaviour cloning of a demonstrations file (ml3 demos; docs/demos.md), and
// PPO started from such a clone: the baselines that answer "what does a loss
// shaped with these demonstrations add over simply imitating them?".
//
// `bc`: every update takes bc.steps_per_update Adam steps on minibatches of
// bc.batch_rows demonstrated (observation, action) rows, minimising
// |mean_theta(obs) - action|^2 (the log-std is not trained; evaluation uses
// the mean). It learns nothing from the environment, but the trainer still
// collects the update's batch (and counts its env steps) so that its curves
// share the x axes of the other methods, update for update.
// `ppo_from_bc`: PPO whose policy starts as the clone after
// bc.pretrain_steps such steps (its update 0 is the clone).
#include <torch/torch.h>

#include <cmath>

#include "core/rng.h"
#include "envs/demos.h"
#include "src/policy_trainer.h"

namespace ml3 {

AlgorithmEntry ppo_algorithm();

namespace {

// bc.*: the demonstrations and the cloning optimiser.
struct BcData {
  std::string demos;
  double lr = 1e-3;
  int batch_rows = 256;
  template <class F>
  void data_fields(F& f) {
    f("demos", demos, "demonstrations file to imitate (ml3 demos; required)");
    f("lr", lr, "Adam learning rate of behaviour cloning", Bounds::in(0.0, 10.0, true));
    f("batch_rows", batch_rows, "demonstrated (observation, action) rows per cloning step");
  }
};
struct BcSection : BcData {
  int steps_per_update = 10;
  template <class F>
  void fields(F& f) {
    data_fields(f);
    f("steps_per_update", steps_per_update,
      "cloning steps per policy update (the update's env batch is collected and counted, not learned from)");
  }
};
struct BcPretrainSection : BcData {
  int pretrain_steps = 1000;
  template <class F>
  void fields(F& f) {
    data_fields(f);
    f("pretrain_steps", pretrain_steps, "cloning steps before the first PPO update (update 0 is the clone)",
      Bounds::at_least(0));
  }
};

// The demonstrated rows of a file, checked against the environment, and
// Adam steps of |mean_theta(obs) - action|^2 on random minibatches of them.
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
    rows_ = static_cast<int64_t>(act.size()) / demos.act_dim;
    if (rows_ == 0) throw Error(d.demos + ": no demonstrated rows");
    raw_obs_ = torch::from_blob(obs.data(), {rows_, demos.obs_dim}, torch::kFloat64).clone();
    act_ = torch::from_blob(act.data(), {rows_, demos.act_dim}, torch::kFloat32).clone();
  }

  // `steps` Adam steps on `pp` (in place); returns the last minibatch's loss.
  double fit(Params& pp, Adam& adam, int steps, double lr, uint64_t seed) const {
    Rng rng(seed);
    Params p = clone_params(pp, true);
    double last = 0;
    for (int s = 0; s < steps; ++s) {
      std::vector<int64_t> idx(static_cast<size_t>(d_.batch_rows));
      for (auto& i : idx) i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(rows_));
      const Tensor rows = torch::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, torch::kInt64).clone();
      const Tensor loss = squared_action_error(models_.policy.mean(observations(rows), p), act_.index_select(0, rows));
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

 private:
  // The rows as the policy sees them (normalised when policy.obs_norm is on).
  Tensor observations(const Tensor& rows) const {
    const Tensor raw = raw_obs_.index_select(0, rows).contiguous();
    if (!models_.norm.enabled()) return raw.to(torch::kFloat32);
    Tensor out = torch::empty(raw.sizes(), torch::kFloat32);
    models_.norm.normalize(raw.data_ptr<double>(), out.data_ptr<float>(), raw.size(0));
    return out;
  }

  BcData d_;
  const PolicyModels& models_;
  int64_t rows_ = 0;
  Tensor raw_obs_, act_;
};

class BcUpdate : public PolicyUpdate {
 public:
  BcUpdate(const Config& c, const std::string& prefix, const PolicyModels& m)
      : cfg_(read<BcSection>(c, prefix + "bc.")), cloner_(cfg_, prefix + "bc.demos", m) {}
  void init(Params& policy, Params&, uint64_t) override { adam_ = Adam(policy, 1e-8); }
  double gamma() const override { return 0.99; }  // returns are not used
  double lr() const override { return cfg_.lr; }
  int64_t policy_steps() const override { return adam_.steps(); }
  UpdateStats update(Batch&, Params& pp, Params&, double lr_scale, uint64_t shuffle_seed) override {
    UpdateStats st;
    st.policy_loss = cloner_.fit(pp, adam_, cfg_.steps_per_update, cfg_.lr * lr_scale, shuffle_seed);
    st.policy_updates = cfg_.steps_per_update;
    return st;
  }
  void save(Archive& a, const std::string& prefix) const override { adam_.save(a, prefix + "adam_policy/"); }
  void load(const Archive& a, const std::string& prefix) override { adam_.load(a, prefix + "adam_policy/"); }

 private:
  BcSection cfg_;
  Cloner cloner_;
  Adam adam_;
};

// Another rule (PPO) whose policy starts as the behaviour clone.
class FromCloneUpdate : public PolicyUpdate {
 public:
  FromCloneUpdate(const Config& c, const std::string& prefix, const PolicyModels& m,
                  std::unique_ptr<PolicyUpdate> rule)
      : cfg_(read<BcPretrainSection>(c, prefix + "bc.")), cloner_(cfg_, prefix + "bc.demos", m), rule_(std::move(rule)) {}
  void init(Params& policy, Params& value, uint64_t seed) override {
    Adam adam(policy, 1e-8);
    cloner_.fit(policy, adam, cfg_.pretrain_steps, cfg_.lr, seed);
    rule_->init(policy, value, seed);
  }
  double gamma() const override { return rule_->gamma(); }
  double gae_lambda() const override { return rule_->gae_lambda(); }
  double lr() const override { return rule_->lr(); }
  bool anneal_lr() const override { return rule_->anneal_lr(); }
  UpdateStats update(Batch& b, Params& pp, Params& vp, double lr_scale, uint64_t shuffle_seed) override {
    return rule_->update(b, pp, vp, lr_scale, shuffle_seed);
  }
  int64_t policy_steps() const override { return rule_->policy_steps(); }
  void save(Archive& a, const std::string& prefix) const override { rule_->save(a, prefix); }
  void load(const Archive& a, const std::string& prefix) override { rule_->load(a, prefix); }

 private:
  BcPretrainSection cfg_;
  Cloner cloner_;
  std::unique_ptr<PolicyUpdate> rule_;
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
  e.lr_key = lr_key;
  e.command = Command::Train;
  e.description = description;
  e.inputs = demos_inputs;
  e.meta_test_baseline = false;
  return e;
}

}  // namespace

AlgorithmEntry bc_algorithm() {
  AlgorithmEntry e = demos_entry("bc", "bc.lr",
                                 "behaviour cloning of a demonstrations file (bc.demos): Adam on |mean(obs) - action|^2");
  e.declare = [](Schema& s, const std::string& prefix) { declare<BcSection>(s, prefix + "bc."); };
  e.make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<BcUpdate>(c, prefix, m);
  };
  return e;
}

AlgorithmEntry ppo_from_bc_algorithm() {
  AlgorithmEntry e = demos_entry("ppo_from_bc", "optim.lr",
                                 "PPO started from a behaviour clone of bc.demos (bc.pretrain_steps cloning steps)");
  e.declare = [](Schema& s, const std::string& prefix) {
    ppo_algorithm().declare(s, prefix);
    declare<BcPretrainSection>(s, prefix + "bc.");
  };
  e.make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<FromCloneUpdate>(c, prefix, m, ppo_algorithm().make_update(c, prefix, m));
  };
  return e;
}

}  // namespace ml3
