#pragma once
// ml3_runtime: runs a policy exported by `ml3 export` (a .ml3p file, format in
// docs/deploy.md) without LibTorch or MuJoCo. C++17, no dependencies beyond
// the standard library.
//
//   ml3::runtime::Policy policy = ml3::runtime::Policy::load("reacher.ml3p");
//   std::vector<double> obs(policy.info().obs_dim), action(policy.info().act_dim);
//   ...                                   // every control period:
//   policy.act(obs.data(), action.data());  // deterministic, within the bounds
//
// act() computes exactly what the trained policy does deterministically
// (`ml3 eval`): normalise the observation with the training run's statistics,
// the MLP mean, clipped to the action bounds. It allocates nothing. An
// observation with a NaN or infinity gives the safe action (see act()) and is
// counted in faults(). One Policy must not be used by two threads at once
// (it owns its scratch buffers); copy it per thread.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ml3::runtime {

// A file that is missing, truncated, corrupt, of another format version or
// inconsistent: the message names the file and what was expected.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr uint32_t kFormatVersion = 1;

enum class Activation : uint32_t { Tanh = 0, Relu = 1, Elu = 2 };
const char* activation_name(Activation a);

// Everything a .ml3p file holds, field by field (docs/deploy.md).
struct PolicyData {
  // The environment the policy was trained on.
  std::string env;                     // registry name, e.g. "reacher"
  uint32_t obs_dim = 0, act_dim = 0;
  std::vector<std::string> obs_names;  // obs_dim names, in observation order
  std::vector<double> act_low, act_high;
  double control_period = 0;           // seconds between actions in training
  uint32_t episode_steps = 0;          // steps of a training episode
  std::string env_options;             // "key=value" lines: the environment options of training
  std::string source;                  // "key=value" lines: provenance (algorithm, iteration, ...)
  // Observation normalisation: when `normalize`, value j becomes
  // clip((x - obs_center[j]) / obs_scale[j], -obs_clip, obs_clip) (in double,
  // then rounded to float); otherwise x rounded to float.
  bool normalize = false;
  double obs_clip = 0;
  std::vector<double> obs_center, obs_scale;
  // MLP sizes[0] = obs_dim -> ... -> sizes.back() = act_dim, `activation`
  // between layers, none after the last. Layer l: weights[l] is
  // sizes[l] x sizes[l+1] row-major (input-major), biases[l] has sizes[l+1].
  Activation activation = Activation::Tanh;
  std::vector<uint32_t> sizes;
  std::vector<std::vector<float>> weights, biases;
};

// Throws Error (naming `name`, usually the file) when `d` is not a valid
// policy: sizes, bounds, finiteness, layer shapes.
void validate(const PolicyData& d, const std::string& name);
// The bytes of a .ml3p file (validates first). Equal data give equal bytes.
std::string encode(const PolicyData& d);
// Parses and validates a .ml3p image; never reads outside [data, data + size).
PolicyData decode(const void* data, size_t size, const std::string& name);
// Reads and decodes a file.
PolicyData read_policy_file(const std::string& path);

class Policy {
 public:
  explicit Policy(PolicyData data, const std::string& name = "policy");
  static Policy load(const std::string& path) { return Policy(read_policy_file(path), path); }

  // obs: info().obs_dim values; action: info().act_dim values. Returns true.
  // When an observation value is not finite (or the network output is not,
  // which a valid file cannot produce from finite inputs), writes the safe
  // action -- 0 clipped to the bounds, i.e. zero torque/force on the built-in
  // environments -- counts a fault and returns false. Never writes NaN.
  bool act(const double* obs, double* action);
  // The safe action (act_dim values).
  void safe_action(double* action) const;

  const PolicyData& info() const { return d_; }
  uint64_t faults() const { return faults_; }
  uint64_t calls() const { return calls_; }
  void reset_counters() { faults_ = calls_ = 0; }

 private:
  PolicyData d_;
  std::vector<float> buf_a_, buf_b_;  // scratch: the widest layer
  uint64_t faults_ = 0, calls_ = 0;
};

}  // namespace ml3::runtime
