#pragma once
// The entry names of a policy checkpoint of `ml3 train` (an Archive), owned
// here because the trainer writes them (src/policy/trainer.cpp) and the
// exporter, `ml3 eval` and the benchmarks read them.
namespace ml3::ckpt {

inline constexpr const char* kPolicy = "policy/";  // the policy's tensors, policy/0, policy/1, ... (W, b per layer, then log-std)
inline constexpr const char* kValue = "value/";    // the value network's tensors
inline constexpr const char* kNorm = "norm/";      // the observation normaliser's state
inline constexpr const char* kUpdate = "update/";  // the update rule's state (optimisers, ...)

}  // namespace ml3::ckpt
