#pragma once
// Runs an environment's scripted expert over sampled goals (one episode per
// goal, batched) and summarises how well it does.
#include <cstdint>
#include <string>

#include "envs/env.h"

namespace ml3 {

struct ExpertResult {
  int episodes = 0;
  double success_rate = 0, final_distance_mean = 0, return_mean = 0;
};

// Episode i: goal i of sample_tasks(split, seed), initial-state seed
// mix_seed(seed, i); the result does not depend on `threads`.
ExpertResult run_expert(const std::string& name, const Config& options, Split split, int episodes, uint64_t seed,
                        int threads);

}  // namespace ml3
