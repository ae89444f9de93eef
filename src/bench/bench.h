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
#include "core/config.h"

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

// `ml3 bench train`: `iterations` training iterations of the config `c`
// (threads, env, algorithm as configured) with each backend (pg.backend =
// torch, then fast), timing the rollout and the update of every iteration,
// and the batched environment alone (`env_batch` envs on 2 threads for
// `env_seconds`, as `ml3 bench envs` measures it) in the same run, and one
// 100x64 by 64x64 product with the fast path's small_gemm vs BLAS. Training
// throughput = env steps / (rollout + update) wall time, evaluation excluded.
nlohmann::json bench_train(const Config& c, int iterations, double env_seconds, int env_batch);

}  // namespace ml3
