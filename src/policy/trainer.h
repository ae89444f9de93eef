#pragma once
// Policy training as an Algorithm: every iteration collects one batch of
// episodes (one goal each) with the current policy and hands it to an update
// rule -- PPO, REINFORCE or a learned loss (src/policy/, src/ml3/), chosen by the
// registry. `ml3 train` runs it under the runner; `ml3 meta-test` runs the
// same class for every method and seed it compares.
#include <functional>
#include <memory>
#include <optional>

#include "envs/vec_env.h"
#include "src/run/algorithm.h"
#include "src/policy/fast_pg.h"
#include "src/policy/pg.h"
#include "src/policy/sections.h"

namespace ml3 {

class LearnedLoss;  // models/learned_loss.h

// The networks of a policy-training run (policy.*, value.*).
struct PolicyModels {
  EnvSpec spec;
  GaussianPolicy policy;
  FunctionalMlp value_net;
  ObsNormalizer norm;
};
PolicyModels make_policy_models(const Config& c, const EnvSpec& spec);

struct UpdateStats {
  double policy_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clip_fraction = 0, grad_norm = 0;
  int policy_updates = 0;
};

// How a batch becomes new policy (and value) parameters.
class PolicyUpdate {
 public:
  virtual ~PolicyUpdate() = default;
  // Optimiser state for these parameters. A rule may also set the starting
  // policy (ppo_from_bc: the behaviour clone of its demonstrations); `seed`
  // seeds whatever randomness that takes.
  virtual void init(Params& policy, Params& value, uint64_t seed) = 0;
  // Discount of the returns; GAE lambda when the rule uses values and
  // advantages (negative: it does not, and the value network is not run).
  virtual double gamma() const = 0;
  virtual double gae_lambda() const { return -1.0; }
  // Learning rate before annealing (the metrics' lr column), and whether the
  // run anneals it linearly to 0.
  virtual double lr() const = 0;
  virtual bool anneal_lr() const { return false; }
  // lr_scale multiplies the learning rates; shuffling uses Rng(shuffle_seed).
  // Throws NonFiniteError without changing the parameters' finiteness check
  // (the trainer checks them after the update).
  virtual UpdateStats update(Batch& batch, Params& policy, Params& value, double lr_scale, uint64_t shuffle_seed) = 0;
  // Optimiser steps taken on the policy so far.
  virtual int64_t policy_steps() const = 0;
  // Whether the rule runs the fast backend (pg.backend = fast); its rollouts
  // then use the same small-network forward (GaussianPolicy::small_forward).
  virtual bool fast_backend() const { return false; }
  // Whether the rule learns from the environment. A rule that does not (bc,
  // shaping_only) gets an empty batch: the trainer collects no episodes for
  // it and counts no environment steps.
  virtual bool learns_from_env() const { return true; }
  virtual void save(Archive& a, const std::string& prefix) const = 0;
  virtual void load(const Archive& a, const std::string& prefix) = 0;
  // The training progress of the next update, (iteration - 1) / iterations
  // (a learned drift reads it).
  virtual void set_progress(double) {}
  // Replaces the rule's learned drift (PPO's; ES meta-training of one sets
  // each population member's). Other rules throw ml3::Error.
  virtual void set_drift(const Drift&) { throw Error("internal: this update rule has no drift term"); }
  // Replaces the rule's learned loss (the learned_loss rule's; ES
  // meta-training of an ML3 loss sets each population member's). With
  // `stats_into`, every update also adds its batch's loss features to that
  // loss's normalisation statistics. Other rules throw ml3::Error.
  virtual void set_learned_loss(const LearnedLoss&, const Params&, LearnedLoss* /*stats_into*/ = nullptr) {
    throw Error("internal: this update rule has no learned loss");
  }
};

// What differs between a training run and one meta-test run: goal splits and
// the seed streams (policy init mix_seed(seed, 11), value init mix_seed(seed,
// 12), goals / action noise / shuffling of iteration i mix_seed(seed, offset + i)).
struct PolicyRunPlan {
  Split train_split = Split::Train, eval_split = Split::Test;
  uint64_t seed = 1;
  uint64_t task_offset = 0, noise_offset = 1ull << 32, shuffle_offset = 2ull << 32;
  int iterations = 300, episodes = 64, checkpoint_every = 50;
  int eval_every = 25, eval_episodes = 100;
  uint64_t eval_seed = 0;
  int nan_at_iteration = 0;  // testing aid: a NaN reward at this iteration
  // Build the rule and its inputs only, without PolicyUpdate::init (no
  // optimiser state, no pre-training such as a clone's): ml3 compare's check
  // of every method before any work. Such a trainer is not to be iterated.
  bool build_only = false;
};
// The plan of `ml3 train` (train.*, debug.*, seed).
PolicyRunPlan train_plan(const Config& c);

class PolicyTrainer : public Algorithm {
 public:
  // `c` holds env.*, policy.*, value.*, threads, torch_threads and the update
  // rule's sections under `prefix`; the registry entry `entry` makes the rule.
  PolicyTrainer(const Config& c, const AlgorithmEntry& entry, const std::string& prefix, const PolicyRunPlan& plan);

  std::string label() const override;
  int iterations() const override { return plan_.iterations; }
  int checkpoint_every() const override { return plan_.checkpoint_every; }
  std::vector<std::string> columns() const override;
  nlohmann::json iterate(int iteration) override;
  int eval_every() const override { return plan_.eval_every; }
  nlohmann::json evaluate() override;
  std::string progress_text(const nlohmann::json& row) const override;
  void save(Archive& a) const override;
  void load(const Archive& a) override;
  nlohmann::json summary(double wall_seconds) override;
  Plot plot() const override;

  EvalResult evaluate_policy();
  const Params& policy_params() const { return pp_; }
  const EnvSpec& spec() const { return venv_.spec(); }
  // The cost so far: environment steps collected, optimiser steps on the policy.
  int64_t env_steps() const { return env_steps_; }
  int64_t policy_steps() const { return update_->policy_steps(); }
  // The update rule (e.g. to set a learned drift before the first iteration).
  PolicyUpdate& rule() { return *update_; }

 private:
  nlohmann::json iterate_offline(int iteration);

  std::string name_, env_name_;
  PolicyRunPlan plan_;
  VecEnv venv_, eval_env_;
  PolicyModels models_;
  std::unique_ptr<PolicyUpdate> update_;
  Params pp_, vp_;
  int threads_ = 1;
  int64_t env_steps_ = 0;
  std::optional<EvalResult> last_eval_;
  bool eval_current_ = false;  // last_eval_ is of the current parameters
};

// The shared machinery of the policy-gradient rules (REINFORCE, PPO): a policy
// and a value network, each with its own Adam, gradient clipping, and one
// minibatch step of each; the rules decide the order of steps. Two backends
// (pg.backend): LibTorch autograd, or the fast path (src/policy/fast_pg.h) on flat
// copies of the parameters between begin() and end(); the rules' code is the
// same for both.
class ActorCriticUpdate : public PolicyUpdate {
 public:
  ActorCriticUpdate(const Config& c, const std::string& prefix, const PolicyModels& m);
  void init(Params& policy, Params& value, uint64_t seed) override;
  double gamma() const override { return pg_.gamma; }
  double gae_lambda() const override { return pg_.gae_lambda; }
  double lr() const override { return optim_.lr; }
  bool anneal_lr() const override { return optim_.anneal_lr; }
  int64_t policy_steps() const override { return policy_adam_.steps(); }
  bool fast_backend() const override { return fast_ != nullptr; }
  void save(Archive& a, const std::string& prefix) const override;
  void load(const Archive& a, const std::string& prefix) override;

 protected:
  // All rows of the batch, advantages normalised if configured. With the
  // fast backend also copies pp and vp into the flat vectors the steps update.
  Minibatch begin(Batch& batch, const Params& pp, const Params& vp);
  // Writes the fast backend's flat parameters back into pp and vp (no-op for torch).
  void end(Params& pp, Params& vp) const;
  // One Adam step of the policy on `objective` (+ entropy bonus); returns the approx. KL.
  double policy_step(const Objective& objective, const Minibatch& mb, Params& pp, double lr_scale, UpdateStats& st);
  void value_step(const Minibatch& mb, Params& vp, double lr_scale, UpdateStats& st, int& value_steps);
  // pg.epochs passes over `all` in pg.minibatches shuffled minibatches (Rng(shuffle_seed));
  // stops early when `step` returns false. The fast backend gathers the rows
  // into its own buffers and hands `step` an empty Minibatch (the steps read
  // the gathered rows); a step given a non-empty one (REINFORCE's step on all
  // rows) gathers it first.
  void for_each_minibatch(const Minibatch& all, uint64_t shuffle_seed,
                          const std::function<bool(const Minibatch&)>& step);
  // Runs `policy_work` (all of the policy's steps of an update) and the value
  // network's pg.epochs x pg.minibatches steps (value_step on the minibatches
  // of for_each_minibatch). With the fast backend and threads >= 2 the value
  // steps run on a second thread beside the policy's: the two networks share
  // no state and each one's steps are the same operations in the same order,
  // so the result is bit-identical to running one after the other (tested).
  // Otherwise: policy_work, then the value steps.
  void policy_then_value(const Minibatch& all, uint64_t shuffle_seed, Params& vp, double lr_scale,
                         UpdateStats& st, int& value_steps, const std::function<void()>& policy_work);
  // True when policy_then_value runs the value steps on their own thread.
  bool parallel_value_fit() const { return value_fast_ != nullptr; }
  // Divides the sums in `st` by the step counts.
  static void average(UpdateStats& st, int value_steps);

  OptimSection optim_;
  PgSection pg_;
  const PolicyModels& models_;
  Adam policy_adam_, value_adam_;

 private:
  // The fast backend (null with torch): flat parameters, gradients, and the rows of the batch.
  std::unique_ptr<FastPolicyGradient> fast_;
  // With threads >= 2, a second instance whose buffers the value steps gather
  // into on their own thread (null: the value steps use fast_).
  std::unique_ptr<FastPolicyGradient> value_fast_;
  std::vector<float> fast_pp_, fast_vp_, fast_pg_, fast_vg_;
  FastRows fast_all_;
  FastPolicyGradient* value_gatherer() const { return value_fast_ ? value_fast_.get() : fast_.get(); }
  void for_each_minibatch(const Minibatch& all, uint64_t shuffle_seed, FastPolicyGradient* gatherer,
                          const std::function<bool(const Minibatch&)>& step);
};


}  // namespace ml3
