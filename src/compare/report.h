#pragma once
// The statistics and outputs of `ml3 compare` and `ml3 meta-test`
// (src/compare/compare.cpp runs the methods): per-seed figures of the success
// curves, bootstrap intervals over seeds, paired differences between each
// learned loss and each baseline, curves with 95% bands, results.json,
// results.md and the plot. Internal to src/; LibTorch-free.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ml3 {

// One deterministic evaluation of a policy during its training.
struct CurvePoint {
  int update;
  double success, distance, ret;
};
using SeedCurves = std::vector<std::vector<CurvePoint>>;  // one curve per seed

// What one seed's training cost: environment steps collected, optimiser
// steps on the policy (cloning steps included), and wall time (building the
// rule, e.g. a clone's pre-training, and every update; evaluations excluded).
struct SeedCost {
  double env_steps = 0, policy_steps = 0, wall_seconds = 0;
};
using SeedCosts = std::vector<SeedCost>;  // one per seed

// What every method of one comparison is run with.
struct Protocol {
  std::string env, split;
  uint64_t seed = 1, seed_base = 7000;
  int seeds = 3, updates = 200, episodes = 64, eval_every = 10, eval_episodes = 100;
  uint64_t eval_seed = 0;
  double threshold = 0.8;
  std::vector<int> policy_hidden;
};

// A method as the report describes it.
struct MethodReport {
  std::string name, kind, lr_source;
  bool learned = false, shaped = false;
  double lr = 0;  // NAN: the rule has none
  nlohmann::json inputs;  // the rule's input files, described (null: none)
  std::vector<int> policy_hidden;  // the policy it trains
};

// Per seed: final success, final distance, first update reaching the
// threshold (inf: never), area under the success curve (trapezoids over the
// updates, divided by the budget: in [0, 1]).
// Interquartile mean (rliable): the mean of the values left after dropping
// floor(n/4) from each end.
double iqm(std::vector<double> v);
struct Figures {
  std::vector<double> success, distance, reach, auc;
};
Figures figures(const SeedCurves& cs, double threshold);
double mean_of(const std::vector<double>& v);

// results.json (without the sweep) of one comparison, and curves.json (mean
// and 95% band per method vs updates and vs environment steps).
nlohmann::json aggregate(const std::vector<MethodReport>& methods, const std::vector<SeedCurves>& curves,
                         const std::vector<SeedCosts>& costs, const Protocol& p, int episode_steps);
// A method that collected no environment steps (behaviour cloning, a target
// network alone) is marked "env_steps": 0: the plot draws it against
// environment steps as its final level, not along the axis.
nlohmann::json curves_json(const std::vector<MethodReport>& methods, const std::vector<SeedCurves>& curves,
                           const std::vector<SeedCosts>& costs, const Protocol& p, int episode_steps);
// Writes curves.json, curves.png (titled `title`), results.md and
// results.json (with "plot" set) into `out`, atomically.
void write_outputs(const std::string& out, nlohmann::json& results, const nlohmann::json& curves,
                   const std::string& title);

}  // namespace ml3
