// Comparing policy-training methods: `ml3 compare` (any methods, learning
// rates swept on the train split) and `ml3 meta-test` (one learned loss
// against the baselines of a meta-training config). Every method is a
// policy-training algorithm of the registry run by the same PolicyTrainer as
// `ml3 train`; both commands share the method loop, the statistics (bootstrap
// over seeds) and the outputs.
#include "src/compare/compare.h"
#include "src/compare/sections.h"
#include "src/run/dist.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <functional>
#include <limits>
#include <sstream>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/run_paths.h"
#include "src/compare/report.h"
#include "src/compare/methods.h"
#include "src/run/plot.h"
#include "src/policy/trainer.h"
#include "src/run/run.h"

namespace fs = std::filesystem;

namespace ml3 {

namespace {

std::vector<std::string> policy_algorithm_names() {
  std::vector<std::string> names;
  for (const auto& e : algorithm_registry())
    if (e.command == Command::Train) names.push_back(e.name);
  return names;
}

// compare.*: the protocol every method is run with.
struct CompareSection : ComparisonProtocol {
  std::string methods;
  std::string split = "test";
  int episodes_per_update = 64;
  double threshold = 0.8;
  template <class F>
  void fields(F& f) {
    f("methods", methods, "methods to run, comma-separated names of methods.<name> (empty: all, in file order)");
    f("split", split, "goal split the policies are trained and evaluated on (--split)", Choices{{"test", "ood"}});
    protocol_fields(f);
    f("episodes_per_update", episodes_per_update, "episodes per update (one goal each)");
    f("threshold", threshold, "success rate whose first crossing is reported (updates to threshold)",
      Bounds::in(0.0, 1.0));
  }
};

// sweep.*: tuning the baselines' learning rates on the train split.
struct SweepSection {
  bool enabled = true;
  int seeds = 2;
  int updates = 0;
  template <class F>
  void fields(F& f) {
    f("enabled", enabled,
      "sweep the learning rate of every method with methods.<name>.sweep_lrs on the train split, keep the best "
      "AUC (--no-sweep: false)");
    f("seeds", seeds, "policy seeds per swept learning rate");
    f("updates", updates, "updates per swept run (0: compare.updates)", Bounds::at_least(0));
  }
};

// methods.<name>.*: what a method is, besides its algorithm's own sections.
struct MethodSection {
  std::string kind;
  std::string sweep_lrs;
  std::string lr_chosen_by;
  std::string policy_hidden;
  bool baseline = false;
  template <class F>
  void fields(F& f) {
    f("baseline", baseline,
      "count this method as a baseline, not as a learned loss under test (e.g. a loss file that is only its "
      "hand-designed anchor)");
    f("policy_hidden", policy_hidden,
      "this method's policy hidden sizes, comma-separated, e.g. 128,128 (empty: the comparison's policy.hidden); "
      "for a baseline at a loss target's size");
    f("kind", kind, "the method's policy-training algorithm (its sections follow under methods.<name>.)",
      Choices{policy_algorithm_names()});
    f("sweep_lrs", sweep_lrs,
      "learning rates to sweep on the train split, comma-separated (empty: the configured rate)");
    f("lr_chosen_by", lr_chosen_by,
      "where the configured learning rate comes from, e.g. the ml3 compare run whose sweep chose it (reported)");
  }
};

std::vector<double> parse_lrs(const std::string& text, const std::string& key) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
      throw Error("config: key '" + key + "': '" + item + "' is not a positive learning rate (e.g. 1e-4,3e-4,1e-3)");
    out.push_back(v);
  }
  return out;
}

}  // namespace

// ---- ml3 compare ---------------------------------------------------------------------------
Schema compare_schema(const std::string& env_name, const std::vector<std::pair<std::string, std::string>>& methods) {
  Schema s;
  declare<RunSection>(s, "", RunSection{1, 1, 1});
  s.add_string("env.name", env_name, "environment (see ml3 envs)");
  s.include("env.", find_env(env_name).schema);
  declare<PolicySection>(s, "policy.", PolicySection{{32, 32}, "tanh", -0.5, -5.0, 1.0, false});
  declare<ValueSection>(s, "value.");
  declare<CompareSection>(s, "compare.");
  declare<SweepSection>(s, "sweep.");
  for (const auto& [name, kind] : methods) {
    const std::string prefix = "methods." + name + ".";
    MethodSection defaults;
    defaults.kind = kind;
    declare<MethodSection>(s, prefix, defaults);
    declare_method(s, find_algorithm(kind), prefix);
  }
  return s;
}

Config load_compare_config(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string source = path.empty() ? std::string("config") : path;
  const std::string env = peek_config_value(path, overrides, "env.name", "");
  if (env.empty()) throw Error(source + ": key 'env.name' is required");
  find_env(env);
  std::vector<std::pair<std::string, std::string>> methods;
  for (const auto& name : peek_config_children(path, overrides, "methods.")) {
    const std::string key = "methods." + name + ".kind";
    const std::string kind = peek_config_value(path, overrides, key, "");
    if (kind.empty()) throw Error(source + ": key '" + key + "' is required (one of the policy-training algorithms)");
    const AlgorithmEntry* e = nullptr;
    try {
      e = &find_algorithm(kind);
    } catch (const Error& err) {
      throw Error(source + ": key '" + key + "': " + err.what());
    }
    if (e->command != Command::Train) throw Error(source + ": key '" + key + "': '" + kind + "' does not train policies");
    methods.emplace_back(name, kind);
  }
  if (methods.empty()) throw Error(source + ": no methods (one methods.<name> section with a kind per method)");
  Config c(compare_schema(env, methods));
  if (!path.empty()) c.load_yaml_file(path);
  c.apply_overrides(overrides);
  return c;
}

std::string run_compare(const CompareArgs& args) {
  Config cfg = load_compare_config(args.config_path, args.overrides);
  if (args.no_sweep) cfg.set("sweep.enabled", "false", "--no-sweep");
  if (!args.split.empty()) cfg.set("compare.split", args.split, "--split");
  const auto cs = read<CompareSection>(cfg, "compare.");
  const auto sw = read<SweepSection>(cfg, "sweep.");

  // The methods, in file order (or compare.methods' order).
  std::vector<std::string> all = peek_config_children(args.config_path, args.overrides, "methods."), names;
  if (cs.methods.empty()) {
    names = all;
  } else {
    std::stringstream ss(cs.methods);
    for (std::string n; std::getline(ss, n, ',');) {
      if (std::find(all.begin(), all.end(), n) == all.end()) {
        std::string known;
        for (const auto& a : all) known += (known.empty() ? "" : ", ") + a;
        throw Error("config: key 'compare.methods': no method '" + n + "' (configured: " + known + ")");
      }
      names.push_back(n);
    }
  }
  const Protocol p = make_protocol(cfg, cs, cs.split, cs.episodes_per_update, cs.threshold);
  Protocol sweep = p;
  sweep.split = "train";
  sweep.seeds = sw.seeds;
  sweep.updates = sw.updates > 0 ? sw.updates : cs.updates;
  sweep.seed_base = 8000;  // other initialisations and goals than the comparison's

  std::vector<Method> methods;
  int total = 0;
  for (const auto& n : names) {
    const std::string prefix = "methods." + n + ".";
    Method m = make_method(n, find_algorithm(cfg.get_string(prefix + "kind")), cfg, prefix);
    const auto ms = read<MethodSection>(cfg, prefix);
    if (sw.enabled && !ms.sweep_lrs.empty()) {
      if (m.entry->rule().lr_key.empty())
        throw Error("config: key '" + prefix + "sweep_lrs': " + m.entry->name + " has no learning rate to sweep");
      m.sweep_lrs = parse_lrs(ms.sweep_lrs, prefix + "sweep_lrs");
    }
    m.lr_source = ms.lr_chosen_by.empty() ? std::string("configured") : "configured (" + ms.lr_chosen_by + ")";
    m.as_baseline = ms.baseline;
    check_method(m, p);
    total += p.seeds * p.updates + static_cast<int>(m.sweep_lrs.size()) * sweep.seeds * sweep.updates;
    methods.push_back(std::move(m));
  }

  const fs::path out =
      run_dir_or_default(args.out_dir, args.config_path, args.split.empty() ? "" : "_" + args.split, "compare");
  dist::Comm& comm = dist::Comm::get();
  const bool root = open_outputs(comm, out, args.force, cfg);
  Progress progress("compare " + p.env + " (" + p.split + ")", total, args.quiet || !root);
  MethodRunner runner(comm, progress);
  nlohmann::json sweep_json = {{"enabled", sw.enabled},
                               {"split", sweep.split},
                               {"seeds", sweep.seeds},
                               {"updates", sweep.updates},
                               {"criterion", "highest mean AUC of the success curve (train split); ties: the first rate"},
                               {"methods", nlohmann::json::object()}};
  for (auto& m : methods) {
    if (m.sweep_lrs.empty()) continue;
    nlohmann::json runs = nlohmann::json::array();
    double best_auc = -1, best_lr = m.lr();
    for (const double lr : m.sweep_lrs) {
      Method trial = m;
      trial.cfg.set(m.entry->rule().lr_key, fmt::format("{}", lr), "sweep");
      const Figures f =
          figures(runner.run(trial, sweep, fmt::format("sweep {} lr {:g}", m.name, lr), nullptr).curves, sweep.threshold);
      const double auc = mean_of(f.auc);
      runs.push_back({{"lr", lr},
                      {"auc", auc},
                      {"final_success_rate", mean_of(f.success)},
                      {"final_distance_mean", mean_of(f.distance)}});
      if (auc > best_auc) best_auc = auc, best_lr = lr;
    }
    m.cfg.set(m.entry->rule().lr_key, fmt::format("{}", best_lr), "sweep");
    m.lr_source = "sweep of this run (" + m.entry->rule().lr_key + ", train split)";
    sweep_json["methods"][m.name] = {{"key", m.entry->rule().lr_key}, {"runs", runs}, {"chosen_lr", best_lr}};
  }
  MethodRunner::Report report = runner.run_all(methods, p);
  nlohmann::json& results = report.results;
  results["command"] = "ml3 compare";
  results["config"] = args.config_path;
  results["sweep"] = sweep_json;
  if (!root) return "";
  write_outputs(out.string(), results, report.curves,
                fmt::format("{} ({} goals): {} updates x {} episodes, {} seeds, mean and 95% band", p.env, p.split,
                            p.updates, p.episodes, p.seeds));
  return results.dump(2);
}

}  // namespace ml3
