#pragma once
// The learned loss M_phi of ML3 (see docs/method.md): an MLP over
// per-timestep features with a softplus output, averaged over the batch. It
// depends on the policy parameters through the policy's outputs (its mean
// action and the log-probability of the taken action), so its gradient
// trains the policy. Features are chosen by name; their normalisation
// statistics (running mean/std gathered while meta-training, then frozen) are
// saved with the weights in a checksummed, self-describing file.
#include <string>
#include <vector>

#include "models/nets.h"

namespace ml3 {

// Per-timestep inputs, rows [B, ...]. `mean` and `logp` carry the policy's
// graph; everything else is data. `old_logp` (the log-probability of the
// action when it was sampled) and `advantages` are read only by the anchor.
struct LossFeatureInputs {
  Tensor obs, goal, action, reward, rtg, time, mean, logp;
  Tensor old_logp, advantages;
};

// Known feature names, in the order they are concatenated.
const std::vector<std::string>& loss_feature_names();

struct LearnedLossSpec {
  std::vector<std::string> features;  // subset of loss_feature_names()
  std::vector<int> hidden{32, 32};
  Activation activation = Activation::Tanh;
  int obs_dim = 0, act_dim = 0, goal_dim = 0;
  // Scale of the output layer at initialisation. Small: an untrained loss
  // then pushes policies only gently, instead of driving a pool of policies
  // off in an arbitrary direction before meta-training has shaped it.
  double init_scale = 0.01;
  // Optional structured term: target_weight * |mean - T(obs)|^2 with T an MLP
  // over the raw observation (obs -> action), its parameters appended to phi.
  // Empty target_hidden: no such term. T starts at zero output (or pre-fitted).
  std::vector<int> target_hidden;
  double target_weight = 1.0;
  // Optional anchor: anchor_weight * PPO's clipped surrogate
  // -mean(min(r A, clip(r, 1 - anchor_clip, 1 + anchor_clip) A)), r =
  // exp(logp - old_logp), A the inputs' advantages. The learned network is
  // then a correction to a known objective: at initialisation (a near-constant
  // network) the loss trains policies as that surrogate does. 0: no anchor.
  double anchor_weight = 0.0;
  double anchor_clip = 0.2;
};

// Parses "obs,goal,policy_mean" (or "all"); unknown names raise ml3::Error.
std::vector<std::string> parse_loss_features(const std::string& text);

class LearnedLoss {
 public:
  LearnedLoss() = default;
  explicit LearnedLoss(const LearnedLossSpec& spec);

  int input_dim() const { return input_dim_; }
  const LearnedLossSpec& spec() const { return spec_; }
  Params init(uint64_t seed, bool float64 = false) const;  // output layer scaled by spec.init_scale
  bool has_target() const { return !spec_.target_hidden.empty(); }
  // T(obs) of the target term (requires has_target()).
  Tensor target(const Tensor& obs, const Params& phi) const;
  // The target network's slice of phi (shares the tensors: training them trains phi).
  Params target_params(const Params& phi) const;

  // [B, input_dim] in the spec's feature order (not normalised).
  Tensor features(const LossFeatureInputs& in) const;
  // mean_b softplus(MLP(normalise(features)))
  Tensor loss(const Tensor& features, const Params& phi) const;
  // With the target term when the spec has one.
  Tensor loss(const LossFeatureInputs& in, const Params& phi) const;

  // Running normalisation statistics (detached). The policy_mean block is
  // normalised in action units: its statistics come from the sampled actions
  // (the mean of a freshly initialised policy is ~0 with a tiny spread, and
  // dividing by that spread would make the loss explode with the policy).
  void update_stats(const LossFeatureInputs& in);
  // The same in two halves: the rows a batch adds (float64 [B, input_dim]),
  // and adding them (distributed runs gather the rows of every rank first).
  Tensor stat_rows(const LossFeatureInputs& in) const;
  void update_stats_rows(const Tensor& rows);
  double stats_count() const { return moments_.count; }

  // Into/out of an archive under `prefix` (checkpoints hold one too).
  void put(Archive& a, const std::string& prefix, const Params& phi) const;
  static LearnedLoss get(const Archive& a, const std::string& prefix, Params* phi);

  // Loss file: kind "learned_loss". extra_meta is stored alongside (e.g. the
  // env and meta-training run it came from).
  void save(const std::string& path, const Params& phi, const nlohmann::json& extra_meta) const;
  static LearnedLoss load(const std::string& path, Params* phi, nlohmann::json* meta = nullptr);
  // Throws ml3::Error if the loss was made for other observation/action sizes.
  void check_dims(int obs_dim, int act_dim, int goal_dim, const std::string& where) const;

 private:
  void refresh_norm();
  LearnedLossSpec spec_;
  FunctionalMlp mlp_, target_;
  int input_dim_ = 0;
  RunningMoments moments_;
  Tensor norm_mean_, norm_inv_std_;  // float64 copies of the statistics
};

}  // namespace ml3
