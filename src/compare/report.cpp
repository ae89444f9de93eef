// The statistics and outputs of `ml3 compare` and `ml3 meta-test`
// (src/compare/report.h). LibTorch-free.
#include "src/compare/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <functional>
#include <limits>
#include <sstream>

#include "core/archive.h"
#include "core/rng.h"
#include "src/compare/compare.h"
#include "src/run/plot.h"
#include "src/run/run.h"

namespace fs = std::filesystem;

namespace ml3 {

namespace {

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

double reaching(const std::vector<double>& reach, const std::vector<int>& idx) {
  double n = 0;
  for (int i : idx) n += std::isfinite(reach[i]);
  return n;
}

double iqm_at(const std::vector<double>& v, const std::vector<int>& idx) {
  std::vector<double> x;
  for (int i : idx) x.push_back(v[i]);
  return iqm(std::move(x));
}

// A loss file's record of its meta-training (inputs.meta_training), or null.
nlohmann::json meta_cost(const MethodReport& m, const char* key) {
  if (!m.inputs.is_object() || !m.inputs.contains("meta_training")) return nlohmann::json();
  return m.inputs["meta_training"].value(key, nlohmann::json());
}

nlohmann::json method_json(const MethodReport& m, const Figures& f, const SeedCosts& costs, int updates) {
  const auto all = all_of(f.success.size());
  auto mean_ci = [&](const std::vector<double>& v) {
    return interval(bootstrap(v.size(), [&](const std::vector<int>& i) { return mean_at(v, i); }));
  };
  // Costs: environment steps to the threshold (from the update reaching it;
  // every update of a method collects the same number of episodes).
  std::vector<double> env_steps, policy_steps, wall, env_to_threshold;
  for (size_t s = 0; s < f.success.size(); ++s) {
    const SeedCost c = s < costs.size() ? costs[s] : SeedCost{};
    env_steps.push_back(c.env_steps), policy_steps.push_back(c.policy_steps), wall.push_back(c.wall_seconds);
    env_to_threshold.push_back(std::isfinite(f.reach[s]) ? f.reach[s] * c.env_steps / std::max(1, updates) : kInf);
  }
  nlohmann::json per_seed = nlohmann::json::array();
  for (size_t s = 0; s < f.success.size(); ++s)
    per_seed.push_back({{"final_success_rate", f.success[s]},
                        {"final_distance_mean", f.distance[s]},
                        {"updates_to_threshold", num(f.reach[s])},
                        {"env_steps_to_threshold", num(env_to_threshold[s])},
                        {"auc", f.auc[s]},
                        {"env_steps", env_steps[s]},
                        {"policy_steps", policy_steps[s]},
                        {"wall_seconds", wall[s]}});
  nlohmann::json j = {
      {"name", m.name},
      {"kind", m.kind},
      {"shaped", m.shaped},
      {"lr", num(m.lr)},
      {"lr_source", m.lr_source},
      {"policy_hidden", m.policy_hidden},
      {"final_success_rate", mean_at(f.success, all)},
      {"final_distance_mean", mean_at(f.distance, all)},
      {"updates_to_threshold", num(median_at(f.reach, all))},
      {"seeds_reaching_threshold", static_cast<int>(reaching(f.reach, all))},
      {"auc", mean_at(f.auc, all)},
      {"iqm_final_success", iqm_at(f.success, all)},
      {"env_steps", mean_at(env_steps, all)},
      {"env_steps_to_threshold", num(median_at(env_to_threshold, all))},
      {"policy_steps", mean_at(policy_steps, all)},
      {"wall_seconds", mean_at(wall, all)},
      {"meta_training_seconds", meta_cost(m, "meta_training_seconds")},
      {"meta_training_env_steps", meta_cost(m, "meta_training_env_steps")},
      {"ci",
       {{"final_success_rate", mean_ci(f.success)},
        {"iqm_final_success",
         interval(bootstrap(f.success.size(), [&](const std::vector<int>& i) { return iqm_at(f.success, i); }))},
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

}  // namespace

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

double mean_of(const std::vector<double>& v) { return mean_at(v, all_of(v.size())); }

double iqm(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t cut = v.size() / 4;
  double s = 0;
  for (size_t i = cut; i < v.size() - cut; ++i) s += v[i];
  return s / static_cast<double>(v.size() - 2 * cut);
}

// The curves with mean and 95% band (bootstrap over seeds) per method, vs
// updates and vs environment steps (tools/plot.py, kind "compare").
nlohmann::json curves_json(const std::vector<MethodReport>& methods, const std::vector<SeedCurves>& curves,
                           const std::vector<SeedCosts>& costs, const Protocol& p, int episode_steps) {
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
      double env_steps = 0;
      for (const auto& c : k < costs.size() ? costs[k] : SeedCosts{}) env_steps += c.env_steps;
      mj["env_steps"] = env_steps / std::max<size_t>(1, curves[k].size());
      pj["methods"][methods[k].name] = mj;
    }
    j["panels"].push_back(pj);
  }
  return j;
}

// results.json (without the sweep) of one comparison.
nlohmann::json aggregate(const std::vector<MethodReport>& methods, const std::vector<SeedCurves>& curves,
                         const std::vector<SeedCosts>& costs, const Protocol& p, int episode_steps) {
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
                      {"policy_hidden", p.policy_hidden},
                      {"bootstrap", {{"resamples", kResamples}, {"level", 0.95}, {"seed", kBootstrapSeed},
                                     {"method", "percentile, seeds resampled with replacement; differences paired by seed"}}},
                      {"methods", nlohmann::json::array()},
                      {"comparisons", nlohmann::json::array()},
                      {"headline", nlohmann::json::array()}};
  std::vector<Figures> figs;
  for (size_t k = 0; k < methods.size(); ++k) {
    figs.push_back(figures(curves[k], p.threshold));
    r["methods"].push_back(method_json(methods[k], figs.back(), k < costs.size() ? costs[k] : SeedCosts{}, p.updates));
  }
  // The strongest baseline (highest mean final success): the comparison a
  // learned loss's claim has to survive.
  int best = -1;
  for (size_t b = 0; b < methods.size(); ++b)
    if (!methods[b].learned && (best < 0 || mean_of(figs[b].success) > mean_of(figs[best].success)))
      best = static_cast<int>(b);
  r["best_baseline"] = best < 0 ? nlohmann::json() : nlohmann::json(methods[best].name);
  for (size_t a = 0; a < methods.size(); ++a) {
    if (!methods[a].learned) continue;
    for (size_t b = 0; b < methods.size(); ++b) {
      if (methods[b].learned) continue;
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

void write_outputs(const std::string& out_dir, nlohmann::json& results, const nlohmann::json& curves,
                   const std::string& title) {
  const fs::path out(out_dir);
  write_file_atomic((out / "curves.json").string(), curves.dump() + "\n");
  const std::string err =
      make_plot("compare", (out / "curves.json").string(), (out / "curves.png").string(), title);
  if (!err.empty()) std::fprintf(stderr, "warning: curves not plotted: %s\n", err.c_str());
  results["plot"] = err.empty() ? (out / "curves.png").string() : "";
  const std::string text = results.dump(2);
  write_file_atomic((out / "results.md").string(), compare_markdown(text));
  write_file_atomic((out / "results.json").string(), text + "\n");
}

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
      "Budget per method and seed: {} policy updates x {} episodes (at most {} environment steps); {} seeds, the same "
      "initialisations and goals for every method; deterministic evaluation every {} updates on {} `{}` goals "
      "(seed {}). Brackets: 95% percentile bootstrap intervals over seeds ({} resamples). Updates to {:.0f}%: "
      "median over seeds (- when at least half never reach it). AUC: area under the success curve over the "
      "budget, in [0, 1].\n\n",
      j["updates"].get<int>(), j["episodes_per_update"].get<int>(), j["env_steps_per_method_and_seed"].get<int64_t>(),
      seeds, j["eval_every"].get<int>(), j["eval_episodes"].get<int>(), j["split"].get<std::string>(),
      j["eval_seed"].get<int>(), j["bootstrap"]["resamples"].get<int>(), 100 * threshold);
  os << fmt::format(
      "| method | kind | shaped | lr | final success % | IQM % | final distance | updates to {:.0f}% | seeds reaching | "
      "AUC | env steps | env steps to {:.0f}% | policy steps | wall s | meta-training s (env steps) |\n",
      100 * threshold, 100 * threshold);
  os << "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  auto count = [](const nlohmann::json& v) { return v.is_null() ? std::string("-") : fmt_count(v.get<double>()); };
  for (const auto& m : j["methods"]) {
    const auto& ci = m["ci"];
    auto with = [&](const std::string& v, const std::string& lo, const std::string& hi) {
      return fmt::format("{} [{}, {}]", v, lo, hi);
    };
    const nlohmann::json none;
    const std::string meta =
        m.value("meta_training_seconds", none).is_null()
            ? std::string("-")
            : fmt::format("{:.0f} ({})", m["meta_training_seconds"].get<double>(), count(m["meta_training_env_steps"]));
    os << fmt::format(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {:.1f} | {} |\n",
        m["name"].get<std::string>(), m["kind"].get<std::string>(), m["shaped"].get<bool>() ? "yes" : "no",
        m["lr"].is_null() ? std::string("-") : fmt::format("{:g}", m["lr"].get<double>()),
        with(pct(m["final_success_rate"]), pct(ci["final_success_rate"][0]), pct(ci["final_success_rate"][1])),
        with(pct(m["iqm_final_success"]), pct(ci["iqm_final_success"][0]), pct(ci["iqm_final_success"][1])),
        with(fixed(m["final_distance_mean"], 4), fixed(ci["final_distance_mean"][0], 4),
             fixed(ci["final_distance_mean"][1], 4)),
        with(fixed(m["updates_to_threshold"], 0), fixed(ci["updates_to_threshold"][0], 0),
             fixed(ci["updates_to_threshold"][1], 0)),
        m["seeds_reaching_threshold"].get<int>(), seeds,
        with(fixed(m["auc"], 3), fixed(ci["auc"][0], 3), fixed(ci["auc"][1], 3)), count(m["env_steps"]),
        count(m["env_steps_to_threshold"]), count(m["policy_steps"]), m["wall_seconds"].get<double>(), meta);
  }
  os << "\nCosts are per seed (means): environment steps collected, optimiser steps on the policy (cloning steps "
        "included), wall time of training (evaluations excluded); a learned loss's or target network's "
        "meta-training is paid once, as its loss file records it.\n";
  if (!j.value("best_baseline", nlohmann::json()).is_null())
    os << fmt::format("Strongest baseline (highest mean final success): {}.\n", j["best_baseline"].get<std::string>());
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
