#pragma once
// Policy-gradient core: rollout collection into a trajectory batch, GAE with
// correct truncation bootstrapping, the objectives (REINFORCE, PPO), a
// hand-written Adam whose state checkpoints exactly, and deterministic
// evaluation. The update rules built from them are in src/policy/ and src/ml3/.
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "envs/vec_env.h"
#include "models/nets.h"
#include "src/policy/drift.h"
#include "src/policy/fast_pg.h"

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
  Tensor expert;     // [T, N, act_dim] the scripted expert's action in each state (only if asked for)
  Tensor time_frac;  // [T, N] t / T
  Tensor rtg;        // [T, N] discounted reward-to-go within the episode (compute_rtg)
  Tensor returns, advantages;  // [T, N] (compute_gae)
  // Episode statistics.
  double return_mean = 0, success_rate = 0, final_distance_mean = 0;
  int64_t steps() const { return static_cast<int64_t>(T) * N; }
};

// Runs one episode per env of `venv` on `tasks` (one per env). Action noise
// of env i comes from Rng(mix_seed(seed, i)): results do not depend on the
// thread count. deterministic: act with the mean. expert_labels: also record
// the scripted expert's action in every visited state (Batch::expert), the
// labels of DAgger-style shaping; they do not change the episode.
Batch collect(VecEnv& venv, const GaussianPolicy& policy, const Params& params, const ObsNormalizer& norm,
              const std::vector<Task>& tasks, uint64_t seed, bool deterministic, bool expert_labels = false);

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
  Tensor expert;  // the expert's actions, when the batch has them
};
// All rows of running episodes of a batch (advantages/returns only if computed).
Minibatch flatten_batch(const Batch& b);
// A random permutation of 0..n-1 (Fisher-Yates on `rng`), and the rows
// perm[start .. start + n) of a minibatch: the shuffled minibatches of an epoch.
std::vector<int64_t> permutation(int64_t n, Rng& rng);
Minibatch select_rows(const Minibatch& all, const std::vector<int64_t>& perm, int64_t start, int64_t n);
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
  // The same loss for the fast backend (src/policy/fast_pg.h).
  virtual PgLoss fast_kind() const = 0;
  virtual double clip() const { return 0.0; }
  // PPO's learned drift (null: none) and the training progress it reads.
  virtual Drift* drift() const { return nullptr; }
  virtual double progress() const { return 0.0; }
};

// -mean(log pi(a|s) * A)
class ReinforceObjective : public Objective {
 public:
  std::string name() const override { return "reinforce"; }
  Tensor policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats* stats) const override;
  PgLoss fast_kind() const override { return PgLoss::Reinforce; }
};

// Clipped surrogate: -mean(min(r A, clip(r, 1-eps, 1+eps) A)), r = pi/pi_old;
// with a learned drift (src/policy/drift.h), plus mean(d(r, A, progress)).
class PpoObjective : public Objective {
 public:
  explicit PpoObjective(double clip) : clip_(clip) {}
  std::string name() const override { return "ppo"; }
  Tensor policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats* stats) const override;
  PgLoss fast_kind() const override { return PgLoss::Ppo; }
  double clip() const override { return clip_; }
  // The drift (not owned; null: none) and the training progress in [0, 1).
  void set_drift(Drift* d) { drift_ = d; }
  void set_progress(double p) { progress_ = p; }
  Drift* drift() const override { return drift_; }
  double progress() const override { return progress_; }

 private:
  double clip_;
  Drift* drift_ = nullptr;
  double progress_ = 0.0;
};
// The drift's value per row on LibTorch tensors (differentiable in ratio):
// the reference the fast backend's hand-written gradient is tested against.
Tensor drift_values(const Drift& d, const Tensor& ratio, const Tensor& log_ratio, const Tensor& adv, double progress);

// ---- optimiser --------------------------------------------------------------------
// Adam on an explicit parameter list (in place, no grad), with the one Adam
// kernel of core/adam.h (PyTorch's formula). State: step, m, v; m and v are
// views of one flat vector each, in the order of the parameter list, so the
// fast path (pg.backend = fast) steps all parameters as one flat float vector
// with the same state (and the same checkpoint entries).
class Adam {
 public:
  Adam() = default;
  Adam(const Params& params, double eps, double beta1 = 0.9, double beta2 = 0.999);
  void step(Params& params, const std::vector<Tensor>& grads, double lr);
  // One step on the parameters concatenated into `params` (n floats, the sum
  // of the list's sizes; float32 parameters only).
  void step_flat(float* params, const float* grads, size_t n, double lr);
  void save(Archive& a, const std::string& prefix) const;
  void load(const Archive& a, const std::string& prefix);
  int64_t steps() const { return t_; }

 private:
  double eps_ = 1e-8, b1_ = 0.9, b2_ = 0.999;
  int64_t t_ = 0;
  Tensor m_flat_, v_flat_;
  std::vector<Tensor> m_, v_;  // views of m_flat_, v_flat_
};

// Global L2 norm of grads; scales them in place to at most max_norm (if > 0).
// Returns the norm before clipping (non-finite when any grad is).
double clip_grad_norm(std::vector<Tensor>& grads, double max_norm);

}  // namespace ml3
