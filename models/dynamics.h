#pragma once
// A learned dynamics model for model-based meta-learning (docs/method.md,
// 4.5): an ensemble of E probabilistic MLPs, each predicting a diagonal
// Gaussian over the state change y = s' - s from input features x(s, a).
// Inputs and outputs are normalised with statistics frozen at the first fit
// (saved with the weights). The ensemble's prediction is the mean of its
// members' means; training minimises the Gaussian negative log-likelihood of
// every member. Members are batched: layer l of all members is one baddbmm
// over weights [E, in, out], and the same batched forward runs a pool of
// independent policies (src/testbeds/mbrl/mbrl.cpp).
#include <string>
#include <vector>

#include "models/nets.h"

namespace ml3 {

// x [B, N, sizes[0]] through B independent MLPs of `net`'s shape whose
// parameters have a leading dimension B (weights [B, in, out], biases
// [B, 1, out]); returns [B, N, sizes.back()].
Tensor batched_mlp_forward(const FunctionalMlp& net, const Tensor& x, const Params& params);
// B initialisations of `net` (FunctionalMlp::init with seeds[b]) stacked into
// batched parameters (requires_grad set).
Params batched_mlp_init(const FunctionalMlp& net, const std::vector<uint64_t>& seeds, double out_scale = 1.0);
// Parameters of member b (views; for saving one policy of a pool).
Params batched_member(const Params& params, int64_t b);
// The parameters of `net` (with biases) stored in archive `a` under `prefix`
// (put_params), each checked against the layer sizes: ml3::Error naming the
// archive's file when a shape does not match.
Params get_mlp_params(const Archive& a, const std::string& prefix, const FunctionalMlp& net);

// The loss files of the testbeds whose learned loss is one ELU MLP with
// biases (mountain car, the model-based reacher): an archive of `kind` with
// metadata "format", "sizes" and the caller's keys, the parameters under
// "phi/". The one reader and writer of both (the policy losses of ML3 are
// LearnedLoss files; the sine testbed's are LibTorch-free).
void write_mlp_loss_file(const std::string& path, const std::string& kind, const FunctionalMlp& net,
                         const Params& phi, nlohmann::json meta);
struct MlpLossFile {
  FunctionalMlp net;
  Params phi;
  nlohmann::json meta;
};
// Checks the kind, the sizes (`inputs`-...-1) and that every value is
// finite; `what` names the loss in messages ("mountain car", "mbrl").
MlpLossFile load_mlp_loss_file(const std::string& path, const std::string& kind, int inputs, const std::string& what);

struct DynamicsSpec {
  int in_dim = 0, out_dim = 0, members = 5;
  std::vector<int> hidden{64, 64};
  // Log-variance of a member's Gaussian (normalised units), softly bounded.
  double min_logvar = -10.0, max_logvar = 0.5;
};

class DynamicsEnsemble {
 public:
  DynamicsEnsemble() = default;
  DynamicsEnsemble(const DynamicsSpec& spec, uint64_t seed);

  const DynamicsSpec& spec() const { return spec_; }
  Params& params() { return params_; }
  const Params& params() const { return params_; }
  bool normalised() const { return in_mean_.defined(); }
  // Freezes the normalisation statistics from inputs x [N, in] and targets y [N, out].
  void set_normalisation(const Tensor& x, const Tensor& y);
  // Per member: mean and log-variance [E, N, out] of the normalised target,
  // for inputs x [E, N, in] (raw units; every member its own rows).
  std::pair<Tensor, Tensor> member_outputs(const Tensor& x) const;
  // Mean Gaussian NLL over members, rows and dimensions (normalised units,
  // constant dropped); x [E, N, in], y [E, N, out].
  Tensor nll(const Tensor& x, const Tensor& y) const;
  // The ensemble's prediction of y in raw units for x [..., in]: the mean of
  // the members' means; differentiable w.r.t. x.
  Tensor predict(const Tensor& x) const;
  // A float64 copy (gradient checks).
  DynamicsEnsemble to_float64() const;

  // The model file (kind "dynamics_model"): spec, statistics, weights and
  // `meta` (what the features are, the kinematics, how it was fitted).
  void save(const std::string& path, const nlohmann::json& meta) const;
  static DynamicsEnsemble load(const std::string& path, nlohmann::json* meta = nullptr);
  // Into/out of an archive under `prefix` (checkpoints hold one).
  void put(Archive& a, const std::string& prefix) const;
  static DynamicsEnsemble get(const Archive& a, const std::string& prefix);

 private:
  DynamicsSpec spec_;
  FunctionalMlp net_;  // in -> hidden -> 2 out (mean, raw log-variance), ELU
  Params params_;
  Tensor in_mean_, in_std_, out_mean_, out_std_;
};

}  // namespace ml3
