#pragma once
// Runs an environment's scripted expert over sampled goals (one episode per
// goal, batched) and summarises how well it does; the same loop records
// demonstrations (envs/demos.h) through a per-step hook.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "envs/env.h"

namespace ml3 {

struct ExpertResult {
  int episodes = 0;
  double success_rate = 0, final_distance_mean = 0, return_mean = 0;
};

// Called after every step t with the batch (episodes rows, row-major): the
// observations the actions were taken in, the expert's actions (within the
// action bounds), the actions the environments executed (the same pointer
// without action noise), the rewards of the step and the observations after it.
using ExpertStepHook = std::function<void(const EnvSpec& spec, int t, const double* obs, const double* actions,
                                          const double* executed, const double* rewards, const double* next_obs)>;

struct ExpertEpisodes {
  EnvSpec spec;
  std::vector<Task> tasks;           // goal of episode i
  std::vector<StepInfo> final_info;  // distance and success at the end of episode i
  std::vector<double> returns;       // undiscounted return of episode i
  ExpertResult summary() const;
};

// Episode i: goal i of sample_tasks(split, seed), initial-state seed
// mix_seed(seed, i); the result does not depend on `threads`.
// action_noise > 0 perturbs what the environments execute (expert action +
// action_noise * N(0, 1) per dimension, clipped; noise of episode i from
// Rng(mix_seed(seed ^ kExpertNoiseStream, i))) so that the episodes visit
// states off the expert's own path (DART); the hook then gets the expert's
// unperturbed actions, the labels of those states.
constexpr uint64_t kExpertNoiseStream = 0xDA27ull;
ExpertEpisodes run_expert_episodes(const std::string& name, const Config& options, Split split, int episodes,
                                   uint64_t seed, int threads, const ExpertStepHook& hook = {},
                                   double action_noise = 0.0);
ExpertResult run_expert(const std::string& name, const Config& options, Split split, int episodes, uint64_t seed,
                        int threads);

}  // namespace ml3
