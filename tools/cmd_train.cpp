// Learning sub-commands: train, eval.
#include <iostream>

#include "src/trainer.h"
#include "tools/commands.h"

namespace ml3 {

void register_train_commands(CLI::App& app) {
  static TrainArgs ta;
  auto* train = app.add_subcommand("train", "Train a policy with PPO or REINFORCE (writes a run folder)");
  train->add_option("--config", ta.config_path, "YAML experiment config (configs/*.yaml)")->check(CLI::ExistingFile);
  train->add_option("--out", ta.out_dir, "Run folder (default runs/<config name>)");
  train->add_option("--resume", ta.resume_dir, "Continue the run in this folder from its last checkpoint")
      ->check(CLI::ExistingDirectory);
  train->add_flag("--force", ta.force, "Replace an existing run folder");
  train->add_option("--stop-after", ta.stop_after, "Stop after this iteration (with a checkpoint); resume later")
      ->check(CLI::Range(1, 100000000));
  train->add_flag("--quiet", ta.quiet, "No progress line");
  static bool print_config = false, print_schema = false;
  train->add_flag("--print-schema", print_schema, "Print every config key (Markdown table) and exit");
  train->add_flag("--print-config", print_config, "Print the resolved config (file + overrides) and exit");
  train->add_option("overrides", ta.overrides, "key=value config overrides, e.g. optim.lr=1e-3 seed=2");
  train->callback([] {
    if (print_schema) {
      const std::string env = ta.config_path.empty() && ta.overrides.empty()
                                  ? "reacher"
                                  : peek_config_value(ta.config_path, ta.overrides, "env.name", "reacher");
      std::cout << schema_markdown(train_schema(env));
      return;
    }
    if (print_config) {
      std::cout << load_train_config(ta.config_path, ta.overrides).to_yaml();
      return;
    }
    const TrainSummary s = run_train(ta);
    if (!s.json.empty()) std::cout << s.json << "\n";
  });

  static EvalArgs ea;
  static bool eval_json = false;
  auto* eval = app.add_subcommand("eval", "Evaluate a trained policy (deterministic) on a goal split");
  eval->add_option("--run", ea.run_dir, "Run folder (uses checkpoints/last.ckpt)")->check(CLI::ExistingDirectory);
  eval->add_option("--checkpoint", ea.checkpoint, "Checkpoint file")->check(CLI::ExistingFile);
  eval->add_option("--split", ea.split, "Goal split")->check(CLI::IsMember({"train", "test", "ood"}));
  eval->add_option("--episodes", ea.episodes, "Episodes (one goal each)")->check(CLI::Range(1, 100000));
  eval->add_option("--seed", ea.seed, "Seed of the goals");
  eval->add_option("--threads", ea.threads, "Simulation threads (default: the run's)")->check(CLI::Range(1, 256));
  eval->add_flag("--json", eval_json, "Print one JSON object");
  eval->add_option("overrides", ea.env_overrides, "env.key=value overrides (e.g. env.model=other_arm.xml)");
  eval->callback([] {
    const auto j = nlohmann::json::parse(run_eval(ea));
    if (eval_json) {
      std::cout << j.dump() << "\n";
    } else {
      std::printf("%s on %s, %s split, %d episodes: success %.1f%%, final distance %.4f, return %.2f\n",
                  j["checkpoint"].get<std::string>().c_str(), j["env"].get<std::string>().c_str(),
                  ea.split.c_str(), ea.episodes, 100 * j["success_rate"].get<double>(),
                  j["final_distance_mean"].get<double>(), j["return_mean"].get<double>());
    }
  });
}

}  // namespace ml3
