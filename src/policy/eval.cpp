// `ml3 eval`: the deterministic evaluation of a policy checkpoint of
// `ml3 train` (src/run/algorithm.h).
#include <torch/torch.h>

#include <filesystem>

#include "core/archive.h"
#include "deploy/checkpoint_entries.h"
#include "core/error.h"
#include "core/run_paths.h"
#include "src/policy/trainer.h"

namespace fs = std::filesystem;

namespace ml3 {

std::string run_eval(const EvalArgs& args) {
  std::string path = args.checkpoint;
  if (path.empty()) {
    if (args.run_dir.empty()) throw UsageError("eval needs --run DIR or --checkpoint FILE");
    path = last_checkpoint(args.run_dir).string();
  }
  const Archive a = Archive::load(path, "checkpoint");
  const AlgorithmEntry& entry = find_algorithm(a.meta().at("algorithm").get<std::string>());
  if (entry.command != Command::Train)
    throw Error(path + ": a checkpoint of ml3 meta-train (" + entry.name + "), not of a policy; use its loss file");
  const std::string env_name = a.meta().at("env").get<std::string>();
  Config cfg(algorithm_schema(entry, env_name));
  cfg.load_yaml_string(a.meta().at("config").get<std::string>(), path + " (stored config)");
  for (const auto& o : args.env_overrides)
    if (o.rfind("env.", 0) != 0) throw UsageError("eval accepts only env.key=value overrides, got '" + o + "'");
  cfg.apply_overrides(args.env_overrides);
  const int threads = args.threads > 0 ? args.threads : static_cast<int>(cfg.get_int("threads"));
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  VecEnv venv(env_name, cfg.subset("env."), args.episodes, threads);
  PolicyModels m = make_policy_models(cfg, venv.spec());
  // The forward the run trained and evaluated with.
  m.policy.set_small_forward(cfg.has("pg.backend") && cfg.get_string("pg.backend") == "fast");
  const Params pp = checked_params(a, ckpt::kPolicy, m.policy.init(0), "policy");
  m.norm.load(a, ckpt::kNorm);
  const EvalResult r = ml3::evaluate(venv, m.policy, pp, m.norm, parse_split(args.split), args.episodes, args.seed);
  nlohmann::json j = {{"checkpoint", path},
                      {"env", env_name},
                      {"algorithm", entry.name},
                      {"iteration", a.meta().at("iteration")},
                      {"split", args.split},
                      {"episodes", r.episodes},
                      {"seed", args.seed},
                      {"success_rate", r.success_rate},
                      {"final_distance_mean", r.final_distance_mean},
                      {"return_mean", r.return_mean},
                      {"success_threshold", venv.spec().success_threshold}};
  return j.dump();
}

}  // namespace ml3
