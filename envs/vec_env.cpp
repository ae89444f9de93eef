#include "envs/vec_env.h"

#include "core/error.h"

namespace ml3 {

VecEnv::VecEnv(const std::string& name, const Config& options, int num_envs, int threads)
    : pool_(threads) {
  if (num_envs < 1) throw Error("batched environment: num_envs must be >= 1, got " + std::to_string(num_envs));
  for (int i = 0; i < num_envs; ++i) envs_.push_back(make_env(name, options));
}

void VecEnv::reset(const std::vector<uint64_t>& seeds, const std::vector<Task>& tasks, double* obs) {
  if (static_cast<int>(seeds.size()) != size() || static_cast<int>(tasks.size()) != size())
    throw Error("batched environment: reset needs one seed and one task per env (" + std::to_string(size()) + ")");
  const int od = spec().obs_dim;
  pool_.parallel_for(size(), [&](int b, int e) {
    for (int i = b; i < e; ++i) envs_[i]->reset(seeds[i], tasks[i], obs + i * od);
  });
}

void VecEnv::step(const double* actions, double* obs, double* rewards, uint8_t* terminated,
                  uint8_t* truncated, StepInfo* infos) {
  const int od = spec().obs_dim, ad = spec().act_dim;
  pool_.parallel_for(size(), [&](int b, int e) {
    for (int i = b; i < e; ++i) {
      bool term, trunc;
      envs_[i]->step(actions + i * ad, obs + i * od, rewards + i, &term, &trunc, infos + i);
      terminated[i] = term, truncated[i] = trunc;
    }
  });
}

void VecEnv::expert_actions(double* actions) {
  const int ad = spec().act_dim;
  pool_.parallel_for(size(), [&](int b, int e) {
    for (int i = b; i < e; ++i) envs_[i]->expert_action(actions + i * ad);
  });
}

}  // namespace ml3
