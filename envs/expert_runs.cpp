#include "envs/expert_runs.h"

#include <algorithm>

#include "core/rng.h"
#include "envs/vec_env.h"

namespace ml3 {

ExpertEpisodes run_expert_episodes(const std::string& name, const Config& options, Split split, int episodes,
                                   uint64_t seed, int threads, const ExpertStepHook& hook, double action_noise) {
  VecEnv venv(name, options, episodes, threads);
  ExpertEpisodes r;
  r.spec = venv.spec();
  const EnvSpec& spec = r.spec;
  const int ad = spec.act_dim;
  std::vector<uint64_t> seeds(episodes);
  for (int i = 0; i < episodes; ++i) seeds[i] = mix_seed(seed, i);
  r.tasks = sample_tasks(venv.env(0), split, seed, episodes);
  std::vector<double> obs(episodes * spec.obs_dim), act(episodes * ad), rew(episodes), obs_before;
  std::vector<uint8_t> term(episodes), trunc(episodes);
  std::vector<double> executed(action_noise > 0 ? act.size() : 0);
  std::vector<Rng> noise;
  if (action_noise > 0)
    for (int i = 0; i < episodes; ++i) noise.emplace_back(mix_seed(seed ^ kExpertNoiseStream, i));
  r.final_info.resize(episodes);
  r.returns.assign(episodes, 0.0);
  venv.reset(seeds, r.tasks, obs.data());
  for (int t = 0; t < spec.episode_steps; ++t) {
    venv.expert_actions(act.data());
    // Clipped here as the environment clips them, so what a hook records is
    // what the environment applies.
    for (int i = 0; i < episodes; ++i)
      for (int j = 0; j < ad; ++j) act[i * ad + j] = std::clamp(act[i * ad + j], spec.act_low[j], spec.act_high[j]);
    if (hook) obs_before = obs;
    if (action_noise > 0)
      for (int i = 0; i < episodes; ++i)
        for (int j = 0; j < ad; ++j)
          executed[i * ad + j] =
              std::clamp(act[i * ad + j] + action_noise * noise[i].normal(), spec.act_low[j], spec.act_high[j]);
    venv.step(action_noise > 0 ? executed.data() : act.data(), obs.data(), rew.data(), term.data(), trunc.data(),
              r.final_info.data());
    for (int i = 0; i < episodes; ++i) r.returns[i] += rew[i];
    if (hook)
      hook(spec, t, obs_before.data(), act.data(), action_noise > 0 ? executed.data() : act.data(), rew.data(),
           obs.data());
  }
  return r;
}

ExpertResult ExpertEpisodes::summary() const {
  ExpertResult r;
  r.episodes = static_cast<int>(final_info.size());
  for (int i = 0; i < r.episodes; ++i) {
    r.success_rate += final_info[i].success;
    r.final_distance_mean += final_info[i].distance;
    r.return_mean += returns[i];
  }
  r.success_rate /= r.episodes, r.final_distance_mean /= r.episodes, r.return_mean /= r.episodes;
  return r;
}

ExpertResult run_expert(const std::string& name, const Config& options, Split split, int episodes, uint64_t seed,
                        int threads) {
  return run_expert_episodes(name, options, split, episodes, seed, threads).summary();
}

}  // namespace ml3
