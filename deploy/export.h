#pragma once
// ml3 export: a policy checkpoint of `ml3 train` -> a deployable .ml3p file
// (runtime/, docs/deploy.md). LibTorch-free: checkpoints hold plain float
// blobs, read through core/archive.h; the environment (MuJoCo) gives the spec.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/archive.h"
#include "ml3/runtime.hpp"

namespace ml3 {

// The deployable policy of a checkpoint: the environment spec (built from the
// stored config's env.* options), the observation normaliser's exact
// transform, the MLP mean (float32, as trained). Throws ml3::Error naming the
// file when it is not a policy checkpoint or does not match its config.
runtime::PolicyData policy_from_checkpoint(const Archive& a);

// The target network T of a learned-loss file (loss.target) as a policy: the
// shaping information a shaped loss carries, deployable on its own (the
// environment with its default options; raw observations, T's MLP).
runtime::PolicyData policy_from_loss_target(const Archive& loss_file);

struct ExportArgs {
  std::string run_dir, checkpoint;  // one of them (run: checkpoints/last.ckpt)
  std::string loss_target;          // or: a loss file whose target network is exported
  std::string policy;               // or (--format onnx): an exported .ml3p file
  std::string out;
  std::string format = "ml3p";      // ml3p | onnx (deploy/onnx_export.h)
  bool force = false;  // replace an existing `out`
};
// The checkpoint a `--run DIR` or `--checkpoint FILE` pair names (the run's
// checkpoints/last.ckpt when `checkpoint` is empty).
std::string checkpoint_of(const std::string& run_dir, const std::string& checkpoint);

// The policy the source of `args` holds (exactly one of run_dir, checkpoint,
// loss_target, policy; `out` given and, without `force`, not existing), and
// in `path` the file it came from. Throws before anything is written.
runtime::PolicyData export_source(const ExportArgs& args, std::string* path);

// Writes `out` atomically; returns a summary (file, bytes, env, sizes, ...).
nlohmann::json export_policy(const ExportArgs& args);
// What every export reports: source, out, bytes and the policy's env, sizes,
// activation and normalisation.
nlohmann::json export_summary(const std::string& source, const std::string& out, size_t bytes,
                              const runtime::PolicyData& d);

// The training environment options a policy carries, as env.key=value
// overrides (for env_options()).
std::vector<std::string> policy_env_overrides(const runtime::PolicyData& p);

}  // namespace ml3
