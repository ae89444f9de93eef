// The one runner: run folder, --resume, --stop-after, metrics, checkpoint
// cadence, the NaN guard, the progress line, summary.json and the plot --
// for every algorithm of the registry.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/run_paths.h"
#include "envs/env.h"
#include "src/run/algorithm.h"
#include "src/run/dist.h"
#include "src/run/plot.h"
#include "src/run/run.h"

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

std::unique_ptr<Algorithm> make_algorithm(const Config& c, const std::string& run_dir, dist::Comm& comm) {
  const AlgorithmEntry& e = entry_of(c);
  return e.is_rule() ? make_policy_trainer(c, e) : e.problem().make(c, run_dir, comm);
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
  const fs::path ck_dir = checkpoint_dir(dir), last = last_checkpoint(dir);
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
  // Distributed (src/run/dist.h): every rank iterates; rank 0 alone writes the
  // run folder, metrics, checkpoints, artifacts and the progress line.
  dist::Comm& comm = dist::Comm::get();
  const bool root = comm.root();
  fs::path dir;
  if (root) {
    dir = open_run_folder(args.config_path, args.overrides, args.out_dir, args.resume_dir, args.force, loader, &cfg);
  } else {
    if (resume && (!args.overrides.empty() || !args.config_path.empty()))
      throw UsageError("--resume takes the run's own config.yaml; do not pass --config or overrides");
    dir = resume ? fs::path(args.resume_dir) : run_dir_or_default(args.out_dir, args.config_path);
    comm.barrier("run folder");  // rank 0 has written config.yaml
    cfg = resume ? loader((dir / "config.yaml").string(), {}) : loader(args.config_path, args.overrides);
  }
  if (root) comm.barrier("run folder");
  std::unique_ptr<Algorithm> algo = make_algorithm(cfg, dir.string(), comm);
  if (comm.distributed() && !algo->spreads_over_ranks())
    throw Error(fmt::format("algorithm '{}' does not run on several ranks (WORLD_SIZE={}); distributed runs are "
                            "ml3 meta-train with algorithm ml3 (docs/distributed.md)",
                            cfg.get_string("algorithm"), comm.world()));
  const int iterations = algo->iterations(), ck_every = algo->checkpoint_every(), eval_every = algo->eval_every();
  const fs::path last = last_checkpoint(dir);

  int start = 0, saved = 0;
  double wall0 = 0;
  if (resume) {
    const Archive a = Archive::load(last.string(), "checkpoint");
    algo->load(a);
    start = saved = a.meta().at("iteration").get<int>();
    wall0 = a.meta().at("wall_seconds").get<double>();
    if (root) {
      truncate_metrics(dir, start);
      std::fprintf(stderr, "resuming %s at iteration %d/%d%s\n", dir.c_str(), start, iterations,
                   comm.distributed() ? fmt::format(" on {} ranks", comm.world()).c_str() : "");
    }
  }

  std::unique_ptr<MetricsWriter> metrics;
  if (root) metrics = std::make_unique<MetricsWriter>(dir, algo->columns(), resume);
  Progress progress(algo->label(), iterations, args.quiet || !root);
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
    if (!root) continue;
    metrics->append(row);
    if (it % ck_every == 0 || it == iterations || it == stop_at) {
      write_checkpoint(*algo, cfg, dir, it, wall());
      saved = it;
    }
    progress.update(it, algo->progress_text(row));
  }
  progress.finish();

  RunResult out;
  out.run_dir = dir.string();
  if (!root) return out;
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


// ---- ml3 landscape ----------------------------------------------------------------

namespace {

std::string csv_number(const nlohmann::json& v) {
  return v.is_number() && std::isfinite(v.get<double>()) ? fmt::format("{:.9g}", v.get<double>()) : "";
}

// One CSV per kind of slice: 1-D "slice,x,<curve>..." and 2-D "slice,surface,x,y,value".
std::string landscape_csv(const nlohmann::json& slices, bool two_d) {
  std::string out;
  if (!two_d) {
    for (size_t k = 0; k < slices.size(); ++k) {
      const auto& s = slices[k];
      std::vector<std::string> names;
      for (const auto& [name, _] : s.at("curves").items()) names.push_back(name);
      if (k == 0) {
        out += "slice,x";
        for (const auto& n : names) out += ",\"" + n + "\"";
        out += "\n";
      }
      for (size_t i = 0; i < s.at("x").size(); ++i) {
        out += std::to_string(k) + "," + csv_number(s["x"][i]);
        for (const auto& n : names) out += "," + csv_number(s["curves"][n][i]);
        out += "\n";
      }
    }
    return out;
  }
  out = "slice,surface,x,y,value\n";
  for (size_t k = 0; k < slices.size(); ++k) {
    const auto& s = slices[k];
    for (const auto& [name, z] : s.at("surfaces").items())
      for (size_t yi = 0; yi < s.at("y").size(); ++yi)
        for (size_t xi = 0; xi < s.at("x").size(); ++xi)
          out += fmt::format("{},\"{}\",{},{},{}\n", k, name, csv_number(s["x"][xi]), csv_number(s["y"][yi]),
                             csv_number(z[yi][xi]));
  }
  return out;
}

// The argmin of each curve / surface, for the summary.
nlohmann::json landscape_minima(const nlohmann::json& j) {
  nlohmann::json m = nlohmann::json::object();
  for (const auto& s : j.value("one_d", nlohmann::json::array()))
    for (const auto& [name, ys] : s.at("curves").items()) {
      double best = INFINITY, bx = NAN;
      for (size_t i = 0; i < ys.size(); ++i)
        if (ys[i].is_number() && ys[i].get<double>() < best) best = ys[i].get<double>(), bx = s["x"][i].get<double>();
      m["1d: " + s.value("label", std::string()) + ": " + name] = {{"x", bx}, {"value", best}};
    }
  for (const auto& s : j.value("two_d", nlohmann::json::array()))
    for (const auto& [name, z] : s.at("surfaces").items()) {
      double best = INFINITY, bx = NAN, by = NAN;
      for (size_t yi = 0; yi < z.size(); ++yi)
        for (size_t xi = 0; xi < z[yi].size(); ++xi)
          if (z[yi][xi].is_number() && z[yi][xi].get<double>() < best)
            best = z[yi][xi].get<double>(), bx = s["x"][xi].get<double>(), by = s["y"][yi].get<double>();
      m["2d: " + s.value("label", std::string()) + ": " + name] = {{"x", bx}, {"y", by}, {"value", best}};
    }
  return m;
}

}  // namespace

std::string run_landscape(const LandscapeArgs& args) {
  const Config cfg = load_config(Command::MetaTrain, args.config_path, args.overrides);
  const AlgorithmEntry& e = entry_of(cfg);
  if (e.is_rule() || !e.problem().landscape)
    throw Error("algorithm '" + e.name + "' has no landscape (ml3 landscape supports the meta-problems sine and "
                "mountain_car)");
  const fs::path dir = run_dir_or_default(args.out_dir, args.config_path, "_landscape");
  // Refuse an existing folder before the work; create it only after the loss file has been read.
  if (!args.force && fs::exists(dir) && !fs::is_empty(dir)) prepare_run_dir(dir, false);
  std::fprintf(stderr, "landscape: %s, %d points per axis ...\n", args.loss_file.c_str(), args.points);
  const nlohmann::json j = nlohmann::json::parse(e.problem().landscape(args.loss_file, cfg, args.points));
  prepare_run_dir(dir, args.force);
  write_file_atomic((dir / "config.yaml").string(), cfg.to_yaml());
  write_file_atomic((dir / "landscape.json").string(), j.dump(1) + "\n");
  write_file_atomic((dir / "landscape_1d.csv").string(), landscape_csv(j.value("one_d", nlohmann::json::array()), false));
  write_file_atomic((dir / "landscape_2d.csv").string(), landscape_csv(j.value("two_d", nlohmann::json::array()), true));
  const std::string png = (dir / "landscape.png").string();
  const std::string err = make_plot("landscape", (dir / "landscape.json").string(), png,
                                    fmt::format("{}: {}", e.name, fs::path(args.loss_file).string()));
  if (!err.empty()) std::fprintf(stderr, "warning: landscape.png not plotted: %s\n", err.c_str());
  return nlohmann::json{{"dir", dir.string()},
                        {"json", (dir / "landscape.json").string()},
                        {"csv", {(dir / "landscape_1d.csv").string(), (dir / "landscape_2d.csv").string()}},
                        {"plot", err.empty() ? png : ""},
                        {"minima", landscape_minima(j)}}
      .dump(2);
}

}  // namespace ml3
