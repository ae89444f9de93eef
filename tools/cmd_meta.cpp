// Meta-learning sub-commands: meta-train, meta-test (policies and the sine
// testbed, chosen by the config's `kind`).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "src/ml3.h"
#include "src/run.h"
#include "src/sine/sine.h"
#include "tools/commands.h"

namespace ml3 {

void register_meta_commands(CLI::App& app) {
  // bench sine: the ML3 sine meta step, hand-derived Eigen vs LibTorch autograd
  // (same run), and against the reference implementation's 4.2 ms.
  static int bench_steps = 2000;
  static bool bench_json = false;
  auto* bs = app.get_subcommand("bench")->add_subcommand(
      "sine", "ML3 sine meta step: hand-derived Eigen vs LibTorch autograd (same run) vs the reference's 4.2 ms");
  bs->add_option("--steps", bench_steps, "Meta steps per measurement")->check(CLI::Range(10, 1000000));
  bs->add_flag("--json", bench_json, "Print JSON");
  bs->callback([] {
    nlohmann::json out = nlohmann::json::array();
    const double reference_ms = 4.2;
    double autograd_ms = 0;
    for (const char* impl : {"autograd", "eigen"})
      for (const char* f64 : {"false", "true"}) {
        const Config cfg = load_sine_config("", {std::string("sine.implementation=") + impl, std::string("sine.float64=") + f64});
        const double ms = sine_meta_step_ms(cfg, bench_steps);
        if (std::string(impl) == "autograd" && std::string(f64) == "false") autograd_ms = ms;
        out.push_back({{"implementation", impl},
                       {"dtype", std::string(f64) == "true" ? "float64" : "float32"},
                       {"meta_step_ms", ms},
                       {"speedup_vs_reference_python", reference_ms / ms},
                       {"speedup_vs_autograd_float32", autograd_ms / ms}});
      }
    if (bench_json) {
      std::cout << out.dump(2) << "\n";
      return;
    }
    std::printf("%-10s %-8s %12s %16s %16s\n", "impl", "dtype", "meta step ms", "vs ref (4.2 ms)", "vs autograd f32");
    for (const auto& r : out)
      std::printf("%-10s %-8s %12.3f %15.1fx %15.2fx\n", r["implementation"].get<std::string>().c_str(),
                  r["dtype"].get<std::string>().c_str(), r["meta_step_ms"].get<double>(),
                  r["speedup_vs_reference_python"].get<double>(), r["speedup_vs_autograd_float32"].get<double>());
  });

  static MetaTrainArgs mt;
  auto* train = app.add_subcommand("meta-train", "Meta-train a learned loss (ML3); writes a run folder with loss.ml3");
  train->add_option("--config", mt.config_path, "YAML config (configs/*_ml3.yaml)")->check(CLI::ExistingFile);
  train->add_option("--out", mt.out_dir, "Run folder (default runs/<config name>)");
  train->add_option("--resume", mt.resume_dir, "Continue the run in this folder")->check(CLI::ExistingDirectory);
  train->add_flag("--force", mt.force, "Replace an existing run folder");
  train->add_option("--stop-after", mt.stop_after, "Stop after this meta-iteration (with a checkpoint)")
      ->check(CLI::Range(1, 100000000));
  train->add_flag("--quiet", mt.quiet, "No progress line");
  static bool print_config = false;
  train->add_flag("--print-config", print_config, "Print the resolved config (file + overrides) and exit");
  train->add_option("overrides", mt.overrides, "key=value config overrides");
  train->callback([] {
    if (print_config) {
      const bool sine = peek_config_value(mt.config_path, mt.overrides, "kind", "policy") == "sine";
      std::cout << (sine ? load_sine_config(mt.config_path, mt.overrides) : load_meta_config(mt.config_path, mt.overrides))
                       .to_yaml();
      return;
    }
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
