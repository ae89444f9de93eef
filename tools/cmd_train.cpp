// Learning sub-commands: train, eval, meta-train, meta-test. Every algorithm
// runs through the one runner (src/run/algorithm.h); the commands only parse
// flags, pick the config and print.
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/run_paths.h"
#include "src/run/algorithm.h"
#include "src/compare/compare.h"
#include "src/run/dist.h"
#include "src/compare/meta_test.h"
#include "deploy/rig.h"
#include "ml3/runtime.hpp"
#include "src/policy/drift.h"
#include "tools/commands.h"

namespace ml3 {
namespace {

// The flags `train` and `meta-train` share; the callback runs the runner.
// Each command has its own arguments (`a`, and `loss_file`: train's --loss).
void add_run_command(CLI::App& app, Command command, const std::string& help, RunArgs& a, std::string& loss_file) {
  auto* cmd = app.add_subcommand(command_name(command), help);
  a.command = command;
  cmd->add_option("--config", a.config_path, "YAML experiment config (configs/*.yaml)")->check(CLI::ExistingFile);
  cmd->add_option("--out", a.out_dir, "Run folder (default runs/<config name>)");
  cmd->add_option("--resume", a.resume_dir, "Continue the run in this folder from its last checkpoint")
      ->check(CLI::ExistingDirectory);
  cmd->add_flag("--force", a.force, "Replace an existing run folder");
  cmd->add_option("--stop-after", a.stop_after, "Stop after this iteration (with a checkpoint); resume later")
      ->check(CLI::Range(1, 100000000));
  cmd->add_flag("--quiet", a.quiet, "No progress line");
  if (command == Command::Train)
    cmd->add_option("--loss", loss_file,
                    "Train with this learned loss: a loss.ml3 of ml3 meta-train sets algorithm=learned_loss and "
                    "learned_loss.file (use a learned_loss config, e.g. configs/pointmass_learned_loss.yaml); a "
                    "drift file of algorithm lpo (e.g. losses/reacher_lpo.drift) sets algorithm=ppo and ppo.drift "
                    "(use a PPO config)")
        ->check(CLI::ExistingFile);
  auto* print_schema = cmd->add_flag("--print-schema", "Print every config key (Markdown table) and exit");
  auto* print_config = cmd->add_flag("--print-config", "Print the resolved config (file + overrides) and exit");
  cmd->add_option("overrides", a.overrides, "key=value config overrides, e.g. optim.lr=1e-3 seed=2");
  cmd->callback([&a, &loss_file, command, print_schema, print_config] {
    if (!loss_file.empty()) {
      if (Drift::is_drift_file(loss_file))
        a.overrides.insert(a.overrides.begin(), {"algorithm=ppo", "ppo.drift=" + loss_file});
      else
        a.overrides.insert(a.overrides.begin(), {"algorithm=learned_loss", "learned_loss.file=" + loss_file});
    }
    if (*print_schema) {
      const std::string fallback = command == Command::Train ? "ppo" : "ml3";
      const AlgorithmEntry& e = find_algorithm(peek_config_value(a.config_path, a.overrides, "algorithm", fallback));
      const std::string env = peek_config_value(a.config_path, a.overrides, "env.name", "reacher");
      std::cout << schema_markdown(algorithm_schema(e, e.needs_env ? env : ""));
      return;
    }
    if (*print_config) {
      std::cout << load_config(command, a.config_path, a.overrides).to_yaml();
      return;
    }
    const RunResult r = run(a);
    if (!r.summary.empty()) std::cout << r.summary << "\n";
  });
}

}  // namespace

void register_train_commands(CLI::App& app) {
  static RunArgs train_args, meta_args;
  static std::string train_loss_file, meta_loss_file;
  add_run_command(app, Command::Train, "Train a policy (PPO, REINFORCE or a learned loss); writes a run folder",
                  train_args, train_loss_file);
  add_run_command(app, Command::MetaTrain,
                  "Meta-train a learned loss (ML3; policies or the sine testbed); writes a run folder with loss.ml3",
                  meta_args, meta_loss_file);

  static EvalArgs ea;
  static bool eval_json = false;
  auto* eval = app.add_subcommand("eval", "Evaluate a trained policy (deterministic) on a goal split");
  static std::string eval_policy;
  auto* erun =
      eval->add_option("--run", ea.run_dir, "Run folder (uses checkpoints/last.ckpt)")->check(CLI::ExistingDirectory);
  auto* eck = eval->add_option("--checkpoint", ea.checkpoint, "Checkpoint file")->check(CLI::ExistingFile);
  eval->add_option("--policy", eval_policy,
                   "A policy file (.ml3p of ml3 export, e.g. --loss-target), run by ml3_runtime on the same episodes")
      ->check(CLI::ExistingFile)
      ->excludes(erun)
      ->excludes(eck);
  eval->add_option("--split", ea.split, "Goal split")->check(CLI::IsMember({"train", "test", "ood"}));
  eval->add_option("--episodes", ea.episodes, "Episodes (one goal each)")->check(CLI::Range(1, 100000));
  eval->add_option("--seed", ea.seed, "Seed of the goals");
  eval->add_option("--threads", ea.threads, "Simulation threads (default: the run's)")->check(CLI::Range(1, 256));
  eval->add_flag("--json", eval_json, "Print one JSON object");
  eval->add_option("overrides", ea.env_overrides, "env.key=value overrides (e.g. env.model=other_arm.xml)");
  eval->callback([] {
    nlohmann::json j;
    if (!eval_policy.empty()) {
      // ml3-deploy's episodes: episode i is the one ml3 eval runs (deploy/rig.h).
      RigOptions o;
      o.policy = eval_policy;
      o.split = ea.split;
      o.episodes = ea.episodes;
      o.seed = ea.seed;
      for (const auto& ov : ea.env_overrides) {
        if (ov.rfind("env.model=", 0) != 0)
          throw UsageError("eval --policy accepts only env.model=FILE overrides, got '" + ov + "'");
        o.model = ov.substr(10);
      }
      runtime::Policy policy = runtime::Policy::load(eval_policy);
      o.env = policy.info().env;
      j = run_rig(o, &policy, eval_policy);
      j["checkpoint"] = eval_policy;
      j["env"] = o.env;
    } else {
      j = nlohmann::json::parse(run_eval(ea));
    }
    if (eval_json) {
      std::cout << j.dump() << "\n";
      return;
    }
    std::printf("%s on %s, %s split, %d episodes: success %.1f%%, final distance %.4f, return %.2f\n",
                j["checkpoint"].get<std::string>().c_str(), j["env"].get<std::string>().c_str(), ea.split.c_str(),
                ea.episodes, 100 * j["success_rate"].get<double>(), j["final_distance_mean"].get<double>(),
                j["return_mean"].get<double>());
  });

  static std::string loss, config, split = "test", out;
  static std::vector<std::string> overrides;
  static bool force = false, quiet = false, json = false;
  auto* test = app.add_subcommand(
      "meta-test", "Test a meta-trained loss: fresh learners trained with it alone vs the baselines; curves + table");
  test->add_option("--loss", loss, "Learned-loss file (loss.ml3 of a meta-train run)")->required()->check(CLI::ExistingFile);
  test->add_option("--config", config, "YAML config (the meta-train config, or another)")->required()->check(CLI::ExistingFile);
  test->add_option("--split", split, "Goal split to train and evaluate on")->check(CLI::IsMember({"test", "ood"}));
  test->add_option("--out", out, "Output folder (default runs/<config>_meta_test_<split>)");
  test->add_flag("--force", force, "Replace an existing output folder");
  test->add_flag("--quiet", quiet, "No progress line");
  test->add_flag("--json", json, "Print the results JSON instead of the table");
  test->add_option("overrides", overrides, "key=value overrides (e.g. policy.hidden=128,128 for another architecture)");
  test->callback([] {
    const Config cfg = load_config(Command::MetaTrain, config, overrides);
    const AlgorithmEntry& e = entry_of(cfg);
    if (e.is_rule() || !e.problem().meta_test) throw Error("algorithm '" + e.name + "' has no meta-test");
    const std::string dir = run_dir_or_default(out, config, "_meta_test_" + split).string();
    if (dist::Comm::get().distributed() && !e.problem().meta_test_spreads_over_ranks)
      throw Error("algorithm '" + e.name + "': its meta-test does not run on several ranks (docs/distributed.md)");
    const std::string r = e.problem().meta_test(loss, cfg, split, dir, force, quiet);
    if (r.empty()) return;  // a rank other than 0 of a distributed run
    std::cout << (json || !e.problem().meta_test_table ? r + "\n" : e.problem().meta_test_table(r));
  });

  static LandscapeArgs la;
  auto* land = app.add_subcommand(
      "landscape",
      "Plot a learned loss and the task loss along a 1-D and a 2-D slice of the trained model's parameters "
      "(shaped sine: over theta, and over theta x theta*); PNG with the minima marked, numbers as JSON and CSV");
  land->add_option("--loss", la.loss_file, "Learned-loss file (loss.ml3 of a sine or mountain_car meta-train run)")
      ->required()
      ->check(CLI::ExistingFile);
  land->add_option("--config", la.config_path, "YAML config of the meta-problem (the meta-train config)")
      ->required()
      ->check(CLI::ExistingFile);
  land->add_option("--out", la.out_dir, "Output folder (default runs/<config>_landscape)");
  land->add_option("--points", la.points, "Samples per axis (default 61)")->check(CLI::Range(3, 1001));
  land->add_flag("--force", la.force, "Replace an existing output folder");
  land->add_option("overrides", la.overrides, "key=value overrides, e.g. sine.test_frequency=2.0");
  land->callback([] { std::cout << run_landscape(la) << "\n"; });

  static CompareArgs ca;
  static bool compare_json = false;
  auto* cmp = app.add_subcommand(
      "compare",
      "Compare learned losses and baselines (REINFORCE, PPO, behaviour cloning, PPO from the clone) on one protocol: "
      "learning rates swept on the train split, curves with 95% bands, a table with bootstrap intervals");
  cmp->add_option("--config", ca.config_path, "YAML compare config (configs/*_compare.yaml)")
      ->required()
      ->check(CLI::ExistingFile);
  cmp->add_option("--split", ca.split, "Goal split (default: the config's compare.split)")
      ->check(CLI::IsMember({"test", "ood"}));
  cmp->add_option("--out", ca.out_dir, "Output folder (default runs/<config name>, runs/<config name>_<split> with --split)");
  cmp->add_flag("--force", ca.force, "Replace an existing output folder");
  cmp->add_flag("--quiet", ca.quiet, "No progress line");
  cmp->add_flag("--json", compare_json, "Print the results JSON instead of the Markdown table");
  cmp->add_flag("--no-sweep", ca.no_sweep, "Use the configured learning rates (sweep.enabled=false)");
  auto* cmp_schema = cmp->add_flag("--print-schema", "Print every config key of this config's methods (Markdown) and exit");
  auto* cmp_print = cmp->add_flag("--print-config", "Print the resolved config (file + overrides) and exit");
  cmp->add_option("overrides", ca.overrides, "key=value overrides, e.g. compare.seeds=5 policy.hidden=64,64");
  cmp->callback([cmp_schema, cmp_print] {
    if (*cmp_schema || *cmp_print) {
      const Config c = load_compare_config(ca.config_path, ca.overrides);
      std::cout << (*cmp_schema ? schema_markdown(c.schema()) : c.to_yaml());
      return;
    }
    const std::string r = run_compare(ca);
    if (r.empty()) return;  // a rank other than 0 of a distributed run
    std::cout << (compare_json ? nlohmann::json::parse(r).dump() + "\n" : compare_markdown(r));
  });
}

}  // namespace ml3
