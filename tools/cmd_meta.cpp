// bench sine: the sine testbed's meta step, hand-derived Eigen vs LibTorch
// autograd in the same run. (meta-train and meta-test are in cmd_train.cpp.)
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
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

}

}  // namespace ml3
