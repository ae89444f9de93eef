// PPO (clipped surrogate, GAE, separate value network, minibatch epochs,
// optional target-KL early stop) as a policy-training algorithm.
#include <torch/torch.h>

#include "src/policy/trainer.h"

namespace ml3 {
namespace {

class PpoUpdate : public ActorCriticUpdate {
 public:
  PpoUpdate(const Config& c, const std::string& prefix, const PolicyModels& m)
      : ActorCriticUpdate(c, prefix, m), ppo_(read<PpoSection>(c, prefix + "ppo.")), objective_(ppo_.clip) {
    if (!ppo_.drift.empty()) {
      try {
        set_drift(Drift::load(ppo_.drift));
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (key '" + prefix + "ppo.drift')");
      }
    }
  }
  void set_progress(double p) override { objective_.set_progress(p); }
  void set_drift(const Drift& d) override {
    drift_ = std::make_unique<Drift>(d);
    objective_.set_drift(drift_.get());
  }

  UpdateStats update(Batch& batch, Params& pp, Params& vp, double lr_scale, uint64_t shuffle_seed) override {
    const Minibatch all = begin(batch, pp, vp);
    UpdateStats st;
    int value_steps = 0;
    if (parallel_value_fit() && ppo_.target_kl <= 0) {  // no early stop: the value steps need not wait for the policy's
      policy_then_value(all, shuffle_seed, vp, lr_scale, st, value_steps, [&] {
        for_each_minibatch(all, shuffle_seed, [&](const Minibatch& mb) {
          policy_step(objective_, mb, pp, lr_scale, st);
          return true;
        });
      });
    } else {
      for_each_minibatch(all, shuffle_seed, [&](const Minibatch& mb) {
        const double kl = policy_step(objective_, mb, pp, lr_scale, st);
        value_step(mb, vp, lr_scale, st, value_steps);
        return !(ppo_.target_kl > 0 && kl > ppo_.target_kl);  // target-KL early stop
      });
    }
    end(pp, vp);
    average(st, value_steps);
    return st;
  }

 private:
  PpoSection ppo_;
  PpoObjective objective_;
  std::unique_ptr<Drift> drift_;
};

}  // namespace

AlgorithmEntry ppo_algorithm() {
  AlgorithmEntry e;
  e.name = "ppo";
  e.define_rule().lr_key = "optim.lr";
  e.command = Command::Train;
  e.description = "PPO: clipped surrogate, GAE, value network, minibatch epochs (Schulman et al. 2017)";
  e.declare = [](Schema& s, const std::string& prefix) {
    declare<OptimSection>(s, prefix + "optim.");
    declare<PgSection>(s, prefix + "pg.");
    declare<PpoSection>(s, prefix + "ppo.");
  };
  e.define_rule().make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<PpoUpdate>(c, prefix, m);
  };
  // A learned drift (ppo.drift): its file and its meta-training's record,
  // for reports (the drift reads no environment-specific inputs).
  e.define_rule().inputs = [](const Config& c) -> nlohmann::json {
    const auto p = read<PpoSection>(c, "ppo.");
    if (p.drift.empty()) return nlohmann::json();
    nlohmann::json meta;
    try {
      Drift::load(p.drift, &meta);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (key 'ppo.drift')");
    }
    nlohmann::json mt = nlohmann::json::object();
    for (const char* k : {"meta_training_seconds", "meta_training_env_steps", "meta_iteration"})
      mt[k] = meta.value(k, nlohmann::json());
    // A family's drift names its tasks (es.tasks), a single task's its env.
    const std::string tasks = meta.value("tasks", std::string());
    return {{"drift", p.drift}, {"meta_trained_on", tasks.empty() ? meta.value("env", "?") : tasks},
            {"meta_training", mt}};
  };
  return e;
}

}  // namespace ml3
