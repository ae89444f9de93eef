// `ml3 meta-test` of a learned policy loss: one learned loss against the
// baselines of a meta-training config (src/compare/meta_test.h).
#include "src/compare/meta_test.h"

#include <torch/torch.h>

#include <sstream>

#include "core/error.h"
#include "src/compare/compare.h"
#include "src/compare/methods.h"

namespace fs = std::filesystem;

namespace ml3 {

void declare_baselines(Schema& s) {
  for (const auto& e : algorithm_registry())
    if (e.is_rule() && !e.rule().bind_artifact && e.rule().meta_test_baseline)
      declare_method(s, e, "baselines." + e.name + ".");
}

std::string run_policy_meta_test(const std::string& loss_file, const Config& cfg, const std::string& split_name,
                                 int episodes_per_update, const std::string& out_dir, bool force, bool quiet) {
  const auto mt = read<MetaTestSection>(cfg, "meta_test.");
  const Protocol p = make_protocol(cfg, mt, split_name, episodes_per_update, mt.success_target);

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
    if (!e->rule().bind_artifact && !e->rule().meta_test_baseline)
      throw Error("config: key 'meta_test.methods': '" + name + "' needs more than the environment; use ml3 compare");
    Method m = make_method(name, *e, cfg, "baselines." + name + ".");
    if (e->rule().bind_artifact) {
      e->rule().bind_artifact(m.cfg, loss_file, cfg);
      m.prefix = "--loss and meta.";
    }
    m.lr_source = e->rule().bind_artifact ? "the meta-training config" : "configured (baselines." + name + ".)";
    check_method(m, p);
    methods.push_back(std::move(m));
  }
  if (methods.empty()) throw Error("config: key 'meta_test.methods' is empty");

  const fs::path out(out_dir);
  dist::Comm& comm = dist::Comm::get();
  const bool root = open_outputs(comm, out, force, cfg);
  Progress progress("meta-test " + p.env + " (" + split_name + ")",
                    static_cast<int>(methods.size()) * p.seeds * p.updates, quiet || !root);
  MethodRunner runner(comm, progress);
  MethodRunner::Report report = runner.run_all(methods, p);
  nlohmann::json& results = report.results;
  results["command"] = "ml3 meta-test";
  results["loss_file"] = loss_file;
  results["success_target"] = p.threshold;
  for (const auto& m : methods)
    if (m.learned()) results["loss_meta_trained_on"] = m.inputs.value("meta_trained_on", "?");
  if (!root) return "";
  write_outputs(out.string(), results, report.curves,
                "meta-test on " + p.env + " (" + split_name + " split): learned loss vs baselines");
  return results.dump(2);
}

std::string policy_meta_test_table(const std::string& results_json) { return compare_markdown(results_json); }

}  // namespace ml3
