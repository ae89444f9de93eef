// Deployment without LibTorch: the .ml3p format and ml3_runtime (C++ and C
// APIs), `ml3 export`'s checkpoint reader on synthetic checkpoints, and the
// ml3-deploy command line. (Exactness against the LibTorch policy and
// deployed-vs-eval success: tests/deploy_exact_test.cpp.)
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/archive.h"
#include "core/obs_norm.h"
#include "core/rng.h"
#include "deploy/export.h"
#include "deploy/onnx_export.h"
#include "deploy/render.h"
#include "deploy/rig.h"
#include "envs/env.h"
#include "envs/mujoco_env.h"
#include "ml3/runtime.h"
#include "ml3/runtime.hpp"
#include "test_util.h"

// Counts heap allocations of this thread while `g_count_allocations` is set
// (act() must not allocate). Sanitizers bring their own operator new: there
// the check is skipped.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ML3_COUNTS_ALLOCATIONS 0
#else
#define ML3_COUNTS_ALLOCATIONS 1
#endif
namespace {
thread_local bool g_count_allocations = false;
thread_local long g_allocations = 0;
}  // namespace
#if ML3_COUNTS_ALLOCATIONS
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  if (g_count_allocations) ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#endif

namespace ml3 {
namespace {

using runtime::Activation;
using runtime::PolicyData;

// A random policy: weights U(-scale, scale), normalisation with random moments.
PolicyData random_policy(const std::vector<uint32_t>& sizes, Activation act, bool normalize, uint64_t seed,
                         double scale = 0.5) {
  Rng rng(seed);
  PolicyData d;
  d.env = "pointmass";
  d.obs_dim = sizes.front(), d.act_dim = sizes.back();
  for (uint32_t j = 0; j < d.obs_dim; ++j) d.obs_names.push_back("o" + std::to_string(j));
  d.act_low.assign(d.act_dim, -1.0), d.act_high.assign(d.act_dim, 1.0);
  d.control_period = 0.02, d.episode_steps = 50;
  d.env_options = "name=pointmass\n", d.source = "algorithm=test\n";
  d.normalize = normalize;
  if (normalize) {
    d.obs_clip = 5.0;
    for (uint32_t j = 0; j < d.obs_dim; ++j) {
      d.obs_center.push_back(rng.uniform(-1, 1));
      d.obs_scale.push_back(rng.uniform(0.1, 2));
    }
  }
  d.activation = act;
  d.sizes = sizes;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    std::vector<float> w(sizes[l] * sizes[l + 1]), b(sizes[l + 1]);
    for (auto& v : w) v = static_cast<float>(rng.uniform(-scale, scale));
    for (auto& v : b) v = static_cast<float>(rng.uniform(-scale, scale));
    d.weights.push_back(w), d.biases.push_back(b);
  }
  return d;
}

// The deterministic action computed independently, in double.
std::vector<double> reference_action(const PolicyData& d, const std::vector<double>& obs) {
  std::vector<double> x(obs);
  for (uint32_t j = 0; j < d.obs_dim; ++j) {
    if (d.normalize) x[j] = std::clamp((x[j] - d.obs_center[j]) / d.obs_scale[j], -d.obs_clip, d.obs_clip);
    x[j] = static_cast<float>(x[j]);
  }
  for (size_t l = 0; l + 1 < d.sizes.size(); ++l) {
    std::vector<double> y(d.sizes[l + 1]);
    for (size_t o = 0; o < y.size(); ++o) {
      y[o] = d.biases[l][o];
      for (size_t i = 0; i < x.size(); ++i) y[o] += x[i] * d.weights[l][i * y.size() + o];
      if (l + 2 < d.sizes.size()) {
        if (d.activation == Activation::Tanh) y[o] = std::tanh(y[o]);
        if (d.activation == Activation::Relu) y[o] = std::max(0.0, y[o]);
        if (d.activation == Activation::Elu) y[o] = y[o] > 0 ? y[o] : std::expm1(y[o]);
      }
    }
    x = y;
  }
  for (uint32_t j = 0; j < d.act_dim; ++j) x[j] = std::clamp(x[j], d.act_low[j], d.act_high[j]);
  return x;
}

std::vector<double> random_obs(Rng& rng, uint32_t n, double spread = 3.0) {
  std::vector<double> o(n);
  for (auto& v : o) v = rng.uniform(-spread, spread);
  return o;
}

// Rewrites the checksum (and the size field) after a deliberate edit, so the
// structural checks behind the checksum are what the test exercises.
void reseal(std::string& bytes) {
  const uint64_t size = bytes.size();
  std::memcpy(&bytes[12], &size, 8);
  const uint64_t h = fnv1a64(bytes.data(), bytes.size() - 8);
  std::memcpy(&bytes[bytes.size() - 8], &h, 8);
}

std::string decode_error(const std::string& bytes) {
  return test::error_of([&] { runtime::decode(bytes.data(), bytes.size(), "p.ml3p"); });
}

TEST(Runtime, EncodeDecodeRoundTripsEveryFieldAndIsDeterministic) {
  const PolicyData d = random_policy({8, 16, 16, 2}, Activation::Tanh, true, 1);
  const std::string a = runtime::encode(d), b = runtime::encode(d);
  EXPECT_EQ(a, b);
  const PolicyData e = runtime::decode(a.data(), a.size(), "p");
  EXPECT_EQ(e.env, d.env);
  EXPECT_EQ(e.obs_names, d.obs_names);
  EXPECT_EQ(e.act_low, d.act_low);
  EXPECT_EQ(e.act_high, d.act_high);
  EXPECT_EQ(e.control_period, d.control_period);
  EXPECT_EQ(e.episode_steps, d.episode_steps);
  EXPECT_EQ(e.env_options, d.env_options);
  EXPECT_EQ(e.source, d.source);
  EXPECT_EQ(e.obs_center, d.obs_center);
  EXPECT_EQ(e.obs_scale, d.obs_scale);
  EXPECT_EQ(e.obs_clip, d.obs_clip);
  EXPECT_EQ(e.sizes, d.sizes);
  EXPECT_EQ(e.weights, d.weights);
  EXPECT_EQ(e.biases, d.biases);
  EXPECT_EQ(runtime::encode(e), a);
  // The documented header: magic, version, size; checksum at the end.
  EXPECT_EQ(a.substr(0, 8), "ML3POLCY");
  uint32_t version;
  uint64_t size, sum;
  std::memcpy(&version, a.data() + 8, 4);
  std::memcpy(&size, a.data() + 12, 8);
  std::memcpy(&sum, a.data() + a.size() - 8, 8);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(size, a.size());
  EXPECT_EQ(sum, fnv1a64(a.data(), a.size() - 8));
}

TEST(Runtime, ActionsMatchAnIndependentDoubleForwardForEveryActivation) {
  for (Activation act : {Activation::Tanh, Activation::Relu, Activation::Elu})
    for (bool norm : {false, true}) {
      const PolicyData d = random_policy({10, 64, 64, 2}, act, norm, 7, 0.4);
      runtime::Policy p(d);
      Rng rng(3);
      double worst = 0;
      int clipped = 0;
      std::vector<double> a(d.act_dim);
      for (int k = 0; k < 2000; ++k) {
        const auto obs = random_obs(rng, d.obs_dim);
        ASSERT_TRUE(p.act(obs.data(), a.data()));
        const auto ref = reference_action(d, obs);
        for (uint32_t j = 0; j < d.act_dim; ++j) {
          worst = std::max(worst, std::abs(a[j] - ref[j]));
          clipped += std::abs(ref[j]) == 1.0;
        }
      }
      EXPECT_LT(worst, 1e-5) << runtime::activation_name(act) << " normalize " << norm;
      EXPECT_GT(clipped, 0) << "the test should reach the action bounds";
      EXPECT_EQ(p.faults(), 0u);
    }
}

TEST(Runtime, NonFiniteObservationGivesTheSafeActionAndCountsAFault) {
  PolicyData d = random_policy({4, 8, 3}, Activation::Tanh, true, 2);
  d.act_low = {-1, 0.5, -2}, d.act_high = {1, 2, -0.25};  // 0 is outside the last two ranges
  runtime::Policy p(d);
  double a[3];
  for (double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    const double obs[4] = {0.1, bad, 0.3, 0.4};
    EXPECT_FALSE(p.act(obs, a));
    EXPECT_EQ(a[0], 0.0);
    EXPECT_EQ(a[1], 0.5);
    EXPECT_EQ(a[2], -0.25);
  }
  EXPECT_EQ(p.faults(), 3u);
  const double ok[4] = {0.1, 0.2, 0.3, 0.4};
  EXPECT_TRUE(p.act(ok, a));
  EXPECT_EQ(p.faults(), 3u);
  EXPECT_EQ(p.calls(), 4u);
  // Huge but finite observations are clipped by the normaliser, not faults.
  const double huge[4] = {1e300, -1e300, 1e308, 0};
  EXPECT_TRUE(p.act(huge, a));
  for (double v : a) EXPECT_TRUE(std::isfinite(v));
}

TEST(Runtime, ActDoesNotAllocate) {
  if (!ML3_COUNTS_ALLOCATIONS) GTEST_SKIP() << "sanitizer build: operator new belongs to the sanitizer";
  runtime::Policy p(random_policy({21, 64, 64, 3}, Activation::Elu, true, 5));
  std::vector<double> obs(21, 0.3), a(3);
  p.act(obs.data(), a.data());
  g_allocations = 0;
  g_count_allocations = true;
  for (int k = 0; k < 100; ++k) {
    obs[k % 21] = k * 0.01;
    p.act(obs.data(), a.data());
  }
  obs[3] = NAN;
  p.act(obs.data(), a.data());
  g_count_allocations = false;
  EXPECT_EQ(g_allocations, 0);
  // The counter works: a vector allocates.
  g_count_allocations = true;
  std::vector<int> v(10);
  g_count_allocations = false;
  EXPECT_EQ(g_allocations, 1);
}

TEST(Runtime, BadFilesGiveOnePreciseMessage) {
  const std::string good = runtime::encode(random_policy({8, 16, 2}, Activation::Tanh, true, 4));
  EXPECT_NE(decode_error("not a policy").find("p.ml3p: not an ml3 policy file (expected the bytes 'ML3POLCY'"),
            std::string::npos);
  std::string v = good;
  v[8] = 2;
  reseal(v);
  EXPECT_NE(decode_error(v).find("p.ml3p: policy format version 2, this runtime reads version 1"), std::string::npos);
  EXPECT_NE(decode_error(good.substr(0, good.size() - 100)).find("p.ml3p: truncated: "), std::string::npos);
  EXPECT_NE(decode_error(good + "xx").find("has trailing data"), std::string::npos);
  std::string flip = good;
  flip[good.size() / 2] ^= 0x10;
  EXPECT_NE(decode_error(flip).find("p.ml3p: checksum mismatch"), std::string::npos);
  // Consistent checksum, inconsistent content: obs_dim (after the 20-byte
  // header and the 4 + 9 bytes of "pointmass") says 9, the network has 8 inputs.
  std::string dim = good;
  ASSERT_EQ(dim.substr(24, 9), "pointmass");
  dim[33] = 9;
  reseal(dim);
  EXPECT_NE(decode_error(dim).find("p.ml3p: invalid policy"), std::string::npos) << decode_error(dim);
  // A NaN weight in a well-formed file.
  PolicyData nan = random_policy({8, 16, 2}, Activation::Tanh, false, 4);
  std::string n = runtime::encode(nan);
  const float q = NAN;
  std::memcpy(&n[n.size() - 8 - 4 * 2 - 4 * 16 * 2], &q, 4);  // the first weight of the last layer
  reseal(n);
  EXPECT_NE(decode_error(n).find("layer 1 has a non-finite weight"), std::string::npos) << decode_error(n);
  EXPECT_NE(test::error_of([] { runtime::Policy::load("/nonexistent/x.ml3p"); })
                .find("/nonexistent/x.ml3p: cannot open the policy file"),
            std::string::npos);
}

// The loader's contract under corruption: every truncation and every flipped
// byte gives a runtime::Error or a valid policy, never a crash, an
// out-of-bounds read (the ASan build checks) or a NaN action. With the
// checksum rewritten after each mutation, the structural checks behind it
// are exercised too.
TEST(Runtime, EveryTruncationAndByteFlipGivesAnErrorOrAValidPolicy) {
  const std::string good = runtime::encode(random_policy({6, 8, 2}, Activation::Relu, true, 9));
  auto try_load = [&](const std::string& bytes, int& loaded) {
    try {
      runtime::Policy p(runtime::decode(bytes.data(), bytes.size(), "fuzz"));
      std::vector<double> obs(p.info().obs_dim, 0.5), a(p.info().act_dim);
      p.act(obs.data(), a.data());
      for (double v : a) ASSERT_TRUE(std::isfinite(v));
      ++loaded;
    } catch (const runtime::Error&) {
    }
  };
  int loaded = 0;
  for (size_t n = 0; n < good.size(); ++n) try_load(good.substr(0, n), loaded);
  EXPECT_EQ(loaded, 0) << "a truncated file was accepted";
  Rng rng(11);
  int resealed_loaded = 0;
  for (int k = 0; k < 4000; ++k) {
    std::string m = good;
    const size_t pos = rng.next() % m.size();
    m[pos] = static_cast<char>(m[pos] ^ (1 << (rng.next() % 8)));
    try_load(m, loaded);
    if (m.size() >= 28) {
      reseal(m);
      try_load(m, resealed_loaded);
    }
  }
  EXPECT_EQ(loaded, 0) << "the checksum let a flipped byte through";
  EXPECT_GT(resealed_loaded, 0);  // flips inside weights make other valid policies
  EXPECT_LT(resealed_loaded, 4000);
}

TEST(RuntimeCApi, LoadsActsAndReportsErrors) {
  const auto dir = test::temp_dir("deploy_capi");
  PolicyData d = random_policy({8, 16, 2}, Activation::Tanh, true, 12);
  d.act_low = {-0.5, -1}, d.act_high = {0.5, 1};
  const std::string bytes = runtime::encode(d);
  const std::string path = (dir / "p.ml3p").string();
  test::write_file(path, bytes);
  char err[256] = "x";
  ml3_policy* p = ml3_policy_load(path.c_str(), err, sizeof err);
  ASSERT_NE(p, nullptr) << err;
  EXPECT_STREQ(err, "");
  EXPECT_EQ(ml3_policy_obs_dim(p), 8);
  EXPECT_EQ(ml3_policy_act_dim(p), 2);
  EXPECT_STREQ(ml3_policy_env(p), "pointmass");
  EXPECT_STREQ(ml3_policy_obs_name(p, 7), "o7");
  EXPECT_EQ(ml3_policy_obs_name(p, 8), nullptr);
  double low[2], high[2];
  ml3_policy_action_bounds(p, low, high);
  EXPECT_EQ(low[0], -0.5);
  EXPECT_EQ(high[1], 1.0);
  EXPECT_EQ(ml3_policy_control_period(p), 0.02);
  EXPECT_EQ(ml3_runtime_format_version(), 1u);
  runtime::Policy ref(d);
  const std::vector<double> obs{0.1, -0.2, 0.3, 1.5, -2, 0, 0.7, 0.05};
  double a[2], r[2];
  EXPECT_EQ(ml3_policy_act(p, obs.data(), a), 0);
  ref.act(obs.data(), r);
  EXPECT_EQ(a[0], r[0]);
  EXPECT_EQ(a[1], r[1]);
  std::vector<double> bad(obs);
  bad[0] = NAN;
  EXPECT_EQ(ml3_policy_act(p, bad.data(), a), 1);
  EXPECT_EQ(ml3_policy_faults(p), 1u);
  ml3_policy_free(p);

  char small[16];
  EXPECT_EQ(ml3_policy_load((dir / "missing.ml3p").c_str(), small, sizeof small), nullptr);
  EXPECT_EQ(std::strlen(small), 15u);  // truncated, terminated
  EXPECT_EQ(ml3_policy_load_memory(bytes.data(), bytes.size() - 1, "mem", err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("mem: truncated"), std::string::npos) << err;
  ml3_policy* m = ml3_policy_load_memory(bytes.data(), bytes.size(), "mem", nullptr, 0);
  ASSERT_NE(m, nullptr);
  ml3_policy_free(m);
}

// ---- ml3 export's reader, on a checkpoint written the way PolicyTrainer::save
// writes one (policy/<i> f32 tensors, then the log-std; norm/ of the
// ObsNormalizer; the resolved config as YAML) ----------------------------------
struct SyntheticRun {
  std::string checkpoint;
  PolicyData expected;  // what the export must contain
  ObsNormalizer norm;
};

SyntheticRun synthetic_checkpoint(const std::filesystem::path& dir, const std::string& hidden_yaml,
                                  const std::vector<uint32_t>& sizes, const std::string& activation,
                                  const std::string& env_yaml = "") {
  const auto env = make_env("pointmass");
  const EnvSpec& spec = env->spec();
  Archive a("checkpoint");
  a.meta() = {{"format", 2},
              {"iteration", 7},
              {"algorithm", "ppo"},
              {"env", "pointmass"},
              {"env_steps", 1234},
              {"config", "seed: 1\nalgorithm: ppo\nenv:\n  name: pointmass\n" + env_yaml +
                             "policy:\n  hidden: " + hidden_yaml + "\n  activation: " + activation +
                             "\n  obs_norm: true\noptim:\n  lr: 0.001\n"}};
  SyntheticRun r;
  r.expected = random_policy(sizes, activation == "relu" ? Activation::Relu : Activation::Tanh, false, 21);
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    a.put("policy/" + std::to_string(2 * l), "f32", {sizes[l], sizes[l + 1]}, r.expected.weights[l].data(),
          4 * r.expected.weights[l].size());
    a.put("policy/" + std::to_string(2 * l + 1), "f32", {sizes[l + 1]}, r.expected.biases[l].data(),
          4 * r.expected.biases[l].size());
  }
  const std::vector<float> log_std(sizes.back(), -0.5f);
  a.put("policy/" + std::to_string(2 * (sizes.size() - 1)), "f32", {sizes.back()}, log_std.data(), 4 * log_std.size());
  r.norm = ObsNormalizer(spec.obs_dim, true);
  Rng rng(5);
  std::vector<double> rows(40 * spec.obs_dim);
  for (auto& v : rows) v = rng.uniform(-2, 3);
  r.norm.update(rows.data(), 40);
  r.norm.save(a, "norm/");
  r.checkpoint = (dir / "ckpt.ckpt").string();
  a.save(r.checkpoint);
  return r;
}

ExportArgs export_args(const SyntheticRun& run, const std::filesystem::path& out) {
  ExportArgs args;
  args.checkpoint = run.checkpoint;
  args.out = out.string();
  return args;
}

TEST(Export, WritesTheCheckpointsPolicyDeterministicallyAndAtomically) {
  const auto dir = test::temp_dir("deploy_export");
  const SyntheticRun run = synthetic_checkpoint(dir, "[16, 16]", {8, 16, 16, 2}, "tanh");
  ExportArgs args = export_args(run, dir / "p.ml3p");
  const auto j = export_policy(args);
  EXPECT_EQ(j["env"], "pointmass");
  const std::string first = test::read_text(args.out);
  EXPECT_EQ(first.size(), j["bytes"].get<size_t>());
  // An existing file is kept unless --force; a forced export gives the same bytes.
  EXPECT_NE(test::error_of([&] { export_policy(args); }).find("file already exists; pass --force"), std::string::npos);
  args.force = true;
  export_policy(args);
  EXPECT_EQ(test::read_text(args.out), first);
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "a temporary file was left: " << e.path();

  const PolicyData d = runtime::read_policy_file(args.out);
  const auto spec = make_env("pointmass")->spec();
  EXPECT_EQ(d.obs_names, spec.obs_names);
  EXPECT_EQ(d.act_low, spec.act_low);
  EXPECT_EQ(d.control_period, spec.timestep * spec.frame_skip);
  EXPECT_EQ(d.episode_steps, 50u);
  EXPECT_NE(d.env_options.find("episode_steps=50\n"), std::string::npos) << d.env_options;
  EXPECT_EQ(d.source, "algorithm=ppo\niteration=7\nenv_steps=1234\n");
  EXPECT_EQ(d.weights, run.expected.weights);
  EXPECT_EQ(d.biases, run.expected.biases);
  ASSERT_TRUE(d.normalize);
  EXPECT_EQ(d.obs_clip, 10.0);
  // The exported normalisation is the trainer's, bit for bit.
  runtime::Policy p(d);
  Rng rng(8);
  for (int k = 0; k < 200; ++k) {
    const auto obs = random_obs(rng, 8, 20.0);
    std::vector<float> trained(8);
    run.norm.normalize(obs.data(), trained.data(), 1);
    PolicyData plain = d;
    plain.normalize = false, plain.obs_center.clear(), plain.obs_scale.clear();
    std::vector<double> normalized(trained.begin(), trained.end());
    const auto ref = reference_action(plain, normalized);
    std::vector<double> a(2);
    p.act(obs.data(), a.data());
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(a[j], ref[j], 1e-6);
  }
}

TEST(Export, RefusesWhatIsNotAMatchingPolicyCheckpoint) {
  const auto dir = test::temp_dir("deploy_export_bad");
  // The stored config's network differs from the tensors.
  const SyntheticRun run = synthetic_checkpoint(dir, "[32, 16]", {8, 16, 16, 2}, "tanh");
  ExportArgs args = export_args(run, dir / "p.ml3p");
  const std::string e = test::error_of([&] { export_policy(args); });
  EXPECT_NE(e.find(run.checkpoint + ": entry policy/0 has shape [8,16], the stored config's network (8 obs -> 32 -> 16 "
                                    "-> 2 actions, tanh) expects [8,32]"),
            std::string::npos)
      << e;
  EXPECT_FALSE(std::filesystem::exists(args.out));
  // A meta-training checkpoint has no policy.
  Archive meta("checkpoint");
  meta.meta() = {{"algorithm", "ml3"}, {"config", "algorithm: ml3\n"}};
  meta.put_f64("loss/0", {1.0});
  meta.save((dir / "meta.ckpt").string());
  args.checkpoint = (dir / "meta.ckpt").string();
  EXPECT_NE(test::error_of([&] { export_policy(args); }).find("a checkpoint of algorithm 'ml3' without a policy"),
            std::string::npos);
  // Not an archive at all.
  test::write_file(dir / "junk.ckpt", "junk");
  args.checkpoint = (dir / "junk.ckpt").string();
  EXPECT_NE(test::error_of([&] { export_policy(args); }).find("not an ml3 file"), std::string::npos);
}

// ---- ml3-deploy ---------------------------------------------------------------------
nlohmann::json deploy_json(const std::string& args) {
  const auto r = test::run_deploy(args + " --json");
  EXPECT_EQ(r.code, 0) << r.out;
  return nlohmann::json::parse(r.out.substr(r.out.find('{')));
}

std::string exported_pointmass_policy(const std::filesystem::path& dir) {
  const SyntheticRun run = synthetic_checkpoint(dir, "[16]", {8, 16, 2}, "tanh");
  return export_policy(export_args(run, dir / "pm.ml3p"))["out"];
}

TEST(DeployCli, RunsEpisodesAndReportsSuccessLatencyAndFaults) {
  const auto dir = test::temp_dir("deploy_cli");
  const std::string policy = exported_pointmass_policy(dir);
  const auto j = deploy_json("--policy " + policy + " --env pointmass --episodes 5 --trajectories " +
                             (dir / "t.csv").string());
  for (const char* k : {"success_rate", "final_distance_mean", "episodes", "missed_deadlines", "faults", "steps"})
    EXPECT_TRUE(j.contains(k)) << k;
  for (const char* k : {"p50", "p99", "max"}) EXPECT_GT(j["latency_us"][k].get<double>(), 0.0) << k;
  EXPECT_EQ(j["episodes"], 5);
  EXPECT_EQ(j["steps"], 5 * 50);
  EXPECT_EQ(j["faults"], 0);
  // The same episodes again: the same numbers; the CSV has one row per step.
  EXPECT_EQ(deploy_json("--policy " + policy + " --env pointmass --episodes 5")["final_distance_mean"],
            j["final_distance_mean"]);
  const std::string csv = test::read_text(dir / "t.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 5 * 50);
  EXPECT_EQ(csv.rfind("episode,t,obs_pos_x,", 0), 0u) << csv.substr(0, 80);
  // An existing output file is kept unless --force.
  const std::string again = "--policy " + policy + " --env pointmass --episodes 2 --trajectories " + (dir / "t.csv").string();
  const auto kept = test::run_deploy(again);
  EXPECT_EQ(kept.code, 1) << kept.out;
  EXPECT_NE(kept.out.find("t.csv: file already exists; pass --force"), std::string::npos) << kept.out;
  EXPECT_EQ(test::read_text(dir / "t.csv"), csv);
  EXPECT_EQ(test::run_deploy(again + " --force").code, 0);
  EXPECT_NE(test::read_text(dir / "t.csv"), csv);
  // Noise and delay change what happens.
  EXPECT_NE(deploy_json("--policy " + policy + " --env pointmass --episodes 5 --obs-noise 0.5")["final_distance_mean"],
            j["final_distance_mean"]);
  EXPECT_NE(deploy_json("--policy " + policy + " --env pointmass --episodes 5 --action-delay 3")["final_distance_mean"],
            j["final_distance_mean"]);
  // Text output.
  const auto r = test::run_deploy("--policy " + policy + " --env pointmass --episodes 2");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("per-action latency: p50 "), std::string::npos) << r.out;
}

TEST(DeployCli, RealTimeRateSleepsToDeadlines) {
  const auto dir = test::temp_dir("deploy_rate");
  const std::string policy = exported_pointmass_policy(dir);
  // 2 episodes x 50 steps at 500 Hz: the last step starts 99 periods after the first.
  const auto j = deploy_json("--policy " + policy + " --env pointmass --episodes 2 --rate 500");
  EXPECT_GE(j["wall_seconds"].get<double>(), 99.0 / 500);
  EXPECT_GE(j["missed_deadlines"].get<int64_t>(), 0);
  EXPECT_EQ(j["rate_hz"], 500.0);
}

TEST(DeployCli, MismatchedEnvironmentOrModelIsOneClearError) {
  const auto dir = test::temp_dir("deploy_mismatch");
  const std::string policy = exported_pointmass_policy(dir);
  auto r = test::run_deploy("--policy " + policy + " --env reacher --episodes 1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: " + policy + ": a policy for the pointmass environment, not for reacher"),
            std::string::npos)
      << r.out;
  // A model of another robot under the pointmass name: the pusher model has 3 actuators.
  r = test::run_deploy("--policy " + policy + " --env pointmass --episodes 1 --model " + ML3_SOURCE_DIR +
                       "/envs/pusher/pusher.xml");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  // A policy file for pointmass with another observation size, or layout.
  auto refused = [&](const std::string& file, const PolicyData& d) {
    test::write_file(dir / file, runtime::encode(d));
    const auto res = test::run_deploy("--policy " + (dir / file).string() + " --env pointmass --episodes 1");
    EXPECT_EQ(res.code, 1) << res.out;
    return res.out;
  };
  std::string out = refused("wide.ml3p", random_policy({9, 8, 2}, Activation::Tanh, false, 1));
  EXPECT_NE(out.find("wide.ml3p: the policy maps 9 observations to 2 actions, the pointmass environment"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("has 8 observations and 2 actions"), std::string::npos) << out;
  out = refused("layout.ml3p", random_policy({8, 8, 2}, Activation::Tanh, false, 1));
  EXPECT_NE(out.find("observation layout (o0,o1,o2,o3,o4,o5,o6,o7) differs from the environment's (pos_x,pos_y,"),
            std::string::npos)
      << out;
  test::write_file(dir / "bad.ml3p", "ML3POLCYtruncated");
  r = test::run_deploy("--policy " + (dir / "bad.ml3p").string() + " --env pointmass");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("bad.ml3p: truncated policy file"), std::string::npos) << r.out;
  r = test::run_deploy("--policy " + policy + " --env pointmass --bogus");
  EXPECT_EQ(r.code, 2) << r.out;
}

// tests/data/pointmass_tiny.ml3p: a 16x16 PPO pointmass policy exported by
// format version 1 (`ml3 train --config configs/pointmass_ppo.yaml
// policy.hidden=16,16`, 100% on the test goals). Later runtimes must keep
// loading it, and the environment must keep behaving as it did.
TEST(DeployCli, TheCommittedVersion1PolicyStillLoadsAndSucceeds) {
  const std::string policy = std::string(ML3_SOURCE_DIR) + "/tests/data/pointmass_tiny.ml3p";
  const runtime::PolicyData d = runtime::read_policy_file(policy);
  EXPECT_EQ(d.env, "pointmass");
  EXPECT_EQ(d.sizes, (std::vector<uint32_t>{8, 16, 16, 2}));
  EXPECT_TRUE(d.normalize);
  const auto j = deploy_json("--policy " + policy + " --env pointmass --episodes 20");
  EXPECT_EQ(j["success_rate"], 1.0);
}

TEST(DeployCli, ReadmeDocumentsTheDeployCommands) {
  // The front page, the manual and the results page together.
  const std::string readme = test::read_text(std::string(ML3_SOURCE_DIR) + "/README.md") +
                             test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/usage.md") +
                             test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/cli.md") +
                             test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/results.md");
  for (const char* s : {"`ml3 export --run DIR", "`ml3-deploy --policy POLICY.ml3p --env NAME", "`ml3 bench deploy",
                        "### Deploy", "docs/deploy.md", "find_package(ml3_runtime)",
                        "`ml3 render (--run DIR \\| --checkpoint FILE \\| --policy FILE.ml3p \\| --env NAME) --out FILE.gif"})
    EXPECT_NE(readme.find(s), std::string::npos) << s;
  const std::string help = test::run_deploy("--help").out;
  // The optional flags (the required --policy and --env are checked above).
  for (const char* flag : {"--model", "--episodes", "--split", "--seed", "--rate", "--obs-noise", "--action-delay",
                           "--trajectories", "--video", "--strip", "--video-width", "--video-height", "--force",
                           "--json"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
    EXPECT_NE(readme.find(std::string("[") + flag), std::string::npos) << "README's ml3-deploy row lacks " << flag;
  }
}

// A GIF decoder of just what GifWriter writes (global palette, full-screen
// frames): the palette index of every pixel of every frame.
std::vector<std::vector<int>> decode_gif(const std::string& g, int& w, int& h) {
  auto u16 = [&](size_t at) { return static_cast<unsigned char>(g[at]) | static_cast<unsigned char>(g[at + 1]) << 8; };
  w = u16(6), h = u16(8);
  size_t pos = 13 + 3 * 256;
  std::vector<std::vector<int>> frames;
  while (pos < g.size() && g[pos] != '\x3B') {
    if (g[pos] == '\x21') {  // extension: skip its sub-blocks
      pos += 2;
      while (g[pos]) pos += 1 + static_cast<unsigned char>(g[pos]);
      ++pos;
      continue;
    }
    EXPECT_EQ(g[pos], '\x2C');
    pos += 10;
    const int min_size = g[pos++];
    std::string data;
    while (g[pos]) {
      data += g.substr(pos + 1, static_cast<unsigned char>(g[pos]));
      pos += 1 + static_cast<unsigned char>(g[pos]);
    }
    ++pos;
    const int clear = 1 << min_size, end = clear + 1;
    std::vector<std::vector<int>> dict;
    auto reset = [&] {
      dict.assign(end + 1, {});
      for (int i = 0; i < clear; ++i) dict[i] = {i};
    };
    reset();
    int width = min_size + 1, prev = -1;
    size_t bit = 0;
    std::vector<int> out;
    while (true) {
      int code = 0;
      for (int k = 0; k < width; ++k, ++bit)
        code |= ((static_cast<unsigned char>(data.at(bit / 8)) >> (bit % 8)) & 1) << k;
      if (code == clear) {
        reset();
        width = min_size + 1, prev = -1;
        continue;
      }
      if (code == end) break;
      const bool known = code < static_cast<int>(dict.size());
      std::vector<int> entry(known ? dict[code] : dict[prev]);
      if (!known) entry.push_back(entry[0]);  // the code being defined: prev's string + its first pixel
      if (prev >= 0) {
        std::vector<int> added(dict[prev]);
        added.push_back(entry[0]);
        dict.push_back(std::move(added));
      }
      out.insert(out.end(), entry.begin(), entry.end());
      prev = code;
      if (static_cast<int>(dict.size()) == (1 << width) && width < 12) ++width;
    }
    frames.push_back(out);
  }
  return frames;
}

TEST(Gif, FramesDecodeToThePaletteColoursOfTheirPixels) {
  const int w = 97, h = 61;  // odd sizes; long runs and noise, so the LZW table fills and clears
  GifWriter gif(w, h, 50);
  Rng rng(4);
  std::vector<std::vector<int>> want;
  for (int f = 0; f < 3; ++f) {
    std::vector<unsigned char> rgb(w * h * 3);
    std::vector<int> idx(w * h);
    for (int i = 0; i < w * h; ++i) {
      const int r = f == 1 ? rng.next() % 6 : (i / 50) % 6, g = (i / w) % 6, b = f == 2 ? 5 : 0;
      rgb[3 * i] = static_cast<unsigned char>(r * 51), rgb[3 * i + 1] = static_cast<unsigned char>(g * 51);
      rgb[3 * i + 2] = static_cast<unsigned char>(b * 51);
      idx[i] = r * 36 + g * 6 + b;
    }
    gif.add(rgb.data());
    want.push_back(idx);
  }
  const std::string bytes = gif.bytes();
  EXPECT_EQ(bytes.substr(0, 6), "GIF89a");
  EXPECT_EQ(bytes.back(), '\x3B');
  int dw = 0, dh = 0;
  const auto frames = decode_gif(bytes, dw, dh);
  EXPECT_EQ(dw, w);
  EXPECT_EQ(dh, h);
  EXPECT_EQ(frames, want);
}

// --video: offscreen (EGL) frames of the first episodes in an animated GIF.
TEST(DeployCli, VideoIsAnAnimatedGifOfTheFirstEpisodes) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "Mesa's uninstrumented OpenGL stack is not for sanitizer builds";
#endif
  const auto dir = test::temp_dir("deploy_video");
  const std::string policy = exported_pointmass_policy(dir), gif = (dir / "v.gif").string();
  const auto r = test::run_deploy("--policy " + policy + " --env pointmass --episodes 2 --video " + gif + " --json");
  if (!rendering_built()) {
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("this build cannot render"), std::string::npos) << r.out;
    return;
  }
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["video"]["frames"], 50 + 1);  // the first episode (default): the reset state and every step
  int w = 0, h = 0;
  const auto frames = decode_gif(test::read_text(gif), w, h);
  ASSERT_EQ(frames.size(), 51u);
  EXPECT_EQ(w, 320);
  EXPECT_EQ(h, 240);
  EXPECT_NE(frames[0], frames[50]) << "the robot should move";
  // Neither the GIF nor its strip (v.png) is replaced without --force.
  const std::string gif_bytes = test::read_text(gif);
  const auto kept = test::run_deploy("--policy " + policy + " --env pointmass --episodes 1 --video " + gif);
  EXPECT_EQ(kept.code, 1) << kept.out;
  EXPECT_NE(kept.out.find("v.gif: file already exists"), std::string::npos) << kept.out;
  EXPECT_EQ(test::read_text(gif), gif_bytes);
  std::filesystem::remove(gif);
  const auto strip_kept = test::run_deploy("--policy " + policy + " --env pointmass --episodes 1 --video " + gif);
  EXPECT_EQ(strip_kept.code, 1) << strip_kept.out;
  EXPECT_NE(strip_kept.out.find("v.png: file already exists"), std::string::npos) << strip_kept.out;
  EXPECT_EQ(test::run_deploy("--policy " + policy + " --env pointmass --episodes 1 --video " + gif + " --force").code, 0);
}

// The chunks of a PNG (each CRC checked) and its pixels, inflated with zlib.
std::vector<unsigned char> decode_png(const std::string& png, int& w, int& h) {
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v = v << 8 | static_cast<unsigned char>(png.at(at + k));
    return v;
  };
  std::string idat, types;
  for (size_t pos = 8; pos < png.size();) {
    const uint32_t len = be32(pos);
    const std::string type = png.substr(pos + 4, 4), data = png.substr(pos + 8, len);
    const std::string body = png.substr(pos + 4, 4 + len);
    EXPECT_EQ(be32(pos + 8 + len), crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())) << type;
    types += type + " ";
    if (type == "IHDR") {
      w = static_cast<int>(be32(pos + 8)), h = static_cast<int>(be32(pos + 12));
      EXPECT_EQ(data.substr(8), std::string("\x08\x02\x00\x00\x00", 5)) << "8-bit RGB, no interlace";
    }
    if (type == "IDAT") idat += data;
    pos += 12 + len;
  }
  EXPECT_EQ(types, "IHDR IDAT IEND ");
  const size_t row = static_cast<size_t>(w) * 3;
  std::vector<unsigned char> raw((row + 1) * h);
  uLongf size = raw.size();
  EXPECT_EQ(uncompress(raw.data(), &size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()), Z_OK);
  EXPECT_EQ(size, raw.size());
  std::vector<unsigned char> rgb;
  for (int y = 0; y < h; ++y) {
    EXPECT_EQ(raw[y * (row + 1)], 0) << "filter of row " << y;
    rgb.insert(rgb.end(), raw.begin() + y * (row + 1) + 1, raw.begin() + (y + 1) * (row + 1));
  }
  return rgb;
}

TEST(Png, DecodesToTheImagesPixels) {
  const int w = 37, h = 23;
  Rng rng(8);
  std::vector<unsigned char> rgb(w * h * 3);
  for (auto& v : rgb) v = static_cast<unsigned char>(rng.next() % 256);
  int dw = 0, dh = 0;
  EXPECT_EQ(decode_png(png_bytes(rgb.data(), w, h), dw, dh), rgb);
  EXPECT_EQ(dw, w);
  EXPECT_EQ(dh, h);
  EXPECT_THROW(png_bytes(rgb.data(), 0, h), Error);
}

TEST(Png, AStripLaysItsFramesSideBySide) {
  const int w = 5, h = 3;
  FrameStrip strip(w, h);
  std::vector<unsigned char> a(w * h * 3), b(w * h * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<unsigned char>(i), b[i] = static_cast<unsigned char>(200 - i);
  const auto dir = test::temp_dir("png_strip");
  EXPECT_THROW(strip.save((dir / "empty.png").string()), Error);
  strip.add(a.data());
  strip.add(b.data());
  const size_t bytes = strip.save((dir / "s.png").string());
  const std::string png = test::read_text(dir / "s.png");
  EXPECT_EQ(png.size(), bytes);
  int sw = 0, sh = 0;
  const auto rgb = decode_png(png, sw, sh);
  ASSERT_EQ(sw, 2 * w);
  ASSERT_EQ(sh, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < 2 * w; ++x)
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(rgb[(y * 2 * w + x) * 3 + c], (x < w ? a : b)[(y * w + x % w) * 3 + c]) << y << "," << x;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ML3_SKIP_RENDERING GTEST_SKIP() << "Mesa's uninstrumented OpenGL stack is not for sanitizer builds"
#else
#define ML3_SKIP_RENDERING \
  if (!rendering_built()) GTEST_SKIP() << "this build cannot render (no EGL)"
#endif

// A caption changes the frame's top-left corner and nothing far from it.
TEST(Render, TheCaptionIsDrawnInTheTopLeftCorner) {
  ML3_SKIP_RENDERING;
  const auto env = make_env("pointmass");
  const auto* sim = dynamic_cast<const MujocoEnv*>(env.get());
  ASSERT_NE(sim, nullptr);
  const int w = 160, h = 120;
  GifRecorder rec(sim->model(), w, h, 20);
  rec.frame(sim->data());
  const std::vector<unsigned char> plain(rec.last_frame(), rec.last_frame() + w * h * 3);
  rec.frame(sim->data(), "step 0");
  const std::vector<unsigned char> captioned(rec.last_frame(), rec.last_frame() + w * h * 3);
  int corner = 0, rest = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const size_t i = (y * w + x) * 3 + c;
        (y < 30 && x < 80 ? corner : rest) += plain[i] != captioned[i];
      }
  EXPECT_GT(corner, 100);
  EXPECT_EQ(rest, 0);
  EXPECT_EQ(rec.frames(), 2);
}

// ml3 render: the expert's or a policy's episodes as a GIF (every step, a
// caption) and a PNG strip (first and last frame of every episode); the
// policy's episodes are ml3-deploy's (the same success and distances).
TEST(Render, WritesTheEpisodesAsAGifAndAStripOfFirstAndLastFrames) {
  ML3_SKIP_RENDERING;
  const auto dir = test::temp_dir("render");
  RenderArgs a;
  a.env = "pointmass";
  a.episodes = 2;
  a.width = 64, a.height = 48;
  a.out = (dir / "expert.gif").string();
  const auto j = render(a);
  EXPECT_EQ(j["policy"], "expert");
  EXPECT_EQ(j["success_rate"], 1.0) << "the scripted expert reaches pointmass goals";
  EXPECT_EQ(j["video"]["frames"], 2 * 51);
  EXPECT_EQ(j["video"]["strip"], (dir / "expert.png").string());
  int w = 0, h = 0;
  const auto frames = decode_gif(test::read_text(dir / "expert.gif"), w, h);
  EXPECT_EQ(frames.size(), 102u);
  const auto strip = decode_png(test::read_text(dir / "expert.png"), w, h);
  EXPECT_EQ(w, 4 * 64);
  EXPECT_EQ(h, 48);
  // Nothing is overwritten without --force.
  EXPECT_THROW(render(a), Error);
  a.force = true;
  EXPECT_NO_THROW(render(a));

  // A policy, three ways: its .ml3p file, its checkpoint, its run folder.
  const SyntheticRun run = synthetic_checkpoint(dir, "[16]", {8, 16, 2}, "tanh");
  const std::string policy = export_policy(export_args(run, dir / "pm.ml3p"))["out"];
  const auto deployed = deploy_json("--policy " + policy + " --env pointmass --episodes 2");
  RenderArgs p;
  p.policy = policy;
  p.episodes = 2;
  p.width = 64, p.height = 48;
  p.out = (dir / "policy.gif").string();
  const auto from_file = render(p);
  EXPECT_EQ(from_file["env"], "pointmass");
  EXPECT_EQ(from_file["final_distance_mean"], deployed["final_distance_mean"]);
  p.policy.clear();
  p.checkpoint = run.checkpoint;
  p.strip = (dir / "other_strip.png").string();
  p.out = (dir / "ckpt.gif").string();
  EXPECT_EQ(render(p)["final_distance_mean"], deployed["final_distance_mean"]);
  EXPECT_TRUE(std::filesystem::exists(dir / "other_strip.png"));

  // Bad input: clear errors.
  RenderArgs bad = p;
  bad.policy = policy;  // two sources
  EXPECT_THROW(render(bad), UsageError);
  bad = RenderArgs();
  bad.out = (dir / "none.gif").string();  // no policy and no environment
  EXPECT_THROW(render(bad), UsageError);
  bad.env = "reacher";
  bad.policy = policy;  // a pointmass policy on the reacher
  try {
    render(bad);
    ADD_FAILURE() << "a pointmass policy rendered on the reacher";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a policy for the pointmass environment"), std::string::npos) << e.what();
  }
}

TEST(DeployCli, DoesNotLinkLibTorch) {
  const auto r = test::run_command(std::string("ldd ") + ML3_DEPLOY_BINARY);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("torch"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("libc10"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("libmujoco"), std::string::npos) << r.out;
  // Nor the interop formats' libraries (ml3 export --format onnx, ml3 demos --*-minari).
  for (const char* lib : {"libonnx", "libprotobuf", "libhdf5"}) EXPECT_EQ(r.out.find(lib), std::string::npos) << lib;
}

// ---- ml3 export --format onnx ----------------------------------------------------------
// ONNX Runtime runs under Node (npm's onnxruntime-node, which tools/setup.sh
// installs into the build folder): the only reason to skip.
std::string onnx_skip_reason() {
  if (test::run_command("node --version").code != 0) return "node is not installed (tools/setup.sh installs nodejs)";
  if (!std::filesystem::exists(std::string(ML3_NODE_MODULES) + "/onnxruntime-node/package.json"))
    return std::string("the npm package onnxruntime-node is not in ") + ML3_NODE_MODULES +
           " (tools/setup.sh installs it there)";
  return "";
}

test::RunResult run_node(const std::string& args) {
  return test::run_command(std::string("NODE_PATH='") + ML3_NODE_MODULES + "' node '" + ML3_SOURCE_DIR +
                           "/tests/onnx_parity.js' " + args);
}

void write_floats(const std::filesystem::path& p, const std::vector<float>& v) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), 4 * v.size());
}
std::vector<float> read_floats(const std::filesystem::path& p) {
  const std::string bytes = test::read_text(p);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), 4 * v.size());
  return v;
}

// python3-onnx's checker on the file; returns its output (the metadata keys on success).
test::RunResult python_check(const std::string& model) {
  return test::run_command(test::debian_python() + " -c \"import onnx, sys; m = onnx.load(sys.argv[1]); "
                           "onnx.checker.check_model(m, full_check=True); "
                           "print('checked', m.opset_import[0].version, "
                           "sorted((p.key, p.value) for p in m.metadata_props if p.key in ('env', 'act_dim')))\" '" +
                           model + "'");
}

// The deterministic action in double (reference_action) and, per action, the
// magnitude of what the output layer sums: |b_j| + sum_i |h_i W_ij|. Two
// float32 implementations that add in different orders (ONNX Runtime's GEMM
// kernels vs Eigen) differ by a few float32 roundings of that magnitude, not
// of the action itself, which can be near 0 while its terms are not.
std::vector<double> output_magnitude(const PolicyData& d, const std::vector<double>& obs) {
  PolicyData hidden = d;  // the network without its output layer, unclipped
  hidden.sizes.pop_back(), hidden.weights.pop_back(), hidden.biases.pop_back();
  std::vector<double> h(obs);
  if (hidden.sizes.size() >= 2) {
    hidden.act_dim = hidden.sizes.back();
    hidden.act_low.assign(hidden.act_dim, -1e300), hidden.act_high.assign(hidden.act_dim, 1e300);
    h = reference_action(hidden, obs);
    // reference_action leaves the last layer linear: apply the activation here.
    for (auto& v : h)
      v = d.activation == Activation::Tanh ? std::tanh(v) : d.activation == Activation::Relu ? std::max(0.0, v)
          : v > 0                          ? v
                                           : std::expm1(v);
  } else {
    for (uint32_t j = 0; j < d.obs_dim; ++j)
      if (d.normalize) h[j] = std::clamp((h[j] - d.obs_center[j]) / d.obs_scale[j], -d.obs_clip, d.obs_clip);
  }
  const size_t L = d.sizes.size() - 2;
  std::vector<double> m(d.act_dim);
  for (uint32_t j = 0; j < d.act_dim; ++j) {
    m[j] = std::abs(d.biases[L][j]);
    for (size_t i = 0; i < h.size(); ++i) m[j] += std::abs(h[i] * d.weights[L][i * d.act_dim + j]);
  }
  return m;
}

struct Parity {
  double max_rel = 0;       // max |onnx - runtime| / max(|onnx|, |runtime|): large only near 0
  double max_rel_sum = 0;   // max |onnx - runtime| / output_magnitude: the float32 measure
  double max_abs = 0;
  int clipped = 0;  // actions at a bound (the graph's clipping exercised)
};

// 1,000 observations through ml3_runtime and through the ONNX model in ONNX Runtime.
Parity onnx_parity(const PolicyData& d, const std::string& model, const std::filesystem::path& dir) {
  const int rows = 1000;
  Rng rng(17);
  std::vector<float> obs(rows * d.obs_dim);
  for (auto& v : obs) v = static_cast<float>(rng.uniform(-4, 4));  // wide enough for the normalisation's clip
  write_floats(dir / "obs.f32", obs);
  const auto r = run_node(fmt::format("'{}' '{}' {} {} '{}'", model, (dir / "obs.f32").string(), rows, d.obs_dim,
                                      (dir / "act.f32").string()));
  EXPECT_EQ(r.code, 0) << r.out;
  const std::vector<float> onnx = read_floats(dir / "act.f32");
  EXPECT_EQ(onnx.size(), size_t{rows} * d.act_dim) << r.out;
  Parity p;
  if (onnx.size() != size_t{rows} * d.act_dim) return p;
  runtime::Policy policy(d);
  std::vector<double> o(d.obs_dim), a(d.act_dim);
  for (int i = 0; i < rows; ++i) {
    for (uint32_t j = 0; j < d.obs_dim; ++j) o[j] = obs[i * d.obs_dim + j];  // the same float32 inputs
    policy.act(o.data(), a.data());
    const std::vector<double> magnitude = output_magnitude(d, o);
    for (uint32_t j = 0; j < d.act_dim; ++j) {
      const double x = onnx[i * d.act_dim + j], y = a[j], diff = std::abs(x - y);
      p.max_abs = std::max(p.max_abs, diff);
      if (diff > 0) p.max_rel = std::max(p.max_rel, diff / std::max(std::abs(x), std::abs(y)));
      p.max_rel_sum = std::max(p.max_rel_sum, diff / magnitude[j]);
      p.clipped += y == d.act_low[j] || y == d.act_high[j];
    }
  }
  return p;
}

TEST(Onnx, ExportedPolicyPassesTheCheckerAndMatchesTheRuntimeInOnnxRuntime) {
  const std::string skip = onnx_skip_reason();
  if (!skip.empty()) GTEST_SKIP() << skip;
  const auto dir = test::temp_dir("onnx_parity");
  // From a checkpoint (normalisation on, tanh), and from .ml3p files with the other activations.
  const SyntheticRun run = synthetic_checkpoint(dir, "[64, 64]", {8, 64, 64, 2}, "tanh");
  ExportArgs args = export_args(run, dir / "ckpt.onnx");
  args.format = "onnx";
  const auto j = export_onnx(args);
  EXPECT_EQ(j["bytes"].get<size_t>(), std::filesystem::file_size(args.out));
  std::vector<std::pair<PolicyData, std::string>> cases = {{policy_from_checkpoint(Archive::load(run.checkpoint)), args.out}};
  for (Activation act : {Activation::Relu, Activation::Elu}) {
    PolicyData d = random_policy({8, 64, 64, 2}, act, true, 40 + static_cast<int>(act), 0.3);
    for (float& w : d.weights.back()) w *= 0.3f;  // most actions inside the bounds, some at them
    d.act_low = {-0.7, -1.0}, d.act_high = {0.3, 1.0};  // per-dimension bounds, not representable in float32
    const std::string ml3p = (dir / fmt::format("{}.ml3p", runtime::activation_name(act))).string();
    write_file_atomic(ml3p, runtime::encode(d));
    ExportArgs from_policy;
    from_policy.policy = ml3p, from_policy.format = "onnx";
    from_policy.out = (dir / fmt::format("{}.onnx", runtime::activation_name(act))).string();
    export_onnx(from_policy);
    cases.emplace_back(d, from_policy.out);
  }
  for (const auto& [d, model] : cases) {
    const auto check = python_check(model);
    EXPECT_EQ(check.code, 0) << check.out;
    EXPECT_NE(check.out.find("checked 17 [('act_dim', '2'), ('env', 'pointmass')]"), std::string::npos) << check.out;
    const Parity p = onnx_parity(d, model, dir);
    std::printf("%s (%s): max difference relative to the summed magnitude %.3g, to the action %.3g; absolute %.3g; "
                "1000 x %u actions, %d at a bound\n",
                model.c_str(), runtime::activation_name(d.activation), p.max_rel_sum, p.max_rel, p.max_abs, d.act_dim,
                p.clipped);
    RecordProperty(std::string("max_rel_") + runtime::activation_name(d.activation), fmt::format("{:.3g}", p.max_rel));
    EXPECT_LE(p.max_rel_sum, 1e-6) << model;
    EXPECT_GT(p.clipped, 0) << "the observations should drive some actions to a bound";
    EXPECT_LT(p.clipped, 1000 * static_cast<int>(d.act_dim)) << "and most not";
  }
}

TEST(Onnx, RefusesWhatIsNotAPolicyAndWritesNothing) {
  const auto dir = test::temp_dir("onnx_bad");
  ExportArgs args;
  args.format = "onnx";
  args.out = (dir / "p.onnx").string();
  // A meta-training checkpoint has no policy.
  Archive meta("checkpoint");
  meta.meta() = {{"algorithm", "ml3"}, {"config", "algorithm: ml3\n"}};
  meta.put_f64("loss/0", {1.0});
  args.checkpoint = (dir / "meta.ckpt").string();
  meta.save(args.checkpoint);
  EXPECT_NE(test::error_of([&] { export_onnx(args); })
                .find(args.checkpoint + ": a checkpoint of algorithm 'ml3' without a policy and its normaliser"),
            std::string::npos);
  // A learned-loss file given as a checkpoint.
  Archive loss("learned_loss");
  loss.meta() = {{"spec", nlohmann::json::object()}};
  args.checkpoint = (dir / "loss.ml3").string();
  loss.save(args.checkpoint);
  EXPECT_NE(test::error_of([&] { export_onnx(args); }).find("loss.ml3"), std::string::npos);
  // A file that is not a policy given as --policy.
  args.checkpoint.clear();
  args.policy = (dir / "meta.ckpt").string();
  EXPECT_NE(test::error_of([&] { export_onnx(args); }).find("not an ml3 policy file"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(args.out));
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "a temporary file was left: " << e.path();
  // --policy is a source for ONNX only; two sources are one too many.
  args.format = "ml3p";
  EXPECT_NE(test::error_of([&] { export_policy(args); }).find("--policy FILE.ml3p is a source for --format onnx"),
            std::string::npos);
  args.format = "onnx";
  args.checkpoint = args.policy;
  EXPECT_NE(test::error_of([&] { export_onnx(args); }).find("exactly one of"), std::string::npos);
}

}  // namespace
}  // namespace ml3
