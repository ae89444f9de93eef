// The one runner: run folder, --resume, --stop-after, metrics, checkpoint
// cadence, the NaN guard, the progress line, summary.json and the plot --
// for every algorithm of the registry.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>

#include "core/error.h"
#include "envs/env.h"
#include "src/algorithm.h"
#include "src/plot.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {

const char* command_name(Command c) { return c == Command::Train ? "train" : "meta-train"; }

const AlgorithmEntry& find_algorithm(const std::string& name) {
  Schema names;
  std::string list;
  for (const auto& e : algorithm_registry()) {
    if (e.name == name) return e;
    names.add_string(e.name, "", "");
    list += (list.empty() ? "" : ", ") + e.name;
  }
  throw Error(fmt::format("unknown algorithm '{}' (did you mean '{}'? known: {})", name, names.closest(name), list));
}

Schema algorithm_schema(const AlgorithmEntry& entry, const std::string& env_name) {
  Schema s;
  std::vector<std::string> names;
  for (const auto& e : algorithm_registry())
    if (e.command == entry.command) names.push_back(e.name);
  declare<RunSection>(s, "", entry.run_defaults);
  s.add_string("algorithm", entry.name,
               entry.command == Command::Train ? "how the policy learns (ml3 train)"
                                               : "what is meta-learned (ml3 meta-train)",
               names);
  if (entry.needs_env) {
    s.add_string("env.name", env_name, "environment (see ml3 envs)");
    s.include("env.", find_env(env_name).schema);
  }
  if (entry.command == Command::Train) declare_policy_run(s);
  entry.declare(s, "");
  if (entry.command == Command::Train) declare_policy_debug(s);
  return s;
}

Config load_config(Command command, const std::string& path, const std::vector<std::string>& overrides) {
  const std::string source = path.empty() ? std::string("config") : path;
  const std::string name =
      peek_config_value(path, overrides, "algorithm", command == Command::Train ? "ppo" : "ml3");
  const AlgorithmEntry& entry = find_algorithm(name);
  if (entry.command != command)
    throw Error(fmt::format("{}: algorithm '{}' is run by 'ml3 {}', not 'ml3 {}'", source, name,
                            command_name(entry.command), command_name(command)));
  std::string env;
  if (entry.needs_env) {
    env = peek_config_value(path, overrides, "env.name", "");
    if (env.empty()) throw Error(source + ": key 'env.name' is required");
    find_env(env);
  }
  Config c(algorithm_schema(entry, env));
  if (!path.empty()) c.load_yaml_file(path);
  c.apply_overrides(overrides);
  if (entry.check) entry.check(c, source);
  return c;
}

const AlgorithmEntry& entry_of(const Config& c) { return find_algorithm(c.get_string("algorithm")); }

std::unique_ptr<Algorithm> make_algorithm(const Config& c, const std::string& run_dir) {
  const AlgorithmEntry& e = entry_of(c);
  return e.make ? e.make(c, run_dir) : make_policy_trainer(c, e);
}

Archive checkpoint_archive(const Algorithm& algo, const Config& cfg, int iteration, double wall_seconds) {
  Archive a("checkpoint");
  a.meta() = {{"format", 2},
              {"iteration", iteration},
              {"wall_seconds", wall_seconds},
              {"algorithm", cfg.get_string("algorithm")},
              {"config", cfg.to_yaml()}};
  if (cfg.has("env.name")) a.meta()["env"] = cfg.get_string("env.name");
  algo.save(a);
  return a;
}

namespace {
using Clock = std::chrono::steady_clock;

void write_checkpoint(const Algorithm& algo, const Config& cfg, const fs::path& dir, int it, double wall) {
  const Archive a = checkpoint_archive(algo, cfg, it, wall);
  const fs::path ck_dir = dir / "checkpoints", last = ck_dir / "last.ckpt";
  fs::create_directories(ck_dir);
  const fs::path file = ck_dir / fmt::format("iter_{:06d}.ckpt", it);
  a.save(file.string());
  fs::copy_file(file, last.string() + ".tmp", fs::copy_options::overwrite_existing);
  fs::rename(last.string() + ".tmp", last);
  algo.write_artifacts(dir.string(), it);
}
}  // namespace

RunResult run(const RunArgs& args) {
  Config cfg;
  const bool resume = !args.resume_dir.empty();
  const ConfigLoader loader = [&](const std::string& p, const std::vector<std::string>& o) {
    return load_config(args.command, p, o);
  };
  const fs::path dir =
      open_run_folder(args.config_path, args.overrides, args.out_dir, args.resume_dir, args.force, loader, &cfg);
  std::unique_ptr<Algorithm> algo = make_algorithm(cfg, dir.string());
  const int iterations = algo->iterations(), ck_every = algo->checkpoint_every(), eval_every = algo->eval_every();
  const fs::path last = dir / "checkpoints" / "last.ckpt";

  int start = 0, saved = 0;
  double wall0 = 0;
  if (resume) {
    const Archive a = Archive::load(last.string(), "checkpoint");
    algo->load(a);
    start = saved = a.meta().at("iteration").get<int>();
    wall0 = a.meta().at("wall_seconds").get<double>();
    truncate_metrics(dir, start);
    std::fprintf(stderr, "resuming %s at iteration %d/%d\n", dir.c_str(), start, iterations);
  }

  MetricsWriter metrics(dir, algo->columns(), resume);
  Progress progress(algo->label(), iterations, args.quiet);
  const auto t0 = Clock::now();
  auto wall = [&] { return wall0 + std::chrono::duration<double>(Clock::now() - t0).count(); };
  const int stop_at = args.stop_after > 0 ? std::min(args.stop_after, iterations) : iterations;
  for (int it = start + 1; it <= stop_at; ++it) {
    nlohmann::json row;
    try {
      row = algo->iterate(it);
    } catch (const NonFiniteError& e) {
      progress.finish();
      throw Error(fmt::format("iteration {}: {}; training stopped, nothing of this iteration was saved. "
                              "Last good checkpoint: {}",
                              it, e.what(),
                              saved > 0 ? fmt::format("{} (iteration {})", last.string(), saved) : "none yet"));
    }
    row["wall_seconds"] = wall();
    if ((eval_every > 0 && it % eval_every == 0) || it == iterations) row.update(algo->evaluate());
    metrics.append(row);
    if (it % ck_every == 0 || it == iterations || it == stop_at) {
      write_checkpoint(*algo, cfg, dir, it, wall());
      saved = it;
    }
    progress.update(it, algo->progress_text(row));
  }
  progress.finish();

  RunResult out;
  out.run_dir = dir.string();
  if (stop_at < iterations) {
    std::fprintf(stderr, "stopped after iteration %d of %d; continue with: ml3 %s --resume %s\n", stop_at,
                 iterations, command_name(args.command), dir.c_str());
    return out;
  }
  nlohmann::json summary = algo->summary(wall());
  summary["iterations"] = iterations;
  summary["wall_seconds"] = wall();
  const Algorithm::Plot p = algo->plot();
  const std::string plot_err = make_plot(p.kind, (dir / "metrics.csv").string(), (dir / p.file).string(), p.title);
  if (!plot_err.empty()) std::fprintf(stderr, "warning: %s not plotted: %s\n", p.file.c_str(), plot_err.c_str());
  summary["plot"] = plot_err.empty() ? (dir / p.file).string() : "";
  summary["checkpoint"] = last.string();
  out.summary = summary.dump(2);
  write_file_atomic((dir / "summary.json").string(), out.summary + "\n");
  return out;
}

}  // namespace ml3
