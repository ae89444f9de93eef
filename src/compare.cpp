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
  template <class F>
  void fields(F& f) {
    f("kind", kind, "the method's policy-training algorithm (its sections follow under methods.<name>.)",
      Choices{policy_algorithm_names()});
    f("sweep_lrs", sweep_lrs,
      "learning rates to sweep on the train split, comma-separated (empty: the configured rate)");
    f("lr_chosen_by", lr_chosen_by,
      "where the configured learning rate comes from, e.g. the ml3 compare run whose sweep chose it (reported)");
  }
};

struct CurvePoint {
  int update;
  double success, distance, ret;
};
using SeedCurves = std::vector<std::vector<CurvePoint>>;

struct Method {
  std::string name, prefix;  // prefix: where its own keys live (methods.<name>., baselines.<name>.)
  const AlgorithmEntry* entry = nullptr;
  Config cfg;  // the training config (as ml3 train --config would read it)
  nlohmann::json inputs;  // the rule's input files, described
  std::string lr_source;
  std::vector<double> sweep_lrs;
  bool learned() const { return entry->bind_artifact != nullptr; }
  bool shaped() const { return inputs.is_object() && inputs.value("shaped", false); }
  double lr() const { return entry->lr_key.empty() ? NAN : cfg.get_double(entry->lr_key); }
};

// What every method of one comparison is run with.
struct Protocol {
  std::string env, split;
  uint64_t seed = 1, seed_base = 7000;
  int seeds = 3, updates = 200, episodes = 64, eval_every = 10, eval_episodes = 100;
  uint64_t eval_seed = 0;
  double threshold = 0.8;
  Protocol() = default;
  Protocol(const Config& c, const ComparisonProtocol& cp, const std::string& split_name, int episodes_per_update,
           double success_threshold)
      : env(c.get_string("env.name")),
        split(split_name),
        seed(static_cast<uint64_t>(c.get_int("seed"))),
        seeds(cp.seeds),
        updates(cp.updates),
        episodes(episodes_per_update),
        eval_every(cp.eval_every),
        eval_episodes(cp.eval_episodes),
        eval_seed(static_cast<uint64_t>(cp.eval_seed)),
        threshold(success_threshold) {
    parse_split(split);
  }
};

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
    PolicyTrainer probe(m.cfg, *m.entry, "", run_plan(p, 0, 1, 1, 1));
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

// Trains and evaluates one method on every seed of the protocol.
SeedCurves run_method(const Method& m, const Protocol& p, const std::string& label, Progress& progress, int& done,
                      int* episode_steps) {
  dist::Comm& comm = dist::Comm::get();
  SeedCurves out;
  std::vector<std::vector<double>> rows(static_cast<size_t>(p.seeds));
  for (int s = 0; s < p.seeds; ++s) {
    if (comm.owner(first_job, s) != comm.rank()) continue;
    PolicyTrainer trainer(m.cfg, *m.entry, "", run_plan(p, s, p.updates, p.episodes, p.eval_episodes));
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
          trainer.iterate(u);
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
    if (!comm.distributed()) out.push_back(curve);
    else rows[s] = curve_row(curve, trainer.spec().episode_steps);
  }
  if (!comm.distributed()) return out;
  rows = comm.share_jobs(rows, first_job, "seed curves");
  first_job += p.seeds;
  for (const auto& r : rows) out.push_back(row_curve(r, episode_steps));
  return out;
}

// ---- statistics -------------------------------------------------------------------------
constexpr int kResamples = 10000;
constexpr uint64_t kBootstrapSeed = 20261127;
const double kInf = std::numeric_limits<double>::infinity();

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

double mean_at(const std::vector<double>& v, const std::vector<int>& idx) {
  double s = 0;
  for (int i : idx) s += v[i];
  return s / idx.size();
}
// Median (mean of the middle two for an even count; infinite values sort last).
double median_at(const std::vector<double>& v, const std::vector<int>& idx) {
  std::vector<double> x;
  for (int i : idx) x.push_back(v[i]);
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}
std::vector<int> all_of(size_t n) {
  std::vector<int> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = static_cast<int>(i);
  return idx;
}

// 95% percentile bootstrap interval of stat over seeds resampled with
// replacement (Rng(kBootstrapSeed), so every figure and every method sees the
// same resamples: differences between methods are paired by seed).
std::pair<double, double> bootstrap(size_t n, const std::function<double(const std::vector<int>&)>& stat) {
  Rng rng(kBootstrapSeed);
  std::vector<double> vals(kResamples);
  std::vector<int> idx(n);
  for (auto& v : vals) {
    for (auto& i : idx) i = static_cast<int>(rng.next() % n);
    v = stat(idx);
  }
  std::sort(vals.begin(), vals.end());
  return {vals[static_cast<size_t>(std::floor(0.025 * (kResamples - 1)))],
          vals[static_cast<size_t>(std::ceil(0.975 * (kResamples - 1)))]};
}
nlohmann::json interval(const std::pair<double, double>& ci) { return {num(ci.first), num(ci.second)}; }

// Per seed: final success, final distance, first update reaching the
// threshold (inf: never), area under the success curve (trapezoids over the
// updates, divided by the budget: in [0, 1]).
struct Figures {
  std::vector<double> success, distance, reach, auc;
};
Figures figures(const SeedCurves& cs, double threshold) {
  Figures f;
  for (const auto& c : cs) {
    f.success.push_back(c.back().success);
    f.distance.push_back(c.back().distance);
    double reach = kInf, area = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      if (reach == kInf && c[i].success >= threshold - 1e-12) reach = c[i].update;
      if (i > 0) area += 0.5 * (c[i].success + c[i - 1].success) * (c[i].update - c[i - 1].update);
    }
    f.reach.push_back(reach);
    f.auc.push_back(c.back().update > c.front().update ? area / (c.back().update - c.front().update) : c[0].success);
  }
  return f;
}

double reaching(const std::vector<double>& reach, const std::vector<int>& idx) {
  double n = 0;
  for (int i : idx) n += std::isfinite(reach[i]);
  return n;
}

nlohmann::json method_json(const Method& m, const Figures& f) {
  const auto all = all_of(f.success.size());
  auto mean_ci = [&](const std::vector<double>& v) {
    return interval(bootstrap(v.size(), [&](const std::vector<int>& i) { return mean_at(v, i); }));
  };
  nlohmann::json per_seed = nlohmann::json::array();
  for (size_t s = 0; s < f.success.size(); ++s)
    per_seed.push_back({{"final_success_rate", f.success[s]},
                        {"final_distance_mean", f.distance[s]},
                        {"updates_to_threshold", num(f.reach[s])},
                        {"auc", f.auc[s]}});
  nlohmann::json j = {
      {"name", m.name},
      {"kind", m.entry->name},
      {"shaped", m.shaped()},
      {"lr", num(m.lr())},
      {"lr_source", m.lr_source},
      {"final_success_rate", mean_at(f.success, all)},
      {"final_distance_mean", mean_at(f.distance, all)},
      {"updates_to_threshold", num(median_at(f.reach, all))},
      {"seeds_reaching_threshold", static_cast<int>(reaching(f.reach, all))},
      {"auc", mean_at(f.auc, all)},
      {"ci",
       {{"final_success_rate", mean_ci(f.success)},
        {"final_distance_mean", mean_ci(f.distance)},
        {"updates_to_threshold",
         interval(bootstrap(f.reach.size(), [&](const std::vector<int>& i) { return median_at(f.reach, i); }))},
        {"seeds_reaching_threshold",
         interval(bootstrap(f.reach.size(), [&](const std::vector<int>& i) { return reaching(f.reach, i); }))},
        {"auc", mean_ci(f.auc)}}},
      {"per_seed", per_seed}};
  if (!m.inputs.is_null()) j["inputs"] = m.inputs;
  return j;
}

std::string signed_fmt(double v, double scale, int digits) {
  return fmt::format("{:+.{}f}", v * scale, digits);
}

// Paired bootstrap of a learned loss's difference to a baseline (seed i of
// both starts from the same initialisation and sees the same goals).
nlohmann::json difference(const std::string& a, const std::string& b, const Figures& fa, const Figures& fb) {
  nlohmann::json j = {{"method", a}, {"baseline", b}};
  std::vector<std::string> parts;
  bool a_better = false, b_better = false;
  struct Item {
    const char* key;
    const char* label;
    const std::vector<double>& va;
    const std::vector<double>& vb;
    double scale;
    int digits;
    const char* unit;
    bool higher_is_better;
  };
  const Item items[] = {{"final_success_rate", "final success", fa.success, fb.success, 100, 1, " points", true},
                        {"auc", "AUC", fa.auc, fb.auc, 1, 3, "", true},
                        {"final_distance_mean", "final distance", fa.distance, fb.distance, 1, 4, " m", false}};
  const size_t n = std::min(fa.success.size(), fb.success.size());
  const auto all = all_of(n);
  for (const auto& it : items) {
    auto diff = [&](const std::vector<int>& idx) { return mean_at(it.va, idx) - mean_at(it.vb, idx); };
    const double d = diff(all);
    const auto ci = bootstrap(n, diff);
    const bool sig = ci.first > 0 || ci.second < 0;
    const bool a_wins = sig && ((d > 0) == it.higher_is_better);
    j[it.key] = {{"difference", d}, {"ci", interval(ci)}, {"significant", sig},
                 {"better", sig ? nlohmann::json(a_wins ? a : b) : nlohmann::json()}};
    if (sig) (a_wins ? a_better : b_better) = true;
    parts.push_back(fmt::format("{} {}{} (95% CI [{}, {}]){}", it.label, signed_fmt(d, it.scale, it.digits), it.unit,
                                signed_fmt(ci.first, it.scale, it.digits), signed_fmt(ci.second, it.scale, it.digits),
                                sig ? fmt::format(": {} significantly better", a_wins ? a : b) : ": not significant"));
  }
  std::string verdict = a_better && !b_better   ? a + " wins"
                        : b_better && !a_better ? a + " loses"
                        : a_better && b_better  ? "mixed"
                                                : "no significant difference";
  j["verdict"] = verdict;
  std::string text = fmt::format("{} vs {}: {}. ", a, b, verdict);
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? "; " : "Differences: ") + parts[i];
  j["statement"] = text + ".";
  return j;
}

// The curves with mean and 95% band (bootstrap over seeds) per method, vs
// updates and vs environment steps (tools/plot.py, kind "compare").
nlohmann::json curves_json(const std::vector<Method>& methods, const std::vector<SeedCurves>& curves,
                           const Protocol& p, int episode_steps) {
  std::vector<int> xs;
  std::vector<double> steps;
  for (const auto& pt : curves.front().front()) {
    xs.push_back(pt.update);
    steps.push_back(static_cast<double>(pt.update) * p.episodes * episode_steps);
  }
  nlohmann::json order = nlohmann::json::array();
  for (const auto& m : methods) order.push_back(m.name);
  nlohmann::json j = {{"x_label", "policy updates"},
                      {"x", xs},
                      {"order", order},
                      {"x2_label", "environment steps"},
                      {"x2", steps},
                      {"panels", nlohmann::json::array()}};
  for (int panel = 0; panel < 2; ++panel) {
    nlohmann::json pj = {{"y_label", std::string(panel ? "final distance" : "success rate") + " (" + p.split + " goals)"},
                         {"methods", nlohmann::json::object()}};
    for (size_t k = 0; k < methods.size(); ++k) {
      nlohmann::json mj = {{"n", curves[k].size()}, {"mean", nlohmann::json::array()}, {"lo", nlohmann::json::array()},
                           {"hi", nlohmann::json::array()}, {"seeds", nlohmann::json::array()}};
      for (size_t i = 0; i < xs.size(); ++i) {
        std::vector<double> v;
        for (const auto& c : curves[k]) v.push_back(panel ? c[i].distance : c[i].success);
        const auto ci = bootstrap(v.size(), [&](const std::vector<int>& idx) { return mean_at(v, idx); });
        mj["mean"].push_back(mean_at(v, all_of(v.size())));
        mj["lo"].push_back(ci.first);
        mj["hi"].push_back(ci.second);
      }
      for (const auto& c : curves[k]) {
        std::vector<double> v;
        for (const auto& pt : c) v.push_back(panel ? pt.distance : pt.success);
        mj["seeds"].push_back(v);
      }
      pj["methods"][methods[k].name] = mj;
    }
    j["panels"].push_back(pj);
  }
  return j;
}

// results.json (without the sweep) of one comparison.
nlohmann::json aggregate(const std::vector<Method>& methods, const std::vector<SeedCurves>& curves, const Protocol& p,
                         int episode_steps, const Config& cfg) {
  nlohmann::json r = {{"env", p.env},
                      {"split", p.split},
                      {"threshold", p.threshold},
                      {"updates", p.updates},
                      {"episodes_per_update", p.episodes},
                      {"episode_steps", episode_steps},
                      {"env_steps_per_method_and_seed", static_cast<int64_t>(p.updates) * p.episodes * episode_steps},
                      {"seeds", p.seeds},
                      {"eval_every", p.eval_every},
                      {"eval_episodes", p.eval_episodes},
                      {"eval_seed", p.eval_seed},
                      {"policy_hidden", cfg.get_int_list("policy.hidden")},
                      {"bootstrap", {{"resamples", kResamples}, {"level", 0.95}, {"seed", kBootstrapSeed},
                                     {"method", "percentile, seeds resampled with replacement; differences paired by seed"}}},
                      {"methods", nlohmann::json::array()},
                      {"comparisons", nlohmann::json::array()},
                      {"headline", nlohmann::json::array()}};
  std::vector<Figures> figs;
  for (size_t k = 0; k < methods.size(); ++k) {
    figs.push_back(figures(curves[k], p.threshold));
    r["methods"].push_back(method_json(methods[k], figs.back()));
  }
  for (size_t a = 0; a < methods.size(); ++a) {
    if (!methods[a].learned()) continue;
    for (size_t b = 0; b < methods.size(); ++b) {
      if (methods[b].learned()) continue;
      r["comparisons"].push_back(difference(methods[a].name, methods[b].name, figs[a], figs[b]));
      // The paper's claim: updates the learned loss needs to reach the
      // baseline's final success rate, as a fraction of the baseline's (<= 0.5).
      const double target = mean_at(figs[b].success, all_of(figs[b].success.size()));
      double sum = 0;
      int reached = 0;
      for (const auto& c : curves[a]) {
        const double r1 = figures({c}, target).reach[0];
        if (std::isfinite(r1)) sum += r1, ++reached;
      }
      r["headline"].push_back(
          {{"method", methods[a].name},
           {"baseline", methods[b].name},
           {"baseline_final_success_rate", target},
           {"baseline_updates", p.updates},
           {"seeds_reaching_it", reached},
           {"updates_to_reach_it", reached ? nlohmann::json(sum / reached) : nlohmann::json()},
           {"ratio", reached == p.seeds ? nlohmann::json(sum / reached / p.updates) : nlohmann::json()}});
    }
  }
  r["notes"] = nlohmann::json::array();
  if (p.seeds < 5)
    r["notes"].push_back(fmt::format(
        "With {} seeds the bootstrap intervals are coarse (a resample of {} values takes few distinct values): "
        "read 'significant' as indicative, and add seeds before drawing conclusions.",
        p.seeds, p.seeds));
  return r;
}

void write_outputs(const fs::path& out, nlohmann::json& results, const nlohmann::json& curves,
                   const std::string& title) {
  write_file_atomic((out / "curves.json").string(), curves.dump() + "\n");
  const std::string err =
      make_plot("compare", (out / "curves.json").string(), (out / "curves.png").string(), title);
  if (!err.empty()) std::fprintf(stderr, "warning: curves not plotted: %s\n", err.c_str());
  results["plot"] = err.empty() ? (out / "curves.png").string() : "";
  const std::string text = results.dump(2);
  write_file_atomic((out / "results.md").string(), compare_markdown(text));
  write_file_atomic((out / "results.json").string(), text + "\n");
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
  const Protocol p(cfg, cs, cs.split, cs.episodes_per_update, cs.threshold);
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
                                           nullptr),
                                sweep.threshold);
      const auto idx = all_of(f.auc.size());
      const double auc = mean_at(f.auc, idx);
      runs.push_back({{"lr", lr},
                      {"auc", auc},
                      {"final_success_rate", mean_at(f.success, idx)},
                      {"final_distance_mean", mean_at(f.distance, idx)}});
      if (auc > best_auc) best_auc = auc, best_lr = lr;
    }
    m.cfg.set(m.entry->lr_key, fmt::format("{}", best_lr), "sweep");
    m.lr_source = "sweep of this run (" + m.entry->lr_key + ", train split)";
    sweep_json["methods"][m.name] = {{"key", m.entry->lr_key}, {"runs", runs}, {"chosen_lr", best_lr}};
  }
  std::vector<SeedCurves> curves;
  for (const auto& m : methods) curves.push_back(run_method(m, p, m.name, progress, done, &episode_steps));
  progress.finish();

  nlohmann::json results = aggregate(methods, curves, p, episode_steps, cfg);
  results["command"] = "ml3 compare";
  results["config"] = args.config_path;
  results["sweep"] = sweep_json;
  if (!root) return "";
  write_outputs(out, results, curves_json(methods, curves, p, episode_steps),
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
  const Protocol p(cfg, mt, split_name, meta.episodes_per_task, mt.success_target);

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
  std::vector<SeedCurves> curves;
  for (const auto& m : methods) curves.push_back(run_method(m, p, m.name, progress, done, &episode_steps));
  progress.finish();

  nlohmann::json results = aggregate(methods, curves, p, episode_steps, cfg);
  results["command"] = "ml3 meta-test";
  results["loss_file"] = loss_file;
  results["success_target"] = p.threshold;
  for (const auto& m : methods)
    if (m.learned()) results["loss_meta_trained_on"] = m.inputs.value("meta_trained_on", "?");
  if (!root) return "";
  write_outputs(out, results, curves_json(methods, curves, p, episode_steps),
                "meta-test on " + p.env + " (" + split_name + " split): learned loss vs baselines");
  return results.dump(2);
}

std::string policy_meta_test_table(const std::string& results_json) { return compare_markdown(results_json); }

// ---- results.md ---------------------------------------------------------------------------
std::string compare_markdown(const std::string& results_json) {
  const auto j = nlohmann::json::parse(results_json);
  auto pct = [](const nlohmann::json& v) { return v.is_null() ? std::string("-") : fmt::format("{:.1f}", 100 * v.get<double>()); };
  auto fixed = [](const nlohmann::json& v, int d) {
    return v.is_null() ? std::string("-") : fmt::format("{:.{}f}", v.get<double>(), d);
  };
  const int seeds = j["seeds"].get<int>();
  const double threshold = j["threshold"].get<double>();
  std::ostringstream os;
  os << fmt::format("# {}: {}, {} goals\n\n", j.value("command", std::string("ml3 compare")), j["env"].get<std::string>(),
                    j["split"].get<std::string>());
  os << fmt::format(
      "Budget per method and seed: {} policy updates x {} episodes ({} environment steps); {} seeds, the same "
      "initialisations and goals for every method; deterministic evaluation every {} updates on {} `{}` goals "
      "(seed {}). Brackets: 95% percentile bootstrap intervals over seeds ({} resamples). Updates to {:.0f}%: "
      "median over seeds (- when at least half never reach it). AUC: area under the success curve over the "
      "budget, in [0, 1].\n\n",
      j["updates"].get<int>(), j["episodes_per_update"].get<int>(), j["env_steps_per_method_and_seed"].get<int64_t>(),
      seeds, j["eval_every"].get<int>(), j["eval_episodes"].get<int>(), j["split"].get<std::string>(),
      j["eval_seed"].get<int>(), j["bootstrap"]["resamples"].get<int>(), 100 * threshold);
  os << fmt::format(
      "| method | kind | shaped | lr | final success % | final distance | updates to {:.0f}% | seeds reaching | AUC |\n",
      100 * threshold);
  os << "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& m : j["methods"]) {
    const auto& ci = m["ci"];
    auto with = [&](const std::string& v, const std::string& lo, const std::string& hi) {
      return fmt::format("{} [{}, {}]", v, lo, hi);
    };
    os << fmt::format(
        "| {} | {} | {} | {} | {} | {} | {} | {}/{} | {} |\n", m["name"].get<std::string>(),
        m["kind"].get<std::string>(), m["shaped"].get<bool>() ? "yes" : "no",
        m["lr"].is_null() ? std::string("-") : fmt::format("{:g}", m["lr"].get<double>()),
        with(pct(m["final_success_rate"]), pct(ci["final_success_rate"][0]), pct(ci["final_success_rate"][1])),
        with(fixed(m["final_distance_mean"], 4), fixed(ci["final_distance_mean"][0], 4),
             fixed(ci["final_distance_mean"][1], 4)),
        with(fixed(m["updates_to_threshold"], 0), fixed(ci["updates_to_threshold"][0], 0),
             fixed(ci["updates_to_threshold"][1], 0)),
        m["seeds_reaching_threshold"].get<int>(), seeds,
        with(fixed(m["auc"], 3), fixed(ci["auc"][0], 3), fixed(ci["auc"][1], 3)));
  }
  os << "\nLearning rates: ";
  bool first = true;
  for (const auto& m : j["methods"]) {
    if (m["lr"].is_null()) continue;
    os << (first ? "" : "; ") << m["name"].get<std::string>() << " " << m["lr_source"].get<std::string>();
    first = false;
  }
  os << ".\n";
  for (const auto& m : j["methods"])
    if (m.contains("inputs") && m["inputs"].contains("file"))
      os << fmt::format("{} reads `{}`.\n", m["name"].get<std::string>(), m["inputs"]["file"].get<std::string>());

  os << "\n## Which differences are significant\n\n";
  if (j["comparisons"].empty()) os << "No learned loss and baseline to compare.\n";
  for (const auto& c : j["comparisons"]) os << "- " << c["statement"].get<std::string>() << "\n";
  os << "\nA difference is significant when its 95% interval (paired bootstrap over seeds) excludes 0.\n";
  for (const auto& n : j.value("notes", nlohmann::json::array())) os << n.get<std::string>() << "\n";

  if (!j.value("headline", nlohmann::json::array()).empty()) {
    os << "\n## Updates a learned loss needs to reach each baseline's final success\n\n";
    for (const auto& h : j["headline"]) {
      const auto& u = h["updates_to_reach_it"];
      os << fmt::format("- {}'s final success {:.1f}% after {} updates: {} reaches it after {} updates ({}/{} seeds)\n",
                        h["baseline"].get<std::string>(), 100 * h["baseline_final_success_rate"].get<double>(),
                        h["baseline_updates"].get<int>(), h["method"].get<std::string>(),
                        u.is_null() ? std::string("-") : fmt::format("{:.0f}", u.get<double>()),
                        h["seeds_reaching_it"].get<int>(), seeds);
    }
  }
  if (j.contains("sweep") && !j["sweep"]["methods"].empty()) {
    const auto& s = j["sweep"];
    os << fmt::format("\n## Learning-rate sweep ({} split, {} seed(s), {} updates; best mean AUC chosen)\n\n",
                      s["split"].get<std::string>(), s["seeds"].get<int>(), s["updates"].get<int>());
    os << "| method | key | lr | AUC | final success % | final distance | chosen |\n| --- | --- | --- | --- | --- | --- | --- |\n";
    for (const auto& [name, m] : s["methods"].items())
      for (const auto& r : m["runs"])
        os << fmt::format("| {} | `{}` | {:g} | {:.3f} | {:.1f} | {:.4f} | {} |\n", name, m["key"].get<std::string>(),
                          r["lr"].get<double>(), r["auc"].get<double>(), 100 * r["final_success_rate"].get<double>(),
                          r["final_distance_mean"].get<double>(),
                          r["lr"].get<double>() == m["chosen_lr"].get<double>() ? "yes" : "");
  }
  if (!j.value("plot", std::string()).empty()) os << "\nCurves: `" << j["plot"].get<std::string>() << "`.\n";
  return os.str();
}

}  // namespace ml3
