// The method loop of `ml3 compare` and `ml3 meta-test` (src/compare/methods.h).
#include "src/compare/methods.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fmt/format.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "src/policy/trainer.h"

namespace fs = std::filesystem;

namespace ml3 {

// A method's own sections under `prefix`: those of `ml3 train` with its
// algorithm; compared methods use a fixed learning rate per update.
void declare_method(Schema& s, const AlgorithmEntry& e, const std::string& prefix) {
  e.declare(s, prefix);
  if (s.find(prefix + "optim.anneal_lr")) s.set_default(prefix + "optim.anneal_lr", "false");
}

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

namespace {
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

}  // namespace

// Input files checked and every rule built once (tiny batches) before any
// work: a bad file or key fails in seconds, not after the first methods ran.
void check_method(Method& m, const Protocol& p) {
  try {
    if (m.entry->rule().inputs) m.inputs = m.entry->rule().inputs(m.cfg);
    PolicyRunPlan plan = run_plan(p, 0, 1, 1, 1);
    plan.build_only = true;  // no clone pre-training: that is the runs' work
    PolicyTrainer probe(m.cfg, *m.entry, "", plan);
  } catch (const Error& e) {
    // The rule names its own keys (bc.demos); say whose they are.
    throw Error("method '" + m.name + "' (keys " + m.prefix + "*): " + e.what());
  }
}

namespace {
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

}  // namespace

// Trains and evaluates one method on every seed of the protocol.
MethodRuns MethodRunner::run(const Method& m, const Protocol& p, const std::string& label, int* episode_steps) {
  dist::Comm& comm = comm_;
  MethodRuns out;
  std::vector<std::vector<double>> rows(static_cast<size_t>(p.seeds));
  for (int s = 0; s < p.seeds; ++s) {
    if (comm.owner(first_job_, s) != comm.rank()) continue;
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
      progress_.update(++done_, fmt::format("{} seed {} | success {:.0f}%", label, s, 100 * curve.back().success));
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
  rows = comm.share_jobs(rows, first_job_, "seed curves");
  first_job_ += p.seeds;
  for (const auto& r : rows) {
    out.costs.push_back({r.at(0), r.at(1), r.at(2)});
    out.curves.push_back(row_curve(std::vector<double>(r.begin() + 3, r.end()), episode_steps));
  }
  return out;
}

namespace {
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

}  // namespace

MethodRunner::Report MethodRunner::run_all(const std::vector<Method>& methods, const Protocol& p) {
  int episode_steps = 0;
  std::vector<MethodRuns> runs;
  for (const auto& m : methods) runs.push_back(run(m, p, m.name, &episode_steps));
  progress_.finish();
  const std::vector<SeedCurves> curves = curves_of(runs);
  const std::vector<SeedCosts> costs = costs_of(runs);
  return {aggregate(reports(methods), curves, costs, p, episode_steps),
          curves_json(reports(methods), curves, costs, p, episode_steps)};
}

// The output folder and its config.yaml, by rank 0 of a distributed run
// (the others wait for it); returns whether this rank writes the outputs.
bool open_outputs(dist::Comm& comm, const fs::path& out, bool force, const Config& cfg) {
  if (comm.root()) {
    prepare_run_dir(out, force);
    write_file_atomic((out / "config.yaml").string(), cfg.to_yaml());
  }
  comm.barrier("output folder");
  return comm.root();
}

}  // namespace ml3
