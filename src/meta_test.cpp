// `ml3 meta-test` of a learned policy loss against the baselines: every
// method is a policy-training algorithm of the registry, run by the same
// PolicyTrainer as `ml3 train`.
#include "src/meta_test.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <map>
#include <sstream>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "models/learned_loss.h"
#include "src/plot.h"
#include "src/policy_trainer.h"
#include "src/run.h"

namespace fs = std::filesystem;

namespace ml3 {

void declare_baselines(Schema& s) {
  for (const auto& e : algorithm_registry()) {
    if (e.command != Command::Train || e.bind_artifact) continue;
    const std::string prefix = "baselines." + e.name + ".";
    e.declare(s, prefix);
    // Meta-test compares methods at a fixed learning rate per update.
    if (s.find(prefix + "optim.anneal_lr")) s.set_default(prefix + "optim.anneal_lr", "false");
  }
}

namespace {

struct CurvePoint {
  int update;
  double success, distance, ret;
};

// The training config of one method: its own sections from baselines.<name>.*
// (or the artifact bound in), the rest (seed, threads, env.*, policy.*,
// value.*) from the meta-learning config.
Config method_config(const AlgorithmEntry& entry, const Config& meta, const std::string& loss_file) {
  const std::string env = meta.get_string("env.name");
  Config c(algorithm_schema(entry, env));
  const std::string own = "baselines." + entry.name + ".";
  for (const auto& d : c.schema().params()) {
    if (d.key == "algorithm") continue;
    if (meta.has(own + d.key)) c.set(d.key, meta.values().at(own + d.key), "meta-test");
    else if (meta.has(d.key)) c.set(d.key, meta.values().at(d.key), "meta-test");
  }
  if (entry.bind_artifact) entry.bind_artifact(c, loss_file, meta);
  return c;
}

std::vector<const AlgorithmEntry*> parse_methods(const std::string& text) {
  std::vector<const AlgorithmEntry*> out;
  std::stringstream ss(text);
  std::string m;
  while (std::getline(ss, m, ',')) {
    const AlgorithmEntry* e = nullptr;
    try {
      e = &find_algorithm(m);
    } catch (const Error& err) {
      throw Error(std::string("config: key 'meta_test.methods': ") + err.what());
    }
    if (e->command != Command::Train)
      throw Error("config: key 'meta_test.methods': '" + m + "' does not train policies");
    out.push_back(e);
  }
  if (out.empty()) throw Error("config: key 'meta_test.methods' is empty");
  return out;
}

}  // namespace

std::string run_policy_meta_test(const std::string& loss_file, const Config& cfg, const std::string& split_name,
                                 const std::string& out_dir, bool force, bool quiet) {
  nlohmann::json loss_meta;
  {
    Params phi;
    LearnedLoss::load(loss_file, &phi, &loss_meta);  // a clear error before any work
  }
  const Split split = parse_split(split_name);
  const fs::path out(out_dir);
  prepare_run_dir(out, force);
  write_file_atomic((out / "config.yaml").string(), cfg.to_yaml());

  const std::string env_name = cfg.get_string("env.name");
  const auto mt = read<MetaTestSection>(cfg, "meta_test.");
  const auto meta = read<MetaSection>(cfg, "meta.");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  const auto methods = parse_methods(mt.methods);

  Progress progress("meta-test " + env_name + " (" + split_name + ")",
                    static_cast<int>(methods.size()) * mt.seeds * mt.updates, quiet);
  int done = 0;
  std::map<std::string, std::vector<std::vector<CurvePoint>>> curves;
  std::vector<std::string> names;
  for (const AlgorithmEntry* entry : methods) {
    const std::string method = entry->name;
    names.push_back(method);
    const Config mc = method_config(*entry, cfg, loss_file);
    for (int s = 0; s < mt.seeds; ++s) {
      PolicyRunPlan plan;
      plan.train_split = plan.eval_split = split;
      plan.seed = mix_seed(seed, 7000 + s);
      plan.task_offset = 100000, plan.noise_offset = 200000, plan.shuffle_offset = 300000;
      plan.iterations = mt.updates;
      plan.episodes = meta.episodes_per_task;
      plan.eval_every = mt.eval_every;
      plan.eval_episodes = mt.eval_episodes;
      plan.eval_seed = static_cast<uint64_t>(mt.eval_seed);
      PolicyTrainer trainer(mc, *entry, "", plan);
      std::vector<CurvePoint> curve;
      auto eval_now = [&](int u) {
        const EvalResult r = trainer.evaluate_policy();
        curve.push_back({u, r.success_rate, r.final_distance_mean, r.return_mean});
      };
      eval_now(0);
      bool diverged = false;
      for (int u = 1; u <= mt.updates; ++u) {
        if (!diverged) {
          try {
            trainer.iterate(u);
          } catch (const NonFiniteError& e) {
            std::fprintf(stderr, "\nwarning: %s seed %d diverged at update %d (%s); counted as failing from here\n",
                         method.c_str(), s, u, e.what());
            diverged = true;
          }
        }
        if (u % mt.eval_every == 0 || u == mt.updates) {
          if (diverged) curve.push_back({u, 0.0, curve.back().distance, curve.back().ret});
          else eval_now(u);
        }
        progress.update(++done, fmt::format("{} seed {} | success {:.0f}%", method, s, 100 * curve.back().success));
      }
      curves[method].push_back(curve);
    }
  }
  progress.finish();

  const int updates = mt.updates, n_seeds = mt.seeds, episodes = meta.episodes_per_task;
  const double target = mt.success_target;
  const std::string& split_label = split_name;
  // Aggregate.
  auto first_reach = [](const std::vector<CurvePoint>& c, double level) -> int {
    for (const auto& p : c)
      if (p.success >= level - 1e-12) return p.update;
    return -1;
  };
  nlohmann::json results = {{"env", env_name},
                            {"split", split_label},
                            {"loss_file", loss_file},
                            {"loss_meta_trained_on", loss_meta.value("env", "?")},
                            {"updates", updates},
                            {"episodes_per_update", episodes},
                            {"seeds", n_seeds},
                            {"success_target", target},
                            {"policy_hidden", cfg.get_int_list("policy.hidden")},
                            {"methods", nlohmann::json::array()}};
  nlohmann::json curves_json = {{"x_label", "policy updates"}, {"panels", nlohmann::json::array()}};
  nlohmann::json panel_s = {{"y_label", "success rate (" + split_label + " goals)"}, {"methods", nlohmann::json::object()}};
  nlohmann::json panel_d = {{"y_label", "final distance (" + split_label + " goals)"}, {"methods", nlohmann::json::object()}};
  for (const auto& method : names) {
    const auto& cs = curves[method];
    double fs_mean = 0, fd_mean = 0, reach_sum = 0;
    int reached = 0;
    nlohmann::json per_seed = nlohmann::json::array();
    std::vector<std::vector<double>> ys, yd;
    for (const auto& c : cs) {
      fs_mean += c.back().success / cs.size();
      fd_mean += c.back().distance / cs.size();
      const int r = first_reach(c, target);
      if (r >= 0) reach_sum += r, ++reached;
      per_seed.push_back({{"final_success_rate", c.back().success},
                          {"final_distance_mean", c.back().distance},
                          {"updates_to_threshold", r >= 0 ? nlohmann::json(r) : nlohmann::json()}});
      std::vector<double> a, b;
      for (const auto& p : c) a.push_back(p.success), b.push_back(p.distance);
      ys.push_back(a), yd.push_back(b);
    }
    panel_s["methods"][method] = ys;
    panel_d["methods"][method] = yd;
    results["methods"].push_back({{"name", method},
                                  {"final_success_rate", fs_mean},
                                  {"final_distance_mean", fd_mean},
                                  {"updates_to_threshold", reached == n_seeds ? nlohmann::json(reach_sum / reached)
                                                                              : nlohmann::json()},
                                  {"seeds_reaching_threshold", reached},
                                  {"per_seed", per_seed}});
  }
  std::vector<int> xs;
  for (const auto& p : curves[names.front()].front()) xs.push_back(p.update);
  panel_s["x"] = xs, panel_d["x"] = xs;
  curves_json["panels"].push_back(panel_s);
  curves_json["panels"].push_back(panel_d);
  // Headline: updates the method under test (the learned loss) needs to reach
  // each baseline's final success rate (the paper's claim: at most half).
  std::string tested;
  for (const AlgorithmEntry* e : methods)
    if (e->bind_artifact) tested = e->name;
  results["headline"] = nlohmann::json::array();
  for (const auto& base : names) {
    if (tested.empty() || base == tested) continue;
    double final_success = 0;
    for (const auto& c : curves[base]) final_success += c.back().success / curves[base].size();
    double sum = 0;
    int reached = 0;
    for (const auto& c : curves[tested]) {
      const int r = first_reach(c, final_success);
      if (r >= 0) sum += r, ++reached;
    }
    results["headline"].push_back(
        {{"method", tested},
         {"baseline", base},
         {"baseline_final_success_rate", final_success},
         {"baseline_updates", updates},
         {"seeds_reaching_it", reached},
         {"updates_to_reach_it", reached ? nlohmann::json(sum / reached) : nlohmann::json()},
         {"ratio", reached == n_seeds ? nlohmann::json(sum / reached / updates) : nlohmann::json()}});
  }
  write_file_atomic((out / "curves.json").string(), curves_json.dump() + "\n");
  const std::string err = make_plot("compare", (out / "curves.json").string(), (out / "curves.png").string(),
                                    "meta-test on " + env_name + " (" + split_label + " split): learned loss vs baselines");
  if (!err.empty()) std::fprintf(stderr, "warning: curves not plotted: %s\n", err.c_str());
  results["plot"] = err.empty() ? (out / "curves.png").string() : "";
  const std::string text = results.dump(2);
  write_file_atomic((out / "results.json").string(), text + "\n");
  return text;
}

std::string policy_meta_test_table(const std::string& results_json) {
  const auto j = nlohmann::json::parse(results_json);
  std::ostringstream os;
  os << fmt::format("meta-test on {}, {} split: {} updates x {} episodes, {} seeds, success target {:.0f}%\n",
                    j["env"].get<std::string>(), j["split"].get<std::string>(), j["updates"].get<int>(),
                    j["episodes_per_update"].get<int>(), j["seeds"].get<int>(), 100 * j["success_target"].get<double>());
  os << fmt::format("{:<13} {:>14} {:>15} {:>22}\n", "method", "final success", "final distance", "updates to target");
  for (const auto& m : j["methods"]) {
    const std::string reach =
        m["updates_to_threshold"].is_null()
            ? fmt::format("not reached ({}/{} seeds)", m["seeds_reaching_threshold"].get<int>(), j["seeds"].get<int>())
            : fmt::format("{:.0f}", m["updates_to_threshold"].get<double>());
    os << fmt::format("{:<13} {:>13.1f}% {:>15.4f} {:>22}\n", m["name"].get<std::string>(),
                      100 * m["final_success_rate"].get<double>(), m["final_distance_mean"].get<double>(), reach);
  }
  for (const auto& h : j.value("headline", nlohmann::json::array())) {
    const auto& u = h["updates_to_reach_it"];
    os << fmt::format("{}'s final success {:.1f}% after {} updates; {} reaches it after {} updates ({}/{} seeds)\n",
                      h["baseline"].get<std::string>(), 100 * h["baseline_final_success_rate"].get<double>(),
                      h["baseline_updates"].get<int>(), h["method"].get<std::string>(),
                      u.is_null() ? std::string("-") : fmt::format("{:.0f}", u.get<double>()),
                      h["seeds_reaching_it"].get<int>(), j["seeds"].get<int>());
  }
  return os.str();
}

}  // namespace ml3
