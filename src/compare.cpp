// Comparing policy-training methods: `ml3 compare` (any methods, learning
// rates swept on the train split) and `ml3 meta-test` (one learned loss
// against the baselines of a meta-training config). Every method is a
// policy-training algorithm of the registry run by the same PolicyTrainer as
// `ml3 train`; both commands share the method loop, the statistics (bootstrap
// over seeds) and the outputs.
#include "src/compare.h"
#include "src/dist.h"

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
#include "src/compare_report.h"
#include "src/meta_test.h"
#include "src/plot.h"
#include "src/policy_trainer.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {

namespace {

// A method's own sections under `prefix`: those of `ml3 train` with its
// algorithm; compared methods use a fixed learning rate per update.
void declare_method(Schema& s, const AlgorithmEntry& e, const std::string& prefix) {
  e.declare(s, prefix);
  if (s.find(prefix + "optim.anneal_lr")) s.set_default(prefix + "optim.anneal_lr", "false");
}

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

struct Method {
  std::string name, prefix;  // prefix: where its own keys live (methods.<name>., baselines.<name>.)
  const AlgorithmEntry* entry = nullptr;
  Config cfg;  // the training config (as ml3 train --config would read it)
  nlohmann::json inputs;  // the rule's input files, described
  std::string lr_source;
  std::vector<double> sweep_lrs;
  bool as_baseline = false;  // methods.<name>.baseline: a loss file that stands for a hand-designed objective
  bool learned() const { return entry->bind_artifact != nullptr && !as_baseline; }
  bool shaped() const { return inputs.is_object() && inputs.value("shaped", false); }
  double lr() const { return entry->lr_key.empty() ? NAN : cfg.get_double(entry->lr_key); }
};

// The protocol of a comparison from its config.
Protocol make_protocol(const Config& c, const ComparisonProtocol& cp, const std::string& split_name,
                       int episodes_per_update, double success_threshold) {
  parse_split(split_name);
  Protocol p;
  p.env = c.get_string("env.name");
  p.split = split_name;
  p.seed = static_cast<uint64_t>(c.get_int("seed"));
  p.seeds = cp.seeds;
  p.updates = cp.updates;
  p.episodes = episodes_per_update;
  p.eval_every = cp.eval_every;
  p.eval_episodes = cp.eval_episodes;
  p.eval_seed = static_cast<uint64_t>(cp.eval_seed);
  p.threshold = success_threshold;
  p.policy_hidden = c.get_int_list("policy.hidden");
  return p;
}

// The report's view of the methods.
std::vector<MethodReport> reports(const std::vector<Method>& methods) {
  std::vector<MethodReport> out;
  for (const auto& m : methods)
    out.push_back({m.name, m.entry->name, m.lr_source, m.learned(), m.shaped(), m.lr(), m.inputs,
                   m.cfg.get_int_list("policy.hidden")});
  return out;
}

// The training config of a method: its own sections from `own` (e.g.
// baselines.ppo. or methods.shaped.), the rest (seed, threads, env.*,
// policy.*, value.*) from the comparison's config.
Method make_method(const std::string& name, const AlgorithmEntry& entry, const Config& src, const std::string& own) {
  Method m;
  m.name = name;
  m.prefix = own;
  m.entry = &entry;
  m.cfg = Config(algorithm_schema(entry, src.get_string("env.name")));
  for (const auto& d : m.cfg.schema().params()) {
    if (d.key == "algorithm") continue;
    if (src.has(own + d.key)) m.cfg.set(d.key, src.values().at(own + d.key), own + d.key);
    else if (src.has(d.key)) m.cfg.set(d.key, src.values().at(d.key), d.key);
  }
  if (src.has(own + "policy_hidden") && !src.get_string(own + "policy_hidden").empty())
    m.cfg.set("policy.hidden", src.get_string(own + "policy_hidden"), own + "policy_hidden");
  return m;
}

PolicyRunPlan run_plan(const Protocol& p, int s, int updates, int episodes, int eval_episodes) {
  PolicyRunPlan plan;
  plan.train_split = plan.eval_split = parse_split(p.split);
  plan.seed = mix_seed(p.seed, p.seed_base + s);
  plan.task_offset = 100000, plan.noise_offset = 200000, plan.shuffle_offset = 300000;
  plan.iterations = updates;
  plan.episodes = episodes;
  plan.eval_every = p.eval_every;
  plan.eval_episodes = eval_episodes;
  plan.eval_seed = p.eval_seed;
  return plan;
}

// Input files checked and every rule built once (tiny batches) before any
// work: a bad file or key fails in seconds, not after the first methods ran.
void check_method(Method& m, const Protocol& p) {
  try {
    if (m.entry->inputs) m.inputs = m.entry->inputs(m.cfg);
    PolicyRunPlan plan = run_plan(p, 0, 1, 1, 1);
    plan.build_only = true;  // no clone pre-training: that is the runs' work
    PolicyTrainer probe(m.cfg, *m.entry, "", plan);
  } catch (const Error& e) {
    // The rule names its own keys (bc.demos); say whose they are.
    throw Error("method '" + m.name + "' (keys " + m.prefix + "*): " + e.what());
  }
}

// The (method, seed) runs of a distributed meta-test or compare go to the
// ranks in turn (docs/distributed.md): run j of the command on rank j % world.
int first_job = 0;

// A seed's curve and the episode length as one row of numbers, and back.
std::vector<double> curve_row(const std::vector<CurvePoint>& c, int episode_steps) {
  std::vector<double> r{static_cast<double>(episode_steps)};
  for (const auto& q : c) r.insert(r.end(), {static_cast<double>(q.update), q.success, q.distance, q.ret});
  return r;
}
std::vector<CurvePoint> row_curve(const std::vector<double>& r, int* episode_steps) {
  if (episode_steps) *episode_steps = static_cast<int>(r.at(0));
  std::vector<CurvePoint> c;
  for (size_t i = 1; i + 3 < r.size(); i += 4) c.push_back({static_cast<int>(r[i]), r[i + 1], r[i + 2], r[i + 3]});
  return c;
}

// A method's curves and costs over the seeds.
struct MethodRuns {
  SeedCurves curves;
  SeedCosts costs;
};

// Trains and evaluates one method on every seed of the protocol.
MethodRuns run_method(const Method& m, const Protocol& p, const std::string& label, Progress& progress, int& done,
                      int* episode_steps) {
  dist::Comm& comm = dist::Comm::get();
  MethodRuns out;
  std::vector<std::vector<double>> rows(static_cast<size_t>(p.seeds));
  for (int s = 0; s < p.seeds; ++s) {
    if (comm.owner(first_job, s) != comm.rank()) continue;
    auto t0 = Clock::now();
    PolicyTrainer trainer(m.cfg, *m.entry, "", run_plan(p, s, p.updates, p.episodes, p.eval_episodes));
    double train_seconds = since(t0);
    if (episode_steps) *episode_steps = trainer.spec().episode_steps;
    std::vector<CurvePoint> curve;
    auto eval_now = [&](int u) {
      const EvalResult r = trainer.evaluate_policy();
      curve.push_back({u, r.success_rate, r.final_distance_mean, r.return_mean});
    };
    eval_now(0);
    bool diverged = false;
    for (int u = 1; u <= p.updates; ++u) {
      if (!diverged) {
        try {
          t0 = Clock::now();
          trainer.iterate(u);
          train_seconds += since(t0);
        } catch (const NonFiniteError& e) {
          std::fprintf(stderr, "\nwarning: %s seed %d diverged at update %d (%s); counted as failing from here\n",
                       label.c_str(), s, u, e.what());
          diverged = true;
        }
      }
      if (u % p.eval_every == 0 || u == p.updates) {
        if (diverged) curve.push_back({u, 0.0, curve.back().distance, curve.back().ret});
        else eval_now(u);
      }
      progress.update(++done, fmt::format("{} seed {} | success {:.0f}%", label, s, 100 * curve.back().success));
    }
    const SeedCost cost{static_cast<double>(trainer.env_steps()), static_cast<double>(trainer.policy_steps()),
                        train_seconds};
    if (!comm.distributed()) {
      out.curves.push_back(curve);
      out.costs.push_back(cost);
    } else {
      rows[s] = {cost.env_steps, cost.policy_steps, cost.wall_seconds};
      const auto c = curve_row(curve, trainer.spec().episode_steps);
      rows[s].insert(rows[s].end(), c.begin(), c.end());
    }
  }
  if (!comm.distributed()) return out;
  rows = comm.share_jobs(rows, first_job, "seed curves");
  first_job += p.seeds;
  for (const auto& r : rows) {
    out.costs.push_back({r.at(0), r.at(1), r.at(2)});
    out.curves.push_back(row_curve(std::vector<double>(r.begin() + 3, r.end()), episode_steps));
  }
  return out;
}

// The curves and the costs of every method, as the report takes them.
std::vector<SeedCurves> curves_of(const std::vector<MethodRuns>& runs) {
  std::vector<SeedCurves> c;
  for (const auto& r : runs) c.push_back(r.curves);
  return c;
}
std::vector<SeedCosts> costs_of(const std::vector<MethodRuns>& runs) {
  std::vector<SeedCosts> c;
  for (const auto& r : runs) c.push_back(r.costs);
  return c;
}

// The output folder and its config.yaml, by rank 0 of a distributed run
// (the others wait for it); returns whether this rank writes the outputs.
bool open_outputs(const fs::path& out, bool force, const Config& cfg) {
  dist::Comm& comm = dist::Comm::get();
  if (comm.root()) {
    prepare_run_dir(out, force);
    write_file_atomic((out / "config.yaml").string(), cfg.to_yaml());
  }
  comm.barrier("output folder");
  first_job = 0;
  return comm.root();
}

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
      if (m.entry->lr_key.empty())
        throw Error("config: key '" + prefix + "sweep_lrs': " + m.entry->name + " has no learning rate to sweep");
      m.sweep_lrs = parse_lrs(ms.sweep_lrs, prefix + "sweep_lrs");
    }
    m.lr_source = ms.lr_chosen_by.empty() ? std::string("configured") : "configured (" + ms.lr_chosen_by + ")";
    m.as_baseline = ms.baseline;
    check_method(m, p);
    total += p.seeds * p.updates + static_cast<int>(m.sweep_lrs.size()) * sweep.seeds * sweep.updates;
    methods.push_back(std::move(m));
  }

  const std::string stem = fs::path(args.config_path.empty() ? "compare" : args.config_path).stem().string();
  const fs::path out = !args.out_dir.empty() ? fs::path(args.out_dir)
                       : args.split.empty()  ? fs::path("runs") / stem
                                             : fs::path("runs") / (stem + "_" + args.split);
  const bool root = open_outputs(out, args.force, cfg);
  Progress progress("compare " + p.env + " (" + p.split + ")", total, args.quiet || !root);
  int done = 0, episode_steps = 0;
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
      trial.cfg.set(m.entry->lr_key, fmt::format("{}", lr), "sweep");
      const Figures f = figures(run_method(trial, sweep, fmt::format("sweep {} lr {:g}", m.name, lr), progress, done,
                                           nullptr)
                                    .curves,
                                sweep.threshold);
      const double auc = mean_of(f.auc);
      runs.push_back({{"lr", lr},
                      {"auc", auc},
                      {"final_success_rate", mean_of(f.success)},
                      {"final_distance_mean", mean_of(f.distance)}});
      if (auc > best_auc) best_auc = auc, best_lr = lr;
    }
    m.cfg.set(m.entry->lr_key, fmt::format("{}", best_lr), "sweep");
    m.lr_source = "sweep of this run (" + m.entry->lr_key + ", train split)";
    sweep_json["methods"][m.name] = {{"key", m.entry->lr_key}, {"runs", runs}, {"chosen_lr", best_lr}};
  }
  std::vector<MethodRuns> runs;
  for (const auto& m : methods) runs.push_back(run_method(m, p, m.name, progress, done, &episode_steps));
  progress.finish();
  const std::vector<SeedCurves> curves = curves_of(runs);
  const std::vector<SeedCosts> costs = costs_of(runs);

  nlohmann::json results = aggregate(reports(methods), curves, costs, p, episode_steps);
  results["command"] = "ml3 compare";
  results["config"] = args.config_path;
  results["sweep"] = sweep_json;
  if (!root) return "";
  write_outputs(out.string(), results, curves_json(reports(methods), curves, costs, p, episode_steps),
                fmt::format("{} ({} goals): {} updates x {} episodes, {} seeds, mean and 95% band", p.env, p.split,
                            p.updates, p.episodes, p.seeds));
  return results.dump(2);
}

// ---- ml3 meta-test: one learned loss against the baselines of a meta-training config --------
void declare_baselines(Schema& s) {
  for (const auto& e : algorithm_registry())
    if (e.command == Command::Train && !e.bind_artifact && e.meta_test_baseline)
      declare_method(s, e, "baselines." + e.name + ".");
}

std::string run_policy_meta_test(const std::string& loss_file, const Config& cfg, const std::string& split_name,
                                 const std::string& out_dir, bool force, bool quiet) {
  const auto mt = read<MetaTestSection>(cfg, "meta_test.");
  const auto meta = read<MetaSection>(cfg, "meta.");
  const Protocol p = make_protocol(cfg, mt, split_name, meta.episodes_per_task, mt.success_target);

  std::vector<Method> methods;
  std::stringstream ss(mt.methods);
  for (std::string name; std::getline(ss, name, ',');) {
    const AlgorithmEntry* e = nullptr;
    try {
      e = &find_algorithm(name);
    } catch (const Error& err) {
      throw Error(std::string("config: key 'meta_test.methods': ") + err.what());
    }
    if (e->command != Command::Train)
      throw Error("config: key 'meta_test.methods': '" + name + "' does not train policies");
    if (!e->bind_artifact && !e->meta_test_baseline)
      throw Error("config: key 'meta_test.methods': '" + name + "' needs more than the environment; use ml3 compare");
    Method m = make_method(name, *e, cfg, "baselines." + name + ".");
    if (e->bind_artifact) {
      e->bind_artifact(m.cfg, loss_file, cfg);
      m.prefix = "--loss and meta.";
    }
    m.lr_source = e->bind_artifact ? "the meta-training config" : "configured (baselines." + name + ".)";
    check_method(m, p);
    methods.push_back(std::move(m));
  }
  if (methods.empty()) throw Error("config: key 'meta_test.methods' is empty");

  const fs::path out(out_dir);
  const bool root = open_outputs(out, force, cfg);
  Progress progress("meta-test " + p.env + " (" + split_name + ")",
                    static_cast<int>(methods.size()) * p.seeds * p.updates, quiet || !root);
  int done = 0, episode_steps = 0;
  std::vector<MethodRuns> runs;
  for (const auto& m : methods) runs.push_back(run_method(m, p, m.name, progress, done, &episode_steps));
  progress.finish();
  const std::vector<SeedCurves> curves = curves_of(runs);
  const std::vector<SeedCosts> costs = costs_of(runs);

  nlohmann::json results = aggregate(reports(methods), curves, costs, p, episode_steps);
  results["command"] = "ml3 meta-test";
  results["loss_file"] = loss_file;
  results["success_target"] = p.threshold;
  for (const auto& m : methods)
    if (m.learned()) results["loss_meta_trained_on"] = m.inputs.value("meta_trained_on", "?");
  if (!root) return "";
  write_outputs(out.string(), results, curves_json(reports(methods), curves, costs, p, episode_steps),
                "meta-test on " + p.env + " (" + split_name + " split): learned loss vs baselines");
  return results.dump(2);
}

std::string policy_meta_test_table(const std::string& results_json) { return compare_markdown(results_json); }

}  // namespace ml3
