#pragma once
// The method loop shared by `ml3 compare` and `ml3 meta-test`: a method is a
// policy-training algorithm of the registry with its own config; every
// method runs on every seed of one protocol (the same initialisations, goals,
// batch size and update budget) in the PolicyTrainer of `ml3 train`, and its
// curves and costs go to the report (src/compare/report.h). In a distributed
// run the (method, seed) runs of a command go to the ranks in turn. Internal
// to src/compare/.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"
#include "src/compare/report.h"
#include "src/compare/sections.h"
#include "src/run/algorithm.h"
#include "src/run/dist.h"
#include "src/run/run.h"

namespace ml3 {

// A method's own sections under `prefix`: those of `ml3 train` with its
// algorithm; compared methods use a fixed learning rate per update.
void declare_method(Schema& s, const AlgorithmEntry& e, const std::string& prefix);

struct Method {
  std::string name, prefix;  // prefix: where its own keys live (methods.<name>., baselines.<name>.)
  const AlgorithmEntry* entry = nullptr;
  Config cfg;  // the training config (as ml3 train --config would read it)
  nlohmann::json inputs;  // the rule's input files, described
  std::string lr_source;
  std::vector<double> sweep_lrs;
  bool as_baseline = false;  // methods.<name>.baseline: a loss file that stands for a hand-designed objective
  // A learned objective: a loss file's rule, or a rule whose inputs include
  // a meta-trained drift (PPO with ppo.drift).
  bool learned() const {
    const bool drift = inputs.is_object() && inputs.contains("drift");
    return (entry->rule().bind_artifact != nullptr || drift) && !as_baseline;
  }
  bool shaped() const { return inputs.is_object() && inputs.value("shaped", false); }
  double lr() const { return entry->rule().lr_key.empty() ? NAN : cfg.get_double(entry->rule().lr_key); }
};

// The protocol of a comparison from its config.
Protocol make_protocol(const Config& c, const ComparisonProtocol& cp, const std::string& split_name,
                       int episodes_per_update, double success_threshold);
// The report's view of the methods.
std::vector<MethodReport> reports(const std::vector<Method>& methods);
// The training config of a method: its own sections from `own` (e.g.
// baselines.ppo. or methods.shaped.), the rest (seed, threads, env.*,
// policy.*, value.*) from the comparison's config.
Method make_method(const std::string& name, const AlgorithmEntry& entry, const Config& src, const std::string& own);
// Input files checked and every rule built once (tiny batches) before any
// work: a bad file or key fails in seconds, not after the first methods ran.
void check_method(Method& m, const Protocol& p);

// A method's curves and costs over the seeds.
struct MethodRuns {
  SeedCurves curves;
  SeedCosts costs;
};

// The runs of one command: trains and evaluates methods on every seed of a
// protocol, counting them on one progress line. In a distributed run, run j
// of the command (in call order) goes to rank j % world (docs/distributed.md).
class MethodRunner {
 public:
  MethodRunner(dist::Comm& comm, Progress& progress) : comm_(comm), progress_(progress) {}
  MethodRuns run(const Method& m, const Protocol& p, const std::string& label, int* episode_steps);
  // Every method on the protocol, the progress line finished, and the
  // report: results.json's statistics and curves.json's curves.
  struct Report {
    nlohmann::json results, curves;
  };
  Report run_all(const std::vector<Method>& methods, const Protocol& p);

 private:
  dist::Comm& comm_;
  Progress& progress_;
  int done_ = 0;       // updates run, for the progress line
  int first_job_ = 0;  // the command's index of this method's first seed
};

// The output folder and its config.yaml, by rank 0 of a distributed run
// (the others wait for it); returns whether this rank writes the outputs.
bool open_outputs(dist::Comm& comm, const std::filesystem::path& out, bool force, const Config& cfg);

}  // namespace ml3
