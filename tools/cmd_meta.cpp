// Meta-learning sub-commands: meta-train, meta-test (policies and the sine
// testbed, chosen by the config's `kind`).
#include <iostream>

#include "envs/base/error.h"
#include "src/ml3.h"
#include "src/run.h"
#include "src/sine.h"
#include "tools/commands.h"

namespace ml3 {

void register_meta_commands(CLI::App& app) {
  static MetaTrainArgs mt;
  auto* train = app.add_subcommand("meta-train", "Meta-train a learned loss (ML3); writes a run folder with loss.ml3");
  train->add_option("--config", mt.config_path, "YAML config (configs/*_ml3.yaml)")->check(CLI::ExistingFile);
  train->add_option("--out", mt.out_dir, "Run folder (default runs/<config name>)");
  train->add_option("--resume", mt.resume_dir, "Continue the run in this folder")->check(CLI::ExistingDirectory);
  train->add_flag("--force", mt.force, "Replace an existing run folder");
  train->add_option("--stop-after", mt.stop_after, "Stop after this meta-iteration (with a checkpoint)")
      ->check(CLI::Range(1, 100000000));
  train->add_flag("--quiet", mt.quiet, "No progress line");
  train->add_option("overrides", mt.overrides, "key=value config overrides");
  train->callback([] {
    const std::string cfg_file = mt.resume_dir.empty() ? mt.config_path : mt.resume_dir + "/config.yaml";
    if (peek_config_value(cfg_file, mt.overrides, "kind", "policy") == "sine") {
      Config cfg;
      const auto dir = open_run_folder(mt.config_path, mt.overrides, mt.out_dir, mt.resume_dir, mt.force,
                                       load_sine_config, &cfg);
      std::cout << run_sine_meta_train(cfg, dir.string(), mt.quiet) << "\n";
      return;
    }
    const std::string s = run_meta_train(mt);
    if (!s.empty()) std::cout << s << "\n";
  });

  static MetaTestArgs ms;
  static bool json = false;
  auto* test = app.add_subcommand("meta-test",
                                  "Train fresh policies with the learned loss alone vs REINFORCE and PPO; curves + table");
  test->add_option("--loss", ms.loss_file, "Learned-loss file (loss.ml3 of a meta-train run)")
      ->required()
      ->check(CLI::ExistingFile);
  test->add_option("--config", ms.config_path, "YAML config (the meta-train config, or another)")
      ->required()
      ->check(CLI::ExistingFile);
  test->add_option("--split", ms.split, "Goal split to train and evaluate on")->check(CLI::IsMember({"test", "ood"}));
  test->add_option("--out", ms.out_dir, "Output folder (default runs/<config>_meta_test_<split>)");
  test->add_flag("--force", ms.force, "Replace an existing output folder");
  test->add_flag("--quiet", ms.quiet, "No progress line");
  test->add_flag("--json", json, "Print results.json instead of the table");
  test->add_option("overrides", ms.overrides, "key=value overrides (e.g. policy.hidden=128,128 for another architecture)");
  test->callback([] {
    if (peek_config_value(ms.config_path, ms.overrides, "kind", "policy") == "sine") {
      Config cfg = load_sine_config(ms.config_path, ms.overrides);
      std::cout << run_sine_meta_test(ms.loss_file, cfg, ms.quiet) << "\n";
      return;
    }
    const std::string r = run_meta_test(ms);
    std::cout << (json ? r + "\n" : meta_test_table(r));
  });
}

}  // namespace ml3
