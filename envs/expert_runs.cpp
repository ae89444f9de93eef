#include "envs/expert_runs.h"

#include "core/rng.h"
#include "envs/vec_env.h"

namespace ml3 {

ExpertResult run_expert(const std::string& name, const Config& options, Split split, int episodes, uint64_t seed,
                        int threads) {
  VecEnv venv(name, options, episodes, threads);
  const EnvSpec& spec = venv.spec();
  std::vector<uint64_t> seeds(episodes);
  for (int i = 0; i < episodes; ++i) seeds[i] = mix_seed(seed, i);
  const auto tasks = sample_tasks(venv.env(0), split, seed, episodes);
  std::vector<double> obs(episodes * spec.obs_dim), act(episodes * spec.act_dim), rew(episodes), ret(episodes, 0.0);
  std::vector<uint8_t> term(episodes), trunc(episodes);
  std::vector<StepInfo> info(episodes);
  venv.reset(seeds, tasks, obs.data());
  for (int t = 0; t < spec.episode_steps; ++t) {
    venv.expert_actions(act.data());
    venv.step(act.data(), obs.data(), rew.data(), term.data(), trunc.data(), info.data());
    for (int i = 0; i < episodes; ++i) ret[i] += rew[i];
  }
  ExpertResult r;
  r.episodes = episodes;
  for (int i = 0; i < episodes; ++i) {
    r.success_rate += info[i].success;
    r.final_distance_mean += info[i].distance;
    r.return_mean += ret[i];
  }
  r.success_rate /= episodes, r.final_distance_mean /= episodes, r.return_mean /= episodes;
  return r;
}

}  // namespace ml3
