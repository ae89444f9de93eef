#include "envs/bench.h"

#include <algorithm>
#include <chrono>

#include "core/rng.h"
#include "envs/mujoco_env.h"
#include "envs/vec_env.h"

namespace ml3 {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Runs `fn(steps)` in rounds until `seconds` pass; returns steps per second of
// the fastest round (least disturbed by the rest of the machine).
template <class F>
double best_rate(F fn, int steps_per_round, double seconds) {
  double best = 0;
  const auto start = Clock::now();
  do {
    const auto t = Clock::now();
    fn(steps_per_round);
    best = std::max(best, steps_per_round / seconds_since(t));
  } while (seconds_since(start) < seconds);
  return best;
}

// `n` random actions within the spec's bounds (row-major, n x act_dim), the
// same sequence for every measurement.
std::vector<double> random_actions(const EnvSpec& spec, int n) {
  std::vector<double> actions(static_cast<size_t>(n) * spec.act_dim);
  Rng rng(7);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < spec.act_dim; ++j) actions[i * spec.act_dim + j] = rng.uniform(spec.act_low[j], spec.act_high[j]);
  return actions;
}

}  // namespace

double batched_env_rate(const std::string& name, int batch, int threads, double seconds) {
  const Config options(find_env(name).schema);
  VecEnv venv(name, options, batch, threads);
  const EnvSpec& spec = venv.spec();
  const Task task = sample_tasks(venv.env(0), Split::Test, 0, 1)[0];
  std::vector<uint64_t> seeds(batch);
  std::vector<Task> tasks(batch, task);
  for (int i = 0; i < batch; ++i) seeds[i] = i;
  std::vector<double> vobs(batch * spec.obs_dim), vrew(batch);
  const std::vector<double> vact = random_actions(spec, batch);
  std::vector<uint8_t> vterm(batch), vtrunc(batch);
  std::vector<StepInfo> vinfo(batch);
  venv.reset(seeds, tasks, vobs.data());
  int vt = 0;
  auto batched = [&](int steps) {
    for (int s = 0; s < steps; ++s) {
      venv.step(vact.data(), vobs.data(), vrew.data(), vterm.data(), vtrunc.data(), vinfo.data());
      if (++vt == spec.episode_steps) vt = 0, venv.reset(seeds, tasks, vobs.data());
    }
  };
  return batch * best_rate(batched, 100, seconds);
}

BenchRow bench_env(const std::string& name, double seconds, int batch) {
  BenchRow row;
  row.env = name;
  const Config options(find_env(name).schema);
  auto env = make_env(name, options);
  const EnvSpec& spec = env->spec();
  const int ad = spec.act_dim;
  // Pre-drawn random actions shared by both loops.
  const int n_actions = 4096;
  const std::vector<double> actions = random_actions(spec, n_actions);
  const Task task = sample_tasks(*env, Split::Test, 0, 1)[0];

  // Ours: Env::step (validation, clipping, frame skip, kinematics, obs, reward).
  std::vector<double> obs(spec.obs_dim);
  double reward;
  bool term, trunc;
  StepInfo info;
  uint64_t episode = 0;
  env->reset(episode, task, obs.data());
  int k = 0;
  auto ours = [&](int steps) {
    for (int s = 0; s < steps; ++s) {
      env->step(&actions[(k++ % n_actions) * ad], obs.data(), &reward, &term, &trunc, &info);
      if (trunc) env->reset(++episode, task, obs.data());
    }
  };
  // Raw: the same compiled model, ctrl + frame_skip x mj_step, reset on the
  // same schedule.
  const mjModel* m = static_cast<const MujocoEnv&>(*env).model();
  mjData* d = mj_makeData(m);
  int t = 0;
  auto raw = [&](int steps) {
    mujoco_call(spec.model_file, [&] {
      for (int s = 0; s < steps; ++s) {
        const double* a = &actions[(k++ % n_actions) * ad];
        for (int j = 0; j < ad; ++j) d->ctrl[j] = a[j];
        for (int f = 0; f < spec.frame_skip; ++f) mj_step(m, d);
        if (++t == spec.episode_steps) t = 0, mj_resetData(m, d);
      }
    });
  };
  const int round = 2000;
  ours(round), raw(round);  // warm-up
  // Interleave the two measurements so machine noise hits both alike.
  for (int rep = 0; rep < 3; ++rep) {
    row.env_sps = std::max(row.env_sps, best_rate(ours, round, seconds / 6));
    row.raw_sps = std::max(row.raw_sps, best_rate(raw, round, seconds / 6));
  }
  mj_deleteData(d);

  // Batched: `batch` envs in lockstep on 1 and 2 threads.
  row.batched_sps_1 = batched_env_rate(name, batch, 1, seconds / 2);
  row.batched_sps_2 = batched_env_rate(name, batch, 2, seconds / 2);
  return row;
}

}  // namespace ml3
