// Environment sub-commands: envs, expert, demos, bench envs, demo. Flags, a
// library call, printing; the work is in envs/ (registry, expert_runs, demos,
// bench).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "envs/bench.h"
#include "envs/demos.h"
#include "envs/expert_runs.h"
#include "envs/minari.h"
#include "tools/commands.h"

namespace ml3 {
namespace {

// "[-1,1]" when every action dimension has these bounds, else "per dim" (the
// bounds of each dimension are in --json's act_low / act_high).
std::string bounds_text(const std::vector<double>& low, const std::vector<double>& high) {
  const bool uniform = std::all_of(low.begin(), low.end(), [&](double v) { return v == low[0]; }) &&
                       std::all_of(high.begin(), high.end(), [&](double v) { return v == high[0]; });
  if (low.empty()) return "-";
  return uniform ? fmt::format("[{:g},{:g}]", low[0], high[0]) : "per dim";
}

struct EnvsArgs {
  std::string env, config;
  bool json = false;
  std::vector<std::string> overrides;
};

void cmd_envs(const EnvsArgs& args) {
  if (args.env.empty() && (!args.config.empty() || !args.overrides.empty()))
    throw UsageError("envs: --config and env.key=value overrides need --env NAME (they apply to one environment)");
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : env_registry()) {
    if (!args.env.empty() && e.name != find_env(args.env).name) continue;
    auto env = make_env(e.name, env_options(e.name, args.config, args.overrides));
    const EnvSpec& s = env->spec();
    out.push_back({{"name", s.name},
                   {"description", e.description},
                   {"obs_dim", s.obs_dim},
                   {"obs_names", s.obs_names},
                   {"act_dim", s.act_dim},
                   {"act_low", s.act_low},
                   {"act_high", s.act_high},
                   {"episode_steps", s.episode_steps},
                   {"frame_skip", s.frame_skip},
                   {"timestep", s.timestep},
                   {"control_period", s.timestep * s.frame_skip},
                   {"success_threshold", s.success_threshold},
                   {"distance", s.distance_meaning},
                   {"model", s.model_file}});
  }
  if (args.json) {
    std::cout << out.dump(2) << "\n";
    return;
  }
  size_t w = 3;
  for (const auto& j : out) w = std::max(w, j["name"].get<std::string>().size());
  fmt::print("{:<{}} {:>4} {:>4} {:>8} {:>6} {:>6} {:>9} {:>9}  {}\n", "env", w, "obs", "act", "action", "steps", "skip",
             "dt", "success<", "distance");
  for (const auto& j : out)
    fmt::print("{:<{}} {:>4} {:>4} {:>8} {:>6} {:>6} {:>9.4f} {:>9.3f}  {}\n", j["name"].get<std::string>(), w,
               j["obs_dim"].get<int>(), j["act_dim"].get<int>(),
               bounds_text(j["act_low"].get<std::vector<double>>(), j["act_high"].get<std::vector<double>>()),
               j["episode_steps"].get<int>(),
               j["frame_skip"].get<int>(), j["timestep"].get<double>(), j["success_threshold"].get<double>(),
               j["distance"].get<std::string>());
}

struct DemosArgs {
  std::string env, split = "train", config, out, check;  // train: demonstrations are training data
  std::string import_minari, export_minari;              // Minari dataset folders (docs/demos.md, section 7)
  int episodes = 100, threads = 1;
  uint64_t seed = 0;
  double action_noise = 0;
  bool force = false, json = false;
  std::vector<std::string> overrides;
};

// Prints what a demonstrations file holds (one line, or one JSON object).
void print_demos(const std::string& path, const Demonstrations& d, const char* verb, bool json) {
  const DemoSummary s = summarize(d);
  const auto bytes = std::filesystem::file_size(path);
  if (json) {
    const nlohmann::json j = {{"file", path},
                              {"env", d.env},
                              {"split", split_name(d.split)},
                              {"seed", d.seed},
                              {"action_noise", d.action_noise},
                              {"episodes", s.episodes},
                              {"episode_steps", d.episode_steps},
                              {"obs_dim", d.obs_dim},
                              {"act_dim", d.act_dim},
                              {"goal_dim", d.goal_dim},
                              {"success_rate", s.success_rate},
                              {"final_distance_mean", s.final_distance_mean},
                              {"bytes", bytes}};
    std::cout << j.dump() << "\n";
    return;
  }
  fmt::print("{} {}: {} demonstrations ({} split, seed {}{}), {} episodes x {} steps: {}, {:.1f} KiB\n", verb, path,
             d.env, split_name(d.split), d.seed,
             d.action_noise > 0 ? fmt::format(", action noise {}", d.action_noise) : "", s.episodes, d.episode_steps,
             d.outcomes_known
                 ? fmt::format("success {:.1f}%, final distance {:.4f}", 100 * s.success_rate, s.final_distance_mean)
                 : std::string("outcomes unknown (imported without them)"),
             bytes / 1024.0);
}

// Rows (steps) per second of an import or export.
double rows_per_s(const Demonstrations& d, double seconds) {
  return static_cast<double>(d.episodes.size()) * d.episode_steps / std::max(seconds, 1e-9);
}

void export_demos_to_minari(const DemosArgs& a, const Demonstrations& d) {
  const nlohmann::json j = export_minari(d, a.export_minari, a.force);
  const double rps = rows_per_s(d, j["seconds"].get<double>());
  if (a.json) {
    nlohmann::json out = j;
    out["rows_per_s"] = rps;
    std::cout << out.dump() << "\n";
    return;
  }
  fmt::print("wrote Minari dataset {}: {} episodes, {} steps, main_data.hdf5 {:.1f} KiB, {:.3f} s ({:.0f} rows/s)\n",
             a.export_minari, j["episodes"].get<int64_t>(), j["steps"].get<int64_t>(),
             j["bytes"].get<double>() / 1024, j["seconds"].get<double>(), rps);
}

void cmd_demos(const DemosArgs& a) {
  if (a.env.empty() && (!a.config.empty() || !a.overrides.empty()))
    throw UsageError("demos: --config and env.key=value overrides need --env NAME");
  if (!a.import_minari.empty()) {
    // A Minari dataset -> a .demos file, checked against the environment.
    if (a.env.empty()) throw UsageError("demos: --import-minari needs --env NAME (the environment of the episodes)");
    if (a.out.empty()) throw UsageError("demos: --import-minari needs --out FILE.demos");
    if (!a.export_minari.empty()) throw UsageError("demos: --import-minari and --export-minari go in separate calls");
    if (std::filesystem::exists(a.out) && !a.force)
      throw Error(a.out + ": file already exists; pass --force to overwrite it");
    const Config options = env_options(a.env, a.config, a.overrides);
    double seconds = 0;
    const Demonstrations d = import_minari(a.import_minari, make_env(a.env, options)->spec(), options.values(), &seconds);
    save_demos(a.out, d);
    if (!a.json)
      fmt::print("read Minari dataset {}: {} episodes x {} steps in {:.3f} s ({:.0f} rows/s)\n", a.import_minari,
                 d.episodes.size(), d.episode_steps, seconds, rows_per_s(d, seconds));
    print_demos(a.out, d, "wrote", a.json);
    return;
  }
  if (!a.check.empty()) {
    // Validate; with --env, also against the environment the caller uses.
    std::unique_ptr<Env> env;
    if (!a.env.empty()) env = make_env(a.env, env_options(a.env, a.config, a.overrides));
    const Demonstrations d = load_demos(a.check, env ? &env->spec() : nullptr);
    if (!a.export_minari.empty()) return export_demos_to_minari(a, d);
    print_demos(a.check, d, "valid", a.json);
    return;
  }
  if (a.out.empty())
    throw UsageError("demos: pass --out FILE to record demonstrations, or --check FILE to validate one");
  if (a.env.empty()) throw UsageError("demos: recording needs --env NAME");
  if (std::filesystem::exists(a.out) && !a.force)
    throw Error(a.out + ": file already exists; pass --force to overwrite it");
  if (!a.export_minari.empty() && std::filesystem::exists(a.export_minari) && !a.force)  // before anything is written
    throw Error(a.export_minari + ": already exists; pass --force to replace it");
  const Config options = env_options(a.env, a.config, a.overrides);
  const Demonstrations d = record_demos(a.env, options, parse_split(a.split), a.episodes, a.seed, a.threads, a.action_noise);
  save_demos(a.out, d);
  print_demos(a.out, d, "wrote", a.json);
  if (!a.export_minari.empty()) export_demos_to_minari(a, d);
}

}  // namespace

void register_env_commands(CLI::App& app) {
  // envs
  static EnvsArgs en;
  auto* envs = app.add_subcommand("envs", "List the registered environments and their specs");
  envs->add_option("--env", en.env, "Only this environment (needed for --config and overrides)");
  envs->add_option("--config", en.config, "YAML file whose env: section overrides the defaults")
      ->check(CLI::ExistingFile);
  envs->add_flag("--json", en.json, "Print JSON");
  envs->add_option("overrides", en.overrides, "env.key=value overrides, e.g. env.model=my_arm.xml");
  envs->callback([] { cmd_envs(en); });

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
      fmt::print("expert on {} ({} split, {} episodes): success {:.1f}%, final distance {:.4f}, return {:.2f}\n", ex.env,
                 ex.split, r.episodes, 100 * r.success_rate, r.final_distance_mean, r.return_mean);
    }
  });

  // demos
  static DemosArgs de;
  auto* demos =
      app.add_subcommand("demos", "Record scripted-expert demonstrations to a file, or validate one (--check)");
  demos->add_option("--env", de.env, "Environment name (with --check: validate against it)");
  auto* split = demos->add_option("--split", de.split, "Goal split (default train)")
                    ->check(CLI::IsMember({"train", "test", "ood"}));
  auto* episodes =
      demos->add_option("--episodes", de.episodes, "Number of episodes (one goal each)")->check(CLI::Range(1, 100000));
  auto* seed = demos->add_option("--seed", de.seed, "Seed of goals and initial states");
  auto* threads = demos->add_option("--threads", de.threads, "Simulation threads")->check(CLI::Range(1, 256));
  auto* noise = demos->add_option("--action-noise", de.action_noise,
                                  "Perturb the executed actions by this standard deviation so that the episodes visit "
                                  "states off the expert's path; the file keeps the expert's actions there (DART)")
                    ->check(CLI::Range(0.0, 10.0));
  demos->add_option("--config", de.config, "YAML file whose env: section overrides the defaults")
      ->check(CLI::ExistingFile);
  auto* out = demos->add_option("--out", de.out, "File to write (docs/demos.md)");
  demos->add_flag("--force", de.force, "Overwrite an existing --out file or --export-minari folder");
  auto* check = demos->add_option("--check", de.check, "Validate this demonstrations file and print its summary")
                    ->excludes(split)
                    ->excludes(episodes)
                    ->excludes(seed)
                    ->excludes(threads)
                    ->excludes(noise)
                    ->excludes(out);
  demos->add_option("--import-minari", de.import_minari,
                    "Read this Minari dataset folder (data/main_data.hdf5) as demonstrations of --env into --out")
      ->excludes(check)
      ->excludes(split)
      ->excludes(episodes)
      ->excludes(seed)
      ->excludes(threads)
      ->excludes(noise);
  demos->add_option("--export-minari", de.export_minari,
                    "Also write the demonstrations (--check FILE, or the ones recorded to --out) as this Minari "
                    "dataset folder (docs/demos.md, section 7)");
  demos->add_flag("--json", de.json, "Print one JSON object");
  demos->add_option("overrides", de.overrides, "env.key=value overrides, e.g. env.model=my_arm.xml");
  demos->callback([] { cmd_demos(de); });

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
      fmt::print("{:<10} {:>14} {:>14} {:>9} {:>14} {:>14} {:>8}\n", "env", "env steps/s", "raw steps/s", "overhead",
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
        fmt::print("{:<10} {:>14.0f} {:>14.0f} {:>9.3f} {:>14.0f} {:>14.0f} {:>7.2f}x\n", r.env, r.env_sps, r.raw_sps,
                   overhead, r.batched_sps_1, r.batched_sps_2, scaling);
    }
    if (bn.json) std::cout << out.dump(2) << "\n";
  });

  // demo
  auto* demo = app.add_subcommand("demo", "Scripted expert on every environment (test split), summary table");
  demo->callback([] {
    fmt::print("{:<10} {:>9} {:>15} {:>10}\n", "env", "success", "final distance", "threshold");
    for (const auto& e : env_registry()) {
      const Config options(e.schema);
      const ExpertResult r = run_expert(e.name, options, Split::Test, 100, 0, 2);
      fmt::print("{:<10} {:>8.1f}% {:>15.4f} {:>10.3f}\n", e.name, 100 * r.success_rate, r.final_distance_mean,
                 options.get_double("success_threshold"));
    }
  });
}

}  // namespace ml3
