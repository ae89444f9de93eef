// REINFORCE with a learned baseline: one policy-gradient step per batch on
// all its rows (advantage = return minus V, with pg.gae_lambda = 1 the
// Monte-Carlo return), then pg.epochs x pg.minibatches value-fit steps.
#include <torch/torch.h>

#include "core/rng.h"
#include "src/policy_trainer.h"

namespace ml3 {
namespace {

class ReinforceUpdate : public ActorCriticUpdate {
 public:
  using ActorCriticUpdate::ActorCriticUpdate;

  UpdateStats update(Batch& batch, Params& pp, Params& vp, double lr_scale, uint64_t shuffle_seed) override {
    const Minibatch all = prepare(batch);
    UpdateStats st;
    int value_steps = 0;
    policy_step(objective_, all, pp, lr_scale, st);
    const int64_t B = all.obs.size(0);
    const int64_t mb_size = std::max<int64_t>(1, B / pg_.minibatches);
    Rng rng(shuffle_seed);
    for (int e = 0; e < pg_.epochs; ++e) {
      const auto perm = permutation(B, rng);
      for (int64_t start = 0; start + mb_size <= B; start += mb_size)
        value_step(select_rows(all, perm, start, mb_size), vp, lr_scale, st, value_steps);
    }
    average(st, value_steps);
    return st;
  }

 private:
  ReinforceObjective objective_;
};

}  // namespace

AlgorithmEntry reinforce_algorithm() {
  AlgorithmEntry e;
  e.name = "reinforce";
  e.command = Command::Train;
  e.description = "REINFORCE with a learned value baseline (Williams 1992)";
  e.declare = [](Schema& s, const std::string& prefix) {
    declare<OptimSection>(s, prefix + "optim.");
    declare<PgSection>(s, prefix + "pg.", PgSection{0.99, 1.0});
  };
  e.make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<ReinforceUpdate>(c, prefix, m);
  };
  return e;
}

}  // namespace ml3
