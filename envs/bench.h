#pragma once
// Environment benchmark: our Env::step against raw mj_step on the same
// compiled model in the same run, and the batched environment on 1 and 2
// threads. Report ratios, not absolute speeds (the machine is shared).
#include <string>

namespace ml3 {

struct BenchRow {
  std::string env;
  double env_sps = 0;        // Env::step calls per second
  double raw_sps = 0;        // the same work as raw ctrl + frame_skip x mj_step, per second
  double batched_sps_1 = 0;  // env steps per second of `batch` envs on 1 thread
  double batched_sps_2 = 0;  // ... on 2 threads
};

// Measures environment `name` (default options) for about `seconds`.
BenchRow bench_env(const std::string& name, double seconds, int batch);

// Env steps per second of `batch` envs of `name` (default options) stepped in
// lockstep on `threads` threads, fastest round over about `seconds`.
double batched_env_rate(const std::string& name, int batch, int threads, double seconds);

}  // namespace ml3
