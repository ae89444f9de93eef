#pragma once
// The deployed policy next to the trained one (LibTorch side): a checkpoint
// of a short `ml3 train` run in memory, the trained policy's deterministic
// action through LibTorch exactly as `ml3 eval` computes it, and
// `ml3 bench deploy` (per-action latency of ml3_runtime vs LibTorch on the
// same policy, in the same run). LibTorch-free header.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/archive.h"

namespace ml3 {

// The checkpoint `ml3 train` with these overrides (on the algorithm's
// defaults; env.name is required) writes after `iterations` iterations.
Archive train_checkpoint(const std::vector<std::string>& overrides, int iterations);

// A policy checkpoint loaded the way ml3 eval loads it (LibTorch networks).
class TorchPolicy {
 public:
  explicit TorchPolicy(const Archive& a);
  ~TorchPolicy();
  int obs_dim() const;
  int act_dim() const;
  // The deterministic action (the mean, clipped to the action bounds as the
  // environment clips it) of n observations (row-major).
  void act(const double* obs, double* action, int n) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Per-action latency (microseconds: p50, p99, max, mean) of `calls` single
// observations through ml3_runtime and through LibTorch, same policy (a
// reacher policy with hidden sizes `hidden`, after one PPO iteration), same
// observations; and their ratio.
nlohmann::json bench_deploy(int calls, const std::string& hidden);

}  // namespace ml3
