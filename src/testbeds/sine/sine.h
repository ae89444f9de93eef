#pragma once
// ML3's supervised sine-regression experiment (the paper, Bechtle et al. 2021,
// section IV.A; docs/method.md): meta-learn a loss M_phi(prediction, target)
// such that one SGD step of a freshly initialised regressor on
// mean_i softplus(M_phi(f_theta(x_i), t_i)) lowers the MSE, then train new
// regressors (also of other architectures) with M_phi alone.
//
// Two implementations of the meta-gradient dL_T(theta')/dphi through the inner
// step theta' = theta - alpha * dL_in/dtheta:
//   - "eigen": hand-derived, forward-over-reverse, one inner step only. Since
//     the regressor's outputs y_i at theta do not depend on phi,
//       dL_T/dphi = -alpha * dS/dphi,  S = (1/n) sum_i ydot_i * d ell(y_i, t_i)/dy,
//     with v = dL_T/dtheta' and ydot = J_theta(y) v (a JVP at the original
//     theta); d ell/dy = sigmoid(o) * odot, odot the tangent of the loss net's
//     pre-softplus output along the input direction [1, 0].
//   - "autograd": LibTorch with create_graph=true, any number K of unrolled
//     inner steps; the reference the fast path is tested against.
//
// Parameters travel as flat vectors, layer by layer: W [in x out] row-major,
// then b [out] if the network has biases (the order of FunctionalMlp's tensor
// list). This header is LibTorch-free.
//
// The folder: config.cpp (schema, config and problem checks), data.cpp (tasks,
// data, MLP shapes, initialisation), eigen_engine.cpp and torch_engine.cpp (the
// two meta-gradient engines behind engine.h; torch_engine.cpp is the only file
// here that includes LibTorch), loss_file.cpp (the sine_loss archive),
// meta_learner.cpp (the engine entry points and SineMetaLearner), drivers.cpp
// (meta-train, meta-test, benchmark); internal.h holds what they share.
#include <cmath>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/archive.h"
#include "core/config.h"

namespace ml3 {

// ---- configuration -------------------------------------------------------------
// Keys: kind, seed, torch_threads, sine.* (see sine_schema() for the docs).
Schema sine_schema();
// The sine.* keys alone (the registry adds seed, threads, torch_threads, algorithm).
void declare_sine(Schema& s);
// Combinations of keys the schema cannot express (eigen: one inner step).
void check_sine_config(const Config& cfg);
// Schema defaults, then the YAML file (if `path` is non-empty), then overrides.
Config load_sine_config(const std::string& path, const std::vector<std::string>& overrides = {});

// ---- the two models --------------------------------------------------------------
// Mlp: the paper's first experiment, an MLP regressor of y = A sin(x - p), the
// learned loss sees [prediction, target] (ReLU, no biases, softplus output).
// Frequency: the shaping experiment (paper section IV.B), y = sin(theta x) with
// one parameter theta; the learned loss sees [x, prediction, target] (ELU,
// biases, linear output: the reference's Ml3_loss_shaped_sine). Its theta is
// stored as a 1x1 weight without bias, so the flat layout stays an MLP's.
enum class SineModel { Mlp, Frequency };
SineModel parse_sine_model(const std::string& name);  // "mlp" | "frequency"
const char* sine_model_name(SineModel m);

// ---- tasks and data ------------------------------------------------------------
// Mlp model: y = amplitude * sin(x - phase), x ~ U[x_min, x_max].
// Frequency model: y = sin(frequency * x) (amplitude and phase unused).
struct SineTask {
  double amplitude = 1.0;
  double phase = 3.141592653589793;
  double x_min = -2.0, x_max = 2.0;
  double frequency = std::nan("");  // set: the frequency model's task
};
struct SineData {
  std::vector<double> x, y;  // `points` values each
  double theta_star = std::nan("");  // the true parameter (frequency tasks): shaping's extra information
};
// The meta-training task: A = 1, p = pi, x in [-2, 2].
SineTask sine_train_task();
// `count` out-of-distribution tasks: A ~ U[0.2, 5], p ~ U[-pi, pi], x in [-5, 5].
std::vector<SineTask> sine_test_tasks(int count, uint64_t seed);
SineData sample_sine_data(const SineTask& task, int points, uint64_t seed);
// A frequency task's data: theta* = `frequency`, x ~ U[-5, 5] (or the grid
// -5, -4.9, ..., 4.9 of the reference's test when `grid`).
SineData frequency_data(double frequency, int points, uint64_t seed, bool grid = false);

// ---- networks --------------------------------------------------------------------
// An MLP with ReLU between layers and a linear output.
struct MlpShape {
  std::vector<int> sizes;  // input, hidden..., output
  bool bias = true;
  size_t num_layers() const { return sizes.size() - 1; }
  size_t num_params() const;
  size_t weight_offset(size_t layer) const;  // into the flat vector
  size_t bias_offset(size_t layer) const;    // requires bias
};
// Regressor 1 - hidden... - 1, ReLU, with biases.
MlpShape sine_regressor_shape(const std::vector<int>& hidden);
// Learned loss 2 - hidden... - 1, ReLU, no biases; softplus is applied to its
// output; input [prediction, target]. Frequency model: 3 - hidden... - 1, ELU,
// biases, linear output; input [x, prediction, target].
MlpShape sine_loss_shape(const std::vector<int>& hidden, SineModel model = SineModel::Mlp);
// The frequency model's parameter vector: a 1x1 weight, no bias.
MlpShape frequency_model_shape();

enum class SineInit {
  Torch,   // W, b ~ U(+-1/sqrt(fan_in)): nn.Linear's default and FunctionalMlp::init's draw order
  Xavier,  // W ~ U(+-sqrt(6/(fan_in+fan_out))), b = 0: the reference's reset()
};
SineInit parse_sine_init(const std::string& name);  // "torch" | "xavier"
std::vector<double> init_mlp_params(const MlpShape& shape, SineInit init, uint64_t seed);

// ---- the meta-gradient -----------------------------------------------------------
enum class SineImpl { Eigen, Autograd };
SineImpl parse_sine_impl(const std::string& name);  // "eigen" | "autograd"
const char* sine_impl_name(SineImpl impl);

struct SineProblem {
  SineModel model = SineModel::Mlp;
  MlpShape regressor, loss;
  double inner_lr = 1e-3;
  int inner_steps = 1;    // K (eigen: 1 only)
  bool float64 = false;   // compute in double (else float)
  // Frequency model only: the task loss is |theta_K - theta*| (the data's
  // theta_star) instead of the MSE (autograd only).
  bool shaping = false;
};

struct MetaGradient {
  double task_loss = 0;   // L_T(theta_K)
  double inner_loss = 0;  // L_in(theta_0)
  std::vector<double> grad;  // dL_T/dphi, flat like phi
  std::vector<double> theta_after;  // theta_K
};

// dL_T(theta_K)/dphi with theta_{k+1} = theta_k - inner_lr * dL_in(theta_k)/dtheta.
// Throws ml3::Error for eigen with inner_steps != 1 and on size mismatches.
MetaGradient sine_meta_gradient(SineImpl impl, const SineProblem& problem, const std::vector<double>& theta,
                                const std::vector<double>& phi, const SineData& data);

// L_T(theta_K) in double (plain inner steps, no meta-gradient): for finite
// differences. `relu_margin` (optional) receives the smallest |pre-activation|
// of any ReLU in every forward pass involved, so a test can check that a
// perturbation of size eps crosses no kink.
double sine_task_loss_after_inner(const SineProblem& problem, const std::vector<double>& theta,
                                  const std::vector<double>& phi, const SineData& data,
                                  double* relu_margin = nullptr);

// Trains a regressor from `theta` with `steps` plain SGD steps of size `lr` on
// the learned loss (`phi` non-empty) or on the MSE (`phi` empty). Returns the
// MSE on `data` before each step and after the last one (steps + 1 values);
// `theta` is updated in place.
std::vector<double> sine_train_regressor(SineImpl impl, const SineProblem& problem, std::vector<double>& theta,
                                         const std::vector<double>& phi, const SineData& data, double lr,
                                         int steps);

// ---- the learned-loss file ---------------------------------------------------------
// An Archive of kind "sine_loss": meta {format, sizes, input, activation, output,
// float64, implementation, seed, ...} and one blob per layer ("phi.0", ...,
// shape [in, out], f32 or f64 as trained).
struct SineLoss {
  SineModel model = SineModel::Mlp;  // which model's loss (its inputs, activation, biases)
  std::vector<int> sizes;  // 2 (frequency: 3), hidden..., 1
  bool float64 = false;    // stored precision (float values are stored exactly)
  std::vector<double> phi;
};
// `extra_meta` entries are added to the file's metadata (e.g. seed, iterations).
void save_sine_loss(const std::string& path, const SineLoss& loss,
                    const nlohmann::json& extra_meta = nlohmann::json::object());
// Validates kind, sizes and blob shapes; ml3::Error naming the file otherwise.
SineLoss load_sine_loss(const std::string& path);

// ---- meta-training -----------------------------------------------------------------
// phi, its Adam state and the meta-training data; one step() = re-initialise the
// regressor (seeded by the iteration), meta-gradient, Adam update of phi.
class SineMetaLearner {
 public:
  explicit SineMetaLearner(const Config& cfg);
  ~SineMetaLearner();
  SineMetaLearner(const SineMetaLearner&) = delete;
  SineMetaLearner& operator=(const SineMetaLearner&) = delete;

  struct Step {
    double task_loss = 0, inner_loss = 0, grad_norm = 0;
  };
  // Throws ml3::Error when the task loss or the gradient is not finite.
  Step step(int iteration);
  SineLoss loss() const;
  // phi and its Adam state (resume gives the same numbers as an uninterrupted run).
  void save(Archive& a, const std::string& prefix) const;
  void load(const Archive& a, const std::string& prefix);
  const SineProblem& problem() const;
  const SineData& data() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Meta-training runs under the runner as the registry's `sine` algorithm
// (src/testbeds/sine/sine_ml3.cpp): ml3 meta-train --config configs/sine_ml3.yaml.

// Meta-test of a learned loss on sine.test_tasks OOD tasks x sine.test_seeds
// regressor initialisations, for sine.regressor_hidden and sine.transfer_hidden:
// sine.test_steps SGD steps (lr sine.inner_lr) on the learned loss vs on the
// MSE, from the same initialisation. Returns JSON text:
// {"split": "ood", "tasks", "seeds", "steps", "loss_file", "regressor": {"hidden",
//  "mse_initial", "mse_learned_loss", "mse_mse", "learned_better_fraction",
//  "per_task": [...]}, "transfer": {...}}.
std::string run_sine_meta_test(const std::string& loss_file, const Config& cfg, bool quiet);

// The loss landscape of a learned loss (JSON for tools/plot.py's `landscape`
// mode, `points` samples per axis). Frequency model: the learned loss, the
// MSE and |theta - theta*| over theta in [-7, 7] on the meta-test task
// (1-D, the paper's figure), and the learned loss and the MSE over theta x
// theta* (2-D; the model has one parameter). Mlp model: on the first meta-test
// task, along the line from a fresh regressor theta0 (a = 0) to the one trained
// with the learned loss (a = 1), and over the plane of that line and a random
// direction of the same length.
std::string sine_landscape(const std::string& loss_file, const Config& cfg, int points);

// Median wall time (ms) of one meta step with `cfg` over `steps` steps (after a
// short warm-up): the benchmark.
double sine_meta_step_ms(const Config& cfg, int steps);

}  // namespace ml3
