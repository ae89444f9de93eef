// Environment sub-commands: envs, expert, bench envs, demo.
#include <mujoco/mujoco.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "envs/mujoco_env.h"
#include "envs/vec_env.h"
#include "tools/commands.h"

namespace ml3 {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct ExpertResult {
  int episodes = 0;
  double success_rate = 0, final_distance_mean = 0, return_mean = 0;
};

ExpertResult run_expert(const std::string& name, const Config& options, Split split, int episodes,
                        uint64_t seed, int threads) {
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

// ---- bench ------------------------------------------------------------------
struct BenchRow {
  std::string env;
  double env_sps = 0, raw_sps = 0, batched_sps_1 = 0, batched_sps_2 = 0;
};

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

BenchRow bench_env(const std::string& name, double seconds, int batch) {
  BenchRow row;
  row.env = name;
  const Config options(find_env(name).schema);
  auto env = make_env(name, options);
  const EnvSpec& spec = env->spec();
  const int ad = spec.act_dim;
  // Pre-drawn random actions shared by both loops.
  const int n_actions = 4096;
  std::vector<double> actions(n_actions * ad);
  Rng rng(7);
  for (int i = 0; i < n_actions; ++i)
    for (int j = 0; j < ad; ++j) actions[i * ad + j] = rng.uniform(spec.act_low[j], spec.act_high[j]);
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
    for (int s = 0; s < steps; ++s) {
      const double* a = &actions[(k++ % n_actions) * ad];
      for (int j = 0; j < ad; ++j) d->ctrl[j] = a[j];
      for (int f = 0; f < spec.frame_skip; ++f) mj_step(m, d);
      if (++t == spec.episode_steps) t = 0, mj_resetData(m, d);
    }
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
  for (int threads : {1, 2}) {
    VecEnv venv(name, options, batch, threads);
    std::vector<uint64_t> seeds(batch);
    std::vector<Task> tasks(batch, task);
    for (int i = 0; i < batch; ++i) seeds[i] = i;
    std::vector<double> vobs(batch * spec.obs_dim), vact(batch * ad), vrew(batch);
    std::vector<uint8_t> vterm(batch), vtrunc(batch);
    std::vector<StepInfo> vinfo(batch);
    for (int i = 0; i < batch * ad; ++i) vact[i] = actions[i % (n_actions * ad)];
    venv.reset(seeds, tasks, vobs.data());
    int vt = 0;
    auto batched = [&](int steps) {
      for (int s = 0; s < steps; ++s) {
        venv.step(vact.data(), vobs.data(), vrew.data(), vterm.data(), vtrunc.data(), vinfo.data());
        if (++vt == spec.episode_steps) vt = 0, venv.reset(seeds, tasks, vobs.data());
      }
    };
    const double rate = batch * best_rate(batched, 100, seconds / 2);
    (threads == 1 ? row.batched_sps_1 : row.batched_sps_2) = rate;
  }
  return row;
}

void cmd_envs(bool json) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : env_registry()) {
    auto env = make_env(e.name, Config(e.schema));
    const EnvSpec& s = env->spec();
    nlohmann::json j = {{"name", s.name},
                        {"description", e.description},
                        {"obs_dim", s.obs_dim},
                        {"act_dim", s.act_dim},
                        {"act_low", s.act_low},
                        {"act_high", s.act_high},
                        {"episode_steps", s.episode_steps},
                        {"frame_skip", s.frame_skip},
                        {"timestep", s.timestep},
                        {"control_period", s.timestep * s.frame_skip},
                        {"success_threshold", s.success_threshold},
                        {"distance", s.distance_meaning},
                        {"model", s.model_file}};
    out.push_back(j);
  }
  if (json) {
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::printf("%-10s %4s %4s %8s %6s %6s %9s %9s  %s\n", "env", "obs", "act", "action", "steps", "skip",
              "dt", "success<", "distance");
  for (const auto& j : out)
    std::printf("%-10s %4d %4d %8s %6d %6d %9.4f %9.3f  %s\n", j["name"].get<std::string>().c_str(),
                j["obs_dim"].get<int>(), j["act_dim"].get<int>(), "[-1,1]", j["episode_steps"].get<int>(),
                j["frame_skip"].get<int>(), j["timestep"].get<double>(), j["success_threshold"].get<double>(),
                j["distance"].get<std::string>().c_str());
}

}  // namespace

void register_env_commands(CLI::App& app) {
  // envs
  auto* envs = app.add_subcommand("envs", "List the registered environments and their specs");
  static bool envs_json = false;
  envs->add_flag("--json", envs_json, "Print JSON");
  envs->callback([] { cmd_envs(envs_json); });

  // expert
  struct ExpertArgs {
    std::string env, split = "test", config;
    int episodes = 100, threads = 1;
    uint64_t seed = 0;
    bool json = false;
    std::vector<std::string> overrides;
  };
  static ExpertArgs ex;
  auto* expert = app.add_subcommand("expert", "Run the scripted expert and report success");
  expert->add_option("--env", ex.env, "Environment name")->required();
  expert->add_option("--split", ex.split, "Goal split")->check(CLI::IsMember({"train", "test", "ood"}));
  expert->add_option("--episodes", ex.episodes, "Number of episodes (one goal each)")->check(CLI::Range(1, 100000));
  expert->add_option("--seed", ex.seed, "Seed of goals and initial states");
  expert->add_option("--threads", ex.threads, "Simulation threads")->check(CLI::Range(1, 256));
  expert->add_option("--config", ex.config, "YAML file whose env: section overrides the defaults")
      ->check(CLI::ExistingFile);
  expert->add_flag("--json", ex.json, "Print one JSON object");
  expert->add_option("overrides", ex.overrides, "env.key=value overrides, e.g. env.model=my_arm.xml");
  expert->callback([] {
    const Config options = env_options(ex.env, ex.config, ex.overrides);
    const ExpertResult r = run_expert(ex.env, options, parse_split(ex.split), ex.episodes, ex.seed, ex.threads);
    if (ex.json) {
      nlohmann::json j = {{"env", ex.env},           {"split", ex.split},
                          {"episodes", r.episodes},  {"success_rate", r.success_rate},
                          {"final_distance_mean", r.final_distance_mean}, {"return_mean", r.return_mean},
                          {"seed", ex.seed}};
      std::cout << j.dump() << "\n";
    } else {
      std::printf("expert on %s (%s split, %d episodes): success %.1f%%, final distance %.4f, return %.2f\n",
                  ex.env.c_str(), ex.split.c_str(), r.episodes, 100 * r.success_rate, r.final_distance_mean,
                  r.return_mean);
    }
  });

  // bench envs
  struct BenchArgs {
    double seconds = 6.0;
    int batch = 16;
    bool json = false;
    std::vector<std::string> only;
  };
  static BenchArgs bn;
  auto* bench = app.add_subcommand("bench", "Benchmarks (speed ratios against in-run baselines)");
  bench->require_subcommand(1);
  auto* benv = bench->add_subcommand("envs", "Env step vs raw mj_step, and batched scaling on 1 and 2 threads");
  benv->add_option("--seconds", bn.seconds, "Measuring time per environment")->check(CLI::Range(0.1, 600.0));
  benv->add_option("--batch", bn.batch, "Envs in the batched measurement")->check(CLI::Range(1, 4096));
  benv->add_option("--env", bn.only, "Only these environments");
  benv->add_flag("--json", bn.json, "Print a JSON list");
  benv->callback([] {
    nlohmann::json out = nlohmann::json::array();
    if (!bn.json)
      std::printf("%-10s %14s %14s %9s %14s %14s %8s\n", "env", "env steps/s", "raw steps/s", "overhead",
                  "batch 1 thr", "batch 2 thr", "scaling");
    for (const auto& e : env_registry()) {
      if (!bn.only.empty() && std::find(bn.only.begin(), bn.only.end(), e.name) == bn.only.end()) continue;
      const BenchRow r = bench_env(e.name, bn.seconds, bn.batch);
      const double overhead = r.raw_sps / r.env_sps, scaling = r.batched_sps_2 / r.batched_sps_1;
      out.push_back({{"env", r.env},
                     {"env_steps_per_s", r.env_sps},
                     {"raw_env_steps_per_s", r.raw_sps},
                     {"overhead_ratio", overhead},
                     {"batch", bn.batch},
                     {"batched_steps_per_s_1_thread", r.batched_sps_1},
                     {"batched_steps_per_s_2_threads", r.batched_sps_2},
                     {"thread_scaling", scaling}});
      if (!bn.json)
        std::printf("%-10s %14.0f %14.0f %9.3f %14.0f %14.0f %7.2fx\n", r.env.c_str(), r.env_sps, r.raw_sps,
                    overhead, r.batched_sps_1, r.batched_sps_2, scaling);
    }
    if (bn.json) std::cout << out.dump(2) << "\n";
  });

  // demo
  auto* demo = app.add_subcommand("demo", "Scripted expert on every environment (test split), summary table");
  demo->callback([] {
    std::printf("%-10s %9s %15s %10s\n", "env", "success", "final distance", "threshold");
    for (const auto& e : env_registry()) {
      const Config options(e.schema);
      const ExpertResult r = run_expert(e.name, options, Split::Test, 100, 0, 2);
      std::printf("%-10s %8.1f%% %15.4f %10.3f\n", e.name.c_str(), 100 * r.success_rate, r.final_distance_mean,
                  options.get_double("success_threshold"));
    }
  });
}

}  // namespace ml3
