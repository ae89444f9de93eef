// PPO (clipped surrogate, GAE, separate value network, minibatch epochs,
// optional target-KL early stop) as a policy-training algorithm.
#include <torch/torch.h>

#include "core/rng.h"
#include "src/policy_trainer.h"

namespace ml3 {
namespace {

class PpoUpdate : public ActorCriticUpdate {
 public:
  PpoUpdate(const Config& c, const std::string& prefix, const PolicyModels& m)
      : ActorCriticUpdate(c, prefix, m), ppo_(read<PpoSection>(c, prefix + "ppo.")), objective_(ppo_.clip) {}

  UpdateStats update(Batch& batch, Params& pp, Params& vp, double lr_scale, uint64_t shuffle_seed) override {
    const Minibatch all = prepare(batch);
    UpdateStats st;
    int value_steps = 0;
    const int64_t B = all.obs.size(0);
    const int64_t mb_size = std::max<int64_t>(1, B / pg_.minibatches);
    Rng rng(shuffle_seed);
    bool stop = false;
    for (int e = 0; e < pg_.epochs && !stop; ++e) {
      const auto perm = permutation(B, rng);
      for (int64_t start = 0; start + mb_size <= B && !stop; start += mb_size) {
        const Minibatch mb = select_rows(all, perm, start, mb_size);
        const double kl = policy_step(objective_, mb, pp, lr_scale, st);
        if (ppo_.target_kl > 0 && kl > ppo_.target_kl) stop = true;
        value_step(mb, vp, lr_scale, st, value_steps);
      }
    }
    average(st, value_steps);
    return st;
  }

 private:
  PpoSection ppo_;
  PpoObjective objective_;
};

}  // namespace

AlgorithmEntry ppo_algorithm() {
  AlgorithmEntry e;
  e.name = "ppo";
  e.command = Command::Train;
  e.description = "PPO: clipped surrogate, GAE, value network, minibatch epochs (Schulman et al. 2017)";
  e.declare = [](Schema& s, const std::string& prefix) {
    declare<OptimSection>(s, prefix + "optim.");
    declare<PgSection>(s, prefix + "pg.");
    declare<PpoSection>(s, prefix + "ppo.");
  };
  e.make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<PpoUpdate>(c, prefix, m);
  };
  return e;
}

}  // namespace ml3
