// bench sine: the sine testbed's meta step, hand-derived Eigen vs LibTorch
// autograd in the same run; bench deploy: the deployment runtime's per-action
// latency vs LibTorch on the same policy. (meta-train and meta-test are in
// cmd_train.cpp.)
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/run_paths.h"
#include "src/run/algorithm.h"
#include "src/bench/bench.h"
#include "src/testbeds/mbrl/mbrl.h"
#include "src/policy/trainer.h"
#include "src/testbeds/sine/sine.h"
#include "tools/commands.h"

namespace ml3 {
namespace {

// The reference implementation's sine meta step (see bench sine below).
constexpr double kSineReferenceMs = 1.27;

const char* ml3_build_flavour() {
#ifdef ML3_NATIVE_BUILD
  return "native (-DML3_NATIVE=ON: -march=native, not portable to other CPUs)";
#else
  return "portable (default; -DML3_NATIVE=ON builds for this CPU only)";
#endif
}

}  // namespace

namespace {
// The held-out errors of a dynamics model (run_dynamics_fit / _eval), two lines.
void print_model_errors(const nlohmann::json& h) {
  std::printf("held out (%d episodes), one-step RMSE (q0 q1 qdot0 qdot1):", h["episodes"].get<int>());
  for (const auto& v : h["one_step_rmse"]) std::printf(" %.4g", v.get<double>());
  std::printf("  (zero change:");
  for (const auto& v : h["one_step_rmse_zero_change"]) std::printf(" %.4g", v.get<double>());
  std::printf(")\n");
  std::printf("one-step fingertip error %.5f m (no change: %.5f m); %d-step open-loop fingertip error mean %.4f m "
              "(median %.4f, mean over steps %.4f)\n",
              h["one_step_fingertip_error_mean"].get<double>(), h["one_step_fingertip_error_mean_zero_change"].get<double>(),
              h["horizon"].get<int>(), h["horizon_fingertip_error_mean"].get<double>(),
              h["horizon_fingertip_error_median"].get<double>(), h["fingertip_error_mean_over_steps"].get<double>());
}
}  // namespace

void register_meta_commands(CLI::App& app) {
  // bench sine: the ML3 sine meta step, hand-derived Eigen vs LibTorch autograd
  // (same run), and beside the reference implementation's figure: 1.27 ms per
  // meta step, measured on this 2-core machine in November 2026 (PyTorch on
  // OpenBLAS, one thread, idle machine). That figure is a recorded constant,
  // not measured in this run, so it is printed with its provenance.
  static int bench_steps = 2000;
  static bool bench_json = false;
  auto* bs = app.get_subcommand("bench")->add_subcommand(
      "sine", "ML3 sine meta step: hand-derived Eigen vs LibTorch autograd (same run); the reference's recorded 1.27 ms beside it");
  bs->add_option("--steps", bench_steps, "Meta steps per measurement")->check(CLI::Range(10, 1000000));
  bs->add_flag("--json", bench_json, "Print JSON");
  bs->callback([] {
    nlohmann::json out = nlohmann::json::array();
    const double reference_ms = kSineReferenceMs;
    double autograd_ms = 0;
    for (const char* impl : {"autograd", "eigen"})
      for (const char* f64 : {"false", "true"}) {
        const Config cfg = load_sine_config("", {std::string("sine.implementation=") + impl, std::string("sine.float64=") + f64});
        const double ms = sine_meta_step_ms(cfg, bench_steps);
        if (std::string(impl) == "autograd" && std::string(f64) == "false") autograd_ms = ms;
        out.push_back({{"implementation", impl},
                       {"dtype", std::string(f64) == "true" ? "float64" : "float32"},
                       {"meta_step_ms", ms},
                       {"reference_ms", reference_ms},
                       {"speedup_vs_reference_python", reference_ms / ms},
                       {"build", ml3_build_flavour()},
                       {"speedup_vs_autograd_float32", autograd_ms / ms}});
      }
    if (bench_json) {
      std::cout << out.dump(2) << "\n";
      return;
    }
    std::printf("reference implementation (PyTorch, OpenBLAS, 1 thread, idle; recorded on this machine, 2026-11): "
                "%.2f ms per meta step; this build: %s\n",
                reference_ms, ml3_build_flavour());
    std::printf("%-10s %-8s %12s %16s %16s\n", "impl", "dtype", "meta step ms", "vs ref 1.27 ms", "vs autograd f32");
    for (const auto& r : out)
      std::printf("%-10s %-8s %12.3f %15.1fx %15.2fx\n", r["implementation"].get<std::string>().c_str(),
                  r["dtype"].get<std::string>().c_str(), r["meta_step_ms"].get<double>(),
                  r["speedup_vs_reference_python"].get<double>(), r["speedup_vs_autograd_float32"].get<double>());
  });

  // bench train: the policy-gradient update, LibTorch vs the fast path, and
  // training throughput vs the batched environment (same run).
  struct BenchTrainArgs {
    std::string config;
    int iterations = 20;
    double env_seconds = 3.0;
    int env_batch = 16;
    bool json = false;
    std::vector<std::string> overrides;
  };
  static BenchTrainArgs bt;
  auto* btr = app.get_subcommand("bench")->add_subcommand(
      "train",
      "Training iterations with pg.backend=torch and =fast: update time, throughput vs the batched env (same run)");
  btr->add_option("--config", bt.config, "Training config (e.g. configs/reacher_ppo.yaml)")->required();
  btr->add_option("--iterations", bt.iterations, "Timed iterations per backend")->check(CLI::Range(1, 100000));
  btr->add_option("--env-seconds", bt.env_seconds, "Measuring time of the batched env")->check(CLI::Range(0.1, 600.0));
  btr->add_option("--env-batch", bt.env_batch, "Envs in the batched env measurement (as ml3 bench envs --batch)")
      ->check(CLI::Range(1, 4096));
  btr->add_flag("--json", bt.json, "Print JSON");
  btr->add_option("overrides", bt.overrides, "key=value config overrides");
  btr->callback([] {
    const Config c = load_config(Command::Train, bt.config, bt.overrides);
    const auto r = bench_train(c, bt.iterations, bt.env_seconds, bt.env_batch);
    if (bt.json) {
      std::cout << r.dump(2) << "\n";
      return;
    }
    const auto& m = r["batched_env_measurements"];
    std::printf(
        "%s %s, %d iterations x %d episodes, %d env threads; batched env (%d envs, 2 threads): %.0f / %.0f / %.0f "
        "steps/s before, between and after the backends\n",
        r["env"].get<std::string>().c_str(), r["algorithm"].get<std::string>().c_str(), bt.iterations,
        r["episodes_per_iteration"].get<int>(), r["threads"].get<int>(), bt.env_batch, m[0].get<double>(),
        m[1].get<double>(), m[2].get<double>());
    std::printf("%-8s %14s %14s %14s %16s %14s %12s\n", "backend", "update s/it", "rollout s/it", "iteration s",
                "train steps/s", "env steps/s", "vs env");
    for (const char* b : {"torch", "fast"})
      std::printf("%-8s %14.4f %14.4f %14.4f %16.0f %14.0f %11.2fx\n", b, r[b]["update_seconds_per_iteration"].get<double>(),
                  r[b]["rollout_seconds_per_iteration"].get<double>(), r[b]["iteration_seconds"].get<double>(),
                  r[b]["train_steps_per_s"].get<double>(), r[b]["batched_env_steps_per_s"].get<double>(),
                  r[b]["vs_batched_env"].get<double>());
    std::printf(
        "fast update is %.1fx faster than LibTorch; fast path's products: %s; LibTorch's BLAS kernels: %s "
        "(OPENBLAS_CORETYPE chooses others)\n",
        r["update_speedup"].get<double>(), r["fast_products"].get<std::string>().c_str(),
        r["blas_kernels"].get<std::string>().c_str());
    const auto& g = r["product_100x64x64_us"];
    std::printf("100x64 by 64x64 product: fast path %.2f us, BLAS %.2f us (%.2fx)\n", g["fast"].get<double>(),
                g["blas"].get<double>(), g["ratio"].get<double>());
  });

  // dynamics fit: the model-based reacher's dynamics ensemble (src/testbeds/mbrl/mbrl.h).
  static std::string dyn_config, dyn_out;
  static std::vector<std::string> dyn_overrides;
  static bool dyn_force = false, dyn_json = false, dyn_quiet = false;
  auto* dyn = app.add_subcommand("dynamics", "Learned dynamics models (the model-based reacher, algorithm mbrl)");
  dyn->require_subcommand(1);
  auto* fit = dyn->add_subcommand(
      "fit", "Babble in MuJoCo, fit the dynamics ensemble, print its held-out one-step and horizon errors; "
             "writes dynamics.ml3 and fit.json");
  fit->add_option("--config", dyn_config, "YAML config with algorithm: mbrl (configs/reacher_mbrl_ml3.yaml)")
      ->required()
      ->check(CLI::ExistingFile);
  fit->add_option("--out", dyn_out, "Output folder (default runs/<config name>_dynamics)");
  fit->add_flag("--force", dyn_force, "Replace an existing output folder");
  fit->add_flag("--quiet", dyn_quiet, "No progress line");
  fit->add_flag("--json", dyn_json, "Print fit.json instead of the summary");
  fit->add_option("overrides", dyn_overrides, "key=value overrides, e.g. mbrl.ensemble=3 seed=2");
  fit->callback([] {
    const Config cfg = load_config(Command::MetaTrain, dyn_config, dyn_overrides);
    check_mbrl_config(cfg, dyn_config);
    const std::string dir = run_dir_or_default(dyn_out, dyn_config, "_dynamics").string();
    const auto j = nlohmann::json::parse(run_dynamics_fit(cfg, dir, dyn_force, dyn_quiet));
    if (dyn_json) {
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("%s: %d train episodes, %d members, NLL %.3f, %.1f s; fingertip kinematics residual %.2g m\n",
                j["model_file"].get<std::string>().c_str(), j["train_episodes"].get<int>(), j["members"].get<int>(),
                j["final_nll"].get<double>(), j["fit_seconds"].get<double>(), j["kinematics_max_residual"].get<double>());
    print_model_errors(j["held_out"]);
  });

  static std::string eval_model;
  auto* deval = dyn->add_subcommand(
      "eval", "Held-out one-step and horizon errors of a dynamics model file (e.g. a meta-training run's "
              "dynamics.ml3) on fresh babbling episodes of mbrl.test_seed");
  deval->add_option("--model", eval_model, "Dynamics model file (dynamics.ml3)")->required()->check(CLI::ExistingFile);
  deval->add_option("--config", dyn_config, "YAML config with algorithm: mbrl")->required()->check(CLI::ExistingFile);
  deval->add_flag("--json", dyn_json, "Print JSON");
  deval->add_option("overrides", dyn_overrides, "key=value overrides, e.g. mbrl.holdout_episodes=50");
  deval->callback([] {
    const Config cfg = load_config(Command::MetaTrain, dyn_config, dyn_overrides);
    check_mbrl_config(cfg, dyn_config);
    const auto j = nlohmann::json::parse(run_dynamics_eval(eval_model, cfg));
    if (dyn_json) {
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("%s:\n", eval_model.c_str());
    print_model_errors(j["held_out"]);
  });

  // bench deploy: ml3_runtime vs a LibTorch single-observation forward.
  static int deploy_calls = 100000;
  static std::string deploy_hidden = "64,64";
  static bool deploy_json = false;
  auto* bd = app.get_subcommand("bench")->add_subcommand(
      "deploy", "Per-action latency of an exported reacher policy: ml3_runtime vs LibTorch (same policy, same run)");
  bd->add_option("--calls", deploy_calls, "Timed single-observation calls per implementation")
      ->check(CLI::Range(100, 100000000));
  bd->add_option("--hidden", deploy_hidden, "Policy hidden sizes (policy.hidden)");
  bd->add_flag("--json", deploy_json, "Print JSON");
  bd->callback([] {
    const auto r = bench_deploy(deploy_calls, deploy_hidden);
    if (deploy_json) {
      std::cout << r.dump(2) << "\n";
      return;
    }
    std::printf("%s, %d calls each, per action (us):\n", r["policy"].get<std::string>().c_str(), deploy_calls);
    std::printf("%-12s %8s %8s %8s %8s\n", "", "p50", "p99", "max", "mean");
    for (const char* k : {"runtime_us", "libtorch_us"})
      std::printf("%-12s %8.2f %8.2f %8.1f %8.2f\n", k == std::string("runtime_us") ? "ml3_runtime" : "LibTorch",
                  r[k]["p50"].get<double>(), r[k]["p99"].get<double>(), r[k]["max"].get<double>(),
                  r[k]["mean"].get<double>());
    std::printf("ml3_runtime is %.1fx faster (p50; %.1fx mean); max action difference %.2g\n",
                r["speedup_p50"].get<double>(), r["speedup_mean"].get<double>(),
                r["max_action_difference"].get<double>());
  });

}

}  // namespace ml3
