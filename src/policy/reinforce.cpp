// REINFORCE with a learned baseline: one policy-gradient step per batch on
// all its rows (advantage = return minus V, with pg.gae_lambda = 1 the
// Monte-Carlo return), then pg.epochs x pg.minibatches value-fit steps.
#include <torch/torch.h>

#include "src/policy/trainer.h"

namespace ml3 {
namespace {

class ReinforceUpdate : public ActorCriticUpdate {
 public:
  using ActorCriticUpdate::ActorCriticUpdate;

  UpdateStats update(Batch& batch, Params& pp, Params& vp, double lr_scale, uint64_t shuffle_seed) override {
    const Minibatch all = begin(batch, pp, vp);
    UpdateStats st;
    int value_steps = 0;
    policy_then_value(all, shuffle_seed, vp, lr_scale, st, value_steps,
                      [&] { policy_step(objective_, all, pp, lr_scale, st); });
    end(pp, vp);
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
  e.define_rule().lr_key = "optim.lr";
  e.command = Command::Train;
  e.description = "REINFORCE with a learned value baseline (Williams 1992)";
  e.declare = [](Schema& s, const std::string& prefix) {
    declare<OptimSection>(s, prefix + "optim.");
    declare<PgSection>(s, prefix + "pg.", PgSection{0.99, 1.0});
  };
  e.define_rule().make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<ReinforceUpdate>(c, prefix, m);
  };
  return e;
}

}  // namespace ml3
