#pragma once
// N copies of one environment stepped in lockstep on a thread pool. Each copy
// owns its MuJoCo data and is stepped by exactly one thread per call, so the
// results are bit-identical for any thread count. No auto-reset: all envs of
// the suite have a fixed episode length, and learners reset explicitly.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "envs/env.h"

namespace ml3 {

class VecEnv {
 public:
  VecEnv(const std::string& name, const Config& options, int num_envs, int threads);

  int size() const { return static_cast<int>(envs_.size()); }
  const EnvSpec& spec() const { return envs_.front()->spec(); }
  Env& env(int i) { return *envs_[i]; }
  const Env& env(int i) const { return *envs_[i]; }
  ThreadPool& pool() { return pool_; }

  // obs: size() x obs_dim, row-major.
  void reset(const std::vector<uint64_t>& seeds, const std::vector<Task>& tasks, double* obs);
  // actions: size() x act_dim; rewards, terminated, truncated, infos: size().
  void step(const double* actions, double* obs, double* rewards, uint8_t* terminated,
            uint8_t* truncated, StepInfo* infos);
  // Scripted-expert actions of every env (size() x act_dim).
  void expert_actions(double* actions);

 private:
  std::vector<std::unique_ptr<Env>> envs_;
  ThreadPool pool_;
};

}  // namespace ml3
