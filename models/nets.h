#pragma once
// Functional networks: parameters are an explicit list of tensors passed to
// forward(), so the same network runs with updated, still-differentiable
// parameters (ML3's inner step; see docs/method.md). Initialisation uses the
// project's own RNG, so weights are identical on every platform and thread
// count.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/archive.h"
#include "core/obs_norm.h"
#include "core/small_mlp.h"  // Activation

namespace ml3 {

using Tensor = at::Tensor;
using Params = std::vector<Tensor>;

// mean over rows of |a - b|^2 summed over the last dimension: the imitation
// error of actions (behaviour cloning, shaping terms, the target network).
Tensor squared_action_error(const Tensor& a, const Tensor& b);

Activation parse_activation(const std::string& name);  // tanh | relu | elu
const char* activation_name(Activation a);

// MLP sizes[0] -> ... -> sizes.back(); `act` between layers, none at the
// output. Weights are stored transposed (in x out) so a layer is one addmm.
class FunctionalMlp {
 public:
  FunctionalMlp() = default;
  FunctionalMlp(std::vector<int> sizes, Activation act, bool bias = true);

  // Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) like torch.nn.Linear; the last
  // layer's weights are multiplied by `out_scale` (e.g. 0.01 for a policy head).
  Params init(uint64_t seed, double out_scale = 1.0, bool float64 = false) const;
  // x: [..., sizes[0]]; uses params[offset .. offset + num_tensors()).
  Tensor forward(const Tensor& x, const Params& params, size_t offset = 0) const;
  size_t num_tensors() const { return (sizes_.size() - 1) * (bias_ ? 2 : 1); }
  const std::vector<int>& sizes() const { return sizes_; }
  Activation activation() const { return act_; }
  bool bias() const { return bias_; }

 private:
  std::vector<int> sizes_;
  Activation act_ = Activation::Tanh;
  bool bias_ = true;
};

// Diagonal Gaussian policy over an MLP mean with a state-independent learned
// log-std (clamped to [log_std_min, log_std_max]). Actions are sampled
// unbounded and *clipped by the environment* to its bounds; the log-prob is
// that of the unclipped sample (as in CleanRL / SB3 PPO), which is exact for
// the pre-clip action the learner optimises. Evaluation uses the mean.
struct PolicyConfig {
  std::vector<int> hidden{64, 64};
  Activation activation = Activation::Tanh;
  double init_log_std = -0.5;
  double log_std_min = -5.0, log_std_max = 1.0;
};

class GaussianPolicy {
 public:
  GaussianPolicy() = default;
  GaussianPolicy(int obs_dim, int act_dim, const PolicyConfig& cfg);
  Params init(uint64_t seed, bool float64 = false) const;  // mlp params + log_std
  Tensor mean(const Tensor& obs, const Params& p) const { return mlp_.forward(obs, p); }
  Tensor log_std(const Params& p) const;
  // Sum over action dims of log N(a; mean, std): shape [...].
  Tensor log_prob(const Tensor& mean, const Tensor& log_std, const Tensor& actions) const;
  Tensor entropy(const Tensor& log_std) const;  // scalar, per sample
  int obs_dim() const { return obs_dim_; }
  int act_dim() const { return act_dim_; }
  const FunctionalMlp& mlp() const { return mlp_; }
  const PolicyConfig& config() const { return cfg_; }
  // Rollouts and evaluation compute the mean with core/small_mlp.h (the
  // forward of the deployment runtime) instead of LibTorch: set for the fast
  // policy-gradient backend (pg.backend = fast), so that its training,
  // evaluation and deployment run one forward implementation.
  void set_small_forward(bool on) { small_forward_ = on; }
  bool small_forward() const { return small_forward_; }

 private:
  int obs_dim_ = 0, act_dim_ = 0;
  bool small_forward_ = false;
  PolicyConfig cfg_;
  FunctionalMlp mlp_;
};

// Sets LibTorch's intra-op threads and the BLAS library's own thread pool
// (OpenBLAS spins its idle threads with sched_yield: left at the core count
// it burns the core the batched environment needs).
void set_compute_threads(int threads);

// The kernels the BLAS library chose for this CPU ("OpenBLAS Zen", from
// openblas_get_corename; "not OpenBLAS" otherwise). OpenBLAS picks them when
// it loads; the environment variable OPENBLAS_CORETYPE overrides the choice.
std::string blas_kernels();

// Tensors <-> archive entries (exact bytes).
void put_params(Archive& a, const std::string& prefix, const Params& params);
Params get_params(const Archive& a, const std::string& prefix, size_t count);
// get_params, checking that the tensors have the shapes of `expected` (the
// configured network's); `what` names them in the error.
Params checked_params(const Archive& a, const std::string& prefix, const Params& expected, const std::string& what);
// True when every value of every tensor is finite.
bool all_finite(const Params& params);
// Copies of the tensors, detached (optionally requiring grad).
Params clone_params(const Params& params, bool requires_grad);
// The tensors as one flat vector (their order, each row-major; converted to T:
// float or double), and back into existing tensors of the same total size
// (converted to each tensor's type). The flat form is what the hand-written
// learners (the fast backend, the mountain car engine) step.
template <typename T>
std::vector<T> flat_params(const Params& params);
template <typename T>
void set_from_flat(const std::vector<T>& flat, Params& params);

}  // namespace ml3
