#include "src/bench/bench.h"
#include "deploy/checkpoint_entries.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "core/rng.h"
#include "envs/bench.h"
#include "src/policy/fast_pg.h"
#include "deploy/export.h"
#include "deploy/rig.h"
#include "envs/env.h"
#include "src/run/algorithm.h"
#include "src/policy/trainer.h"
#include "src/run/dist.h"
#include "src/run/run.h"

namespace ml3 {

Archive train_checkpoint(const std::vector<std::string>& overrides, int iterations) {
  const Config cfg = load_config(Command::Train, "", overrides);
  auto algo = make_algorithm(cfg, "", dist::Comm::get());  // a policy trainer: one process
  for (int it = 1; it <= iterations; ++it) algo->iterate(it);
  return checkpoint_archive(*algo, cfg, iterations, 0.0);
}

struct TorchPolicy::Impl {
  PolicyModels m;
  Params pp;
};

TorchPolicy::TorchPolicy(const Archive& a) : impl_(std::make_unique<Impl>()) {
  const AlgorithmEntry& entry = find_algorithm(a.meta().at("algorithm").get<std::string>());
  const std::string env = a.meta().at("env").get<std::string>();
  Config cfg(algorithm_schema(entry, env));
  cfg.load_yaml_string(a.meta().at("config").get<std::string>(), "checkpoint config");
  impl_->m = make_policy_models(cfg, make_env(env, cfg.subset("env."))->spec());
  impl_->pp = get_params(a, ckpt::kPolicy, impl_->m.policy.init(0).size());
  impl_->m.norm.load(a, ckpt::kNorm);
}
TorchPolicy::~TorchPolicy() = default;
int TorchPolicy::obs_dim() const { return impl_->m.spec.obs_dim; }
int TorchPolicy::act_dim() const { return impl_->m.spec.act_dim; }

void TorchPolicy::act(const double* obs, double* action, int n) const {
  // What collect() does with deterministic=true: normalise, mean, and the
  // environment clips the action to its bounds.
  torch::NoGradGuard no_grad;
  const EnvSpec& spec = impl_->m.spec;
  std::vector<float> nobs(static_cast<size_t>(n) * spec.obs_dim);
  impl_->m.norm.normalize(obs, nobs.data(), n);
  const Tensor mean =
      impl_->m.policy.mean(torch::from_blob(nobs.data(), {n, spec.obs_dim}, torch::kFloat32), impl_->pp).contiguous();
  const float* p = mean.data_ptr<float>();
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < spec.act_dim; ++j)
      action[i * spec.act_dim + j] = std::clamp(static_cast<double>(p[i * spec.act_dim + j]), spec.act_low[j], spec.act_high[j]);
}

namespace {
// Times `calls` calls of fn(i), one by one, after a warm-up.
template <class F>
std::vector<double> time_calls(int calls, F fn) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < std::min(calls, 1000); ++i) fn(i);
  std::vector<double> us(calls);
  for (int i = 0; i < calls; ++i) {
    const auto t0 = Clock::now();
    fn(i);
    us[i] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }
  return us;
}
}  // namespace

nlohmann::json bench_deploy(int calls, const std::string& hidden) {
  set_compute_threads(1);
  const Archive a = train_checkpoint({"env.name=reacher", "policy.hidden=" + hidden, "train.episodes_per_iteration=16",
                                      "threads=1"},
                                     1);
  const TorchPolicy torch_policy(a);
  runtime::Policy policy(policy_from_checkpoint(a), "bench");
  const int od = torch_policy.obs_dim(), ad = torch_policy.act_dim();
  // Observations of the reacher's typical range: 1024, reused cyclically.
  const int pool = 1024;
  Rng rng(1);
  std::vector<double> obs(static_cast<size_t>(pool) * od), a1(ad), a2(ad);
  for (auto& v : obs) v = rng.uniform(-1, 1);
  double max_diff = 0;
  auto runtime_us = time_calls(calls, [&](int i) { policy.act(&obs[(i % pool) * od], a1.data()); });
  auto torch_us = time_calls(calls, [&](int i) { torch_policy.act(&obs[(i % pool) * od], a2.data(), 1); });
  for (int i = 0; i < pool; ++i) {
    policy.act(&obs[i * od], a1.data());
    torch_policy.act(&obs[i * od], a2.data(), 1);
    for (int j = 0; j < ad; ++j) max_diff = std::max(max_diff, std::abs(a1[j] - a2[j]));
  }
  nlohmann::json r = {{"policy", "reacher " + hidden + " tanh, obs normalisation"},
                      {"calls", calls},
                      {"runtime_us", latency_summary(runtime_us)},
                      {"libtorch_us", latency_summary(torch_us)},
                      {"max_action_difference", max_diff}};
  r["speedup_p50"] = r["libtorch_us"]["p50"].get<double>() / r["runtime_us"]["p50"].get<double>();
  r["speedup_mean"] = r["libtorch_us"]["mean"].get<double>() / r["runtime_us"]["mean"].get<double>();
  return r;
}

// ---- ml3 bench train: the two policy-gradient backends against the batched environment, in one run
nlohmann::json bench_train(const Config& c, int iterations, double env_seconds, int env_batch) {
  const std::string env = c.get_string("env.name");
  const AlgorithmEntry& entry = find_algorithm(c.get_string("algorithm"));
  if (entry.command != Command::Train || !c.has("pg.backend"))
    throw Error("config: bench train needs a policy-gradient algorithm (algorithm: ppo or reinforce), got '" + entry.name + "'");
  // The batched env rate is measured before and after each backend's
  // iterations and each backend is compared with the mean of its two: the
  // host's load drifts, and one measurement before both backends let a slow
  // stretch during one of them move its ratio by a quarter.
  auto env_rate = [&] { return batched_env_rate(env, env_batch, 2, env_seconds / 2); };
  std::vector<double> rates{env_rate()};
  nlohmann::json out = {{"env", env},
                        {"algorithm", entry.name},
                        {"iterations", iterations},
                        {"episodes_per_iteration", c.get_int("train.episodes_per_iteration")},
                        {"threads", c.get_int("threads")},
                        {"env_batch", env_batch}};
  for (const char* backend : {"torch", "fast"}) {
    Config cb = c;
    cb.apply_overrides({std::string("pg.backend=") + backend});
    PolicyTrainer t(cb, entry, "", train_plan(cb));
    double collect = 0, update = 0, wall = 0;
    int64_t steps = 0;
    for (int it = 1; it <= iterations; ++it) {
      const auto t0 = Clock::now();
      const nlohmann::json row = t.iterate(it);
      wall += since(t0);
      collect += row["collect_seconds"].get<double>();
      update += row["update_seconds"].get<double>();
      steps = row["env_steps"].get<int64_t>();
    }
    const double sps = steps / wall;
    rates.push_back(env_rate());
    const double rate = 0.5 * (rates[rates.size() - 2] + rates.back());
    out[backend] = {{"update_seconds_per_iteration", update / iterations},
                    {"rollout_seconds_per_iteration", collect / iterations},
                    {"iteration_seconds", wall / iterations},
                    {"train_steps_per_s", sps},
                    {"batched_env_steps_per_s", rate},
                    {"vs_batched_env", sps / rate}};
  }
  out["batched_env_measurements"] = rates;  // before torch, between the backends, after fast
  out["batched_env_steps_per_s_2_threads"] = (rates[0] + rates[1] + rates[2]) / 3;
  out["update_speedup"] = out["torch"]["update_seconds_per_iteration"].get<double>() /
                          out["fast"]["update_seconds_per_iteration"].get<double>();
  out["blas_kernels"] = blas_kernels();
  out["fast_products"] = small_gemm_kernel();
  const GemmTiming g = time_small_gemm(100, 64, 64, 1.0);  // a 100-row minibatch through a 64x64 layer
  out["product_100x64x64_us"] = {{"fast", g.small_gemm_us}, {"blas", g.blas_us}, {"ratio", g.blas_us / g.small_gemm_us}};
  return out;
}

}  // namespace ml3
