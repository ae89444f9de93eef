#pragma once
// Policy-gradient core: rollout collection into a trajectory batch, GAE with
// correct truncation bootstrapping, the objective interface (REINFORCE, PPO;
// the learned loss is a third implementation), a hand-written Adam whose state
// checkpoints exactly, and deterministic evaluation.
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "envs/vec_env.h"
#include "models/nets.h"

namespace ml3 {

// T steps x N episodes. Rows of an env after it terminated have mask 0 (no
// env of the suite terminates early; the code supports it).
struct Batch {
  int T = 0, N = 0;
  Tensor obs;        // [T, N, obs_dim] normalised (what the policy saw), float32
  Tensor raw_obs;    // [T, N, obs_dim] as the env returned them, float32
  Tensor actions;    // [T, N, act_dim] unclipped samples
  Tensor logp;       // [T, N] log-prob at collection
  Tensor rewards;    // [T, N]
  Tensor terminated, truncated, mask;  // [T, N] 0/1
  Tensor trunc_obs;  // [T, N, obs_dim] normalised next obs where truncated (else 0)
  Tensor values;     // [T, N] V(obs) (filled by compute_values)
  Tensor bootstrap;  // [T, N] V(trunc_obs) where truncated (else 0)
  Tensor goals;      // [T, N, goal_dim] (one goal per episode, repeated over t)
  Tensor time_frac;  // [T, N] t / T
  Tensor rtg;        // [T, N] discounted reward-to-go within the episode (compute_rtg)
  Tensor returns, advantages;  // [T, N] (compute_gae)
  // Episode statistics.
  double return_mean = 0, success_rate = 0, final_distance_mean = 0;
  int64_t steps() const { return static_cast<int64_t>(T) * N; }
};

// Runs one episode per env of `venv` on `tasks` (one per env). Action noise
// of env i comes from Rng(mix_seed(seed, i)): results do not depend on the
// thread count. deterministic: act with the mean.
Batch collect(VecEnv& venv, const GaussianPolicy& policy, const Params& params, const ObsNormalizer& norm,
              const std::vector<Task>& tasks, uint64_t seed, bool deterministic);

// Fills values and bootstrap with the value network.
void compute_values(Batch& b, const FunctionalMlp& value_net, const Params& vparams);
// GAE(lambda): delta_t = r_t + gamma * next_v - v_t with next_v = bootstrap_t
// at truncation, 0 at termination, v_{t+1} otherwise; the recursion stops at
// both. returns = advantages + values. lambda = 1 gives REINFORCE's
// discounted return-to-go minus the baseline.
void compute_gae(Batch& b, double gamma, double lambda);

// Discounted reward-to-go (no bootstrap): the Monte-Carlo return a learned
// loss sees as the "return-to-go" feature.
void compute_rtg(Batch& b, double gamma);

struct EvalResult {
  int episodes = 0;
  double success_rate = 0, final_distance_mean = 0, return_mean = 0;
};
// Deterministic policy (mean action) on `episodes` goals of `split`.
EvalResult evaluate(VecEnv& venv, const GaussianPolicy& policy, const Params& params, const ObsNormalizer& norm,
                    Split split, int episodes, uint64_t seed);

// ---- objectives -----------------------------------------------------------------
// What the current policy says about a minibatch (differentiable).
struct PolicyEval {
  Tensor mean, log_std, logp, entropy;
};
// A minibatch: flattened rows of a Batch ([B, ...]).
struct Minibatch {
  Tensor obs, raw_obs, actions, old_logp, advantages, returns, rewards, mask, time_frac, goals, rtg;
};
// All rows of running episodes of a batch (advantages/returns only if computed).
Minibatch flatten_batch(const Batch& b);
// The policy's (differentiable) outputs on a minibatch.
PolicyEval policy_eval(const GaussianPolicy& policy, const Params& params, const Minibatch& mb);

struct LossStats {
  double approx_kl = 0, clip_fraction = 0;
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  // Scalar policy loss to minimise.
  virtual Tensor policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats* stats) const = 0;
};

// -mean(log pi(a|s) * A)
class ReinforceObjective : public Objective {
 public:
  std::string name() const override { return "reinforce"; }
  Tensor policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats* stats) const override;
};

// Clipped surrogate: -mean(min(r A, clip(r, 1-eps, 1+eps) A)), r = pi/pi_old.
class PpoObjective : public Objective {
 public:
  explicit PpoObjective(double clip) : clip_(clip) {}
  std::string name() const override { return "ppo"; }
  Tensor policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats* stats) const override;

 private:
  double clip_;
};

// ---- optimiser --------------------------------------------------------------------
// Adam on an explicit parameter list (in place, no grad). State: step, m, v.
class Adam {
 public:
  Adam() = default;
  Adam(const Params& params, double eps, double beta1 = 0.9, double beta2 = 0.999);
  void step(Params& params, const std::vector<Tensor>& grads, double lr);
  void save(Archive& a, const std::string& prefix) const;
  void load(const Archive& a, const std::string& prefix);
  int64_t steps() const { return t_; }

 private:
  double eps_ = 1e-8, b1_ = 0.9, b2_ = 0.999;
  int64_t t_ = 0;
  std::vector<Tensor> m_, v_;
};

// Global L2 norm of grads; scales them in place to at most max_norm (if > 0).
// Returns the norm before clipping (non-finite when any grad is).
double clip_grad_norm(std::vector<Tensor>& grads, double max_norm);

// ---- learner --------------------------------------------------------------------
struct LearnerConfig {
  std::string algorithm = "ppo";  // ppo | reinforce
  double lr = 3e-4, value_lr = 1e-3, adam_eps = 1e-5;
  double gamma = 0.99, gae_lambda = 0.95;
  bool normalize_advantages = true;
  double entropy_coef = 0.0, max_grad_norm = 0.5;
  int epochs = 10, minibatches = 32;  // PPO: policy and value; REINFORCE: value only
  double clip = 0.2, target_kl = 0.0;
  // "ml3": one plain SGD step (lr) per iteration on the learned loss passed to
  // the learner; no value network, no clipping (as at meta-train time).
};

struct UpdateStats {
  double policy_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clip_fraction = 0, grad_norm = 0;
  int policy_updates = 0;
};

// Thrown when a loss or gradient is not finite: the update is not applied.
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class PolicyGradientLearner {
 public:
  PolicyGradientLearner(const LearnerConfig& cfg, const GaussianPolicy& policy, const FunctionalMlp& value_net);
  // With an objective of the caller's (the learned loss): algorithm "ml3".
  PolicyGradientLearner(const LearnerConfig& cfg, const GaussianPolicy& policy, const FunctionalMlp& value_net,
                        std::unique_ptr<Objective> objective);
  // One iteration's update on a collected batch; lr_scale multiplies both
  // learning rates (annealing). Shuffling uses Rng(shuffle_seed).
  UpdateStats update(Batch& batch, Params& policy_params, Params& value_params, double lr_scale,
                     uint64_t shuffle_seed);
  Adam& policy_adam() { return policy_adam_; }
  Adam& value_adam() { return value_adam_; }
  void init_optimizers(const Params& policy_params, const Params& value_params);

 private:
  LearnerConfig cfg_;
  const GaussianPolicy& policy_;
  const FunctionalMlp& value_net_;
  std::unique_ptr<Objective> objective_;
  Adam policy_adam_, value_adam_;
};

}  // namespace ml3

namespace ml3 {
// Networks of a run, built from a training config (policy.*, value.*).
struct PolicySetup {
  GaussianPolicy policy;
  FunctionalMlp value_net;
  ObsNormalizer norm;
};
PolicySetup make_policy_setup(const Config& c, int obs_dim, int act_dim);
LearnerConfig learner_config(const Config& c);
}  // namespace ml3
