// Unit tests of core/: thread pool, checksummed archives, RNG, config schema
// helpers (the YAML/override paths are in config_test.cpp). LibTorch-free, so
// they also run in the ThreadSanitizer build (ML3_TSAN=ON ML3_WITH_TORCH=OFF).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "core/archive.h"
#include "core/config.h"
#include "core/error.h"
#include "core/es.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "test_util.h"

namespace ml3 {
namespace {

using test::error_of;

// ---- thread pool ------------------------------------------------------------
TEST(ThreadPool, RunsEveryIndexExactlyOnceInContiguousChunks) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (int n : {0, 1, 2, 3, 5, 7, 64, 1001}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> calls{0};
      pool.parallel_for(n, [&](int begin, int end) {
        ASSERT_LE(0, begin);
        ASSERT_LT(begin, end) << "no empty chunks";
        ASSERT_LE(end, n);
        for (int i = begin; i < end; ++i) hits[i].fetch_add(1);
        calls.fetch_add(1);
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n << " i " << i;
      EXPECT_LE(calls.load(), threads);
    }
  }
}

TEST(ThreadPool, ReusedAcrossManyCallsWithChangingSizes) {
  ThreadPool pool(3);
  std::vector<long> sums;
  for (int call = 0; call < 500; ++call) {
    const int n = 1 + call % 17;
    std::vector<long> out(n, 0);
    pool.parallel_for(n, [&](int begin, int end) {
      for (int i = begin; i < end; ++i) out[i] = static_cast<long>(i) * call;  // disjoint writes
    });
    long s = 0;
    for (long v : out) s += v;
    ASSERT_EQ(s, static_cast<long>(call) * n * (n - 1) / 2) << "call " << call;
  }
}

TEST(ThreadPool, ExceptionsPropagateToTheCallerAndThePoolStaysUsable) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    const int n = 9;
    // Thrown in the caller's chunk (index 0) and in a worker's chunk (index 8).
    for (int bad : {0, 8}) {
      std::atomic<int> done{0};
      try {
        pool.parallel_for(n, [&](int begin, int end) {
          for (int i = begin; i < end; ++i) {
            if (i == bad) throw Error("index " + std::to_string(i) + " failed");
            done.fetch_add(1);
          }
        });
        FAIL() << "expected an exception (threads " << threads << ")";
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "index " + std::to_string(bad) + " failed");
      }
      // Other chunks ran to completion before parallel_for returned.
      EXPECT_GE(done.load(), threads == 1 ? bad : n - 3);
    }
    // Several chunks throwing: one exception comes out, of its own type.
    EXPECT_THROW(pool.parallel_for(n, [](int, int) { throw std::out_of_range("all"); }), std::out_of_range);
    std::atomic<int> count{0};
    pool.parallel_for(n, [&](int begin, int end) { count.fetch_add(end - begin); });
    EXPECT_EQ(count.load(), n);
  }
}

TEST(ThreadPool, RejectsZeroThreads) {
  EXPECT_NE(error_of([] { ThreadPool pool(0); }).find("thread count must be >= 1"), std::string::npos);
}

// ---- archive ----------------------------------------------------------------
Archive sample_archive() {
  Archive a("checkpoint");
  a.meta()["iteration"] = 12;
  a.meta()["name"] = "x";
  a.put_f64("weights", {1.5, -0.0, 1e-300, 3.14159});
  const float f[6] = {1, 2, 3, 4, 5, 6.5f};
  a.put("f32", "f32", {2, 3}, f, sizeof(f));
  const int64_t i[2] = {-1, 1LL << 40};
  a.put("i64", "i64", {2}, i, sizeof(i));
  const uint64_t u = ~0ull;
  a.put("u64", "u64", {}, &u, sizeof(u));
  a.put("empty", "f64", {0}, nullptr, 0);
  return a;
}

// Rewrites the trailing checksum so that only the body is corrupt.
std::string with_valid_checksum(std::string bytes) {
  const uint64_t h = fnv1a64(bytes.data(), bytes.size() - 8);
  std::memcpy(&bytes[bytes.size() - 8], &h, 8);
  return bytes;
}

TEST(Archive, RoundTripOfEveryDtypeIsExact) {
  const auto dir = test::temp_dir("core_archive");
  const std::string path = (dir / "sub" / "a.bin").string();
  const Archive a = sample_archive();
  a.save(path);
  // Atomic save: only the final file is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "sub")) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  const Archive b = Archive::load(path, "checkpoint");
  EXPECT_EQ(b.kind(), "checkpoint");
  EXPECT_EQ(b.path(), path);
  EXPECT_EQ(b.meta(), a.meta());
  ASSERT_EQ(b.blobs().size(), a.blobs().size());
  for (const auto& [name, blob] : a.blobs()) {
    const Blob& c = b.get(name);
    EXPECT_EQ(c.dtype, blob.dtype) << name;
    EXPECT_EQ(c.shape, blob.shape) << name;
    EXPECT_EQ(c.bytes, blob.bytes) << name;
  }
  const auto w = b.get_f64("weights");
  EXPECT_EQ(0, std::memcmp(w.data(), a.get_f64("weights").data(), w.size() * sizeof(double)));
  EXPECT_TRUE(std::signbit(w[1]));
  EXPECT_EQ(b.get("u64").numel(), 1);
  EXPECT_EQ(b.get("empty").numel(), 0);
  EXPECT_NE(error_of([&] { b.get("nope"); }).find("missing entry 'nope'"), std::string::npos);
  EXPECT_NE(error_of([&] { b.get_f64("f32"); }).find("is not f64"), std::string::npos);
  EXPECT_NE(error_of([&] { Archive::load(path, "loss"); }).find("expected a loss file"), std::string::npos);
  // Saving again over the file replaces it.
  Archive c("checkpoint");
  c.save(path);
  EXPECT_TRUE(Archive::load(path).blobs().empty());
}

TEST(Archive, EveryFlippedByteAndEveryTruncationIsRejected) {
  const auto dir = test::temp_dir("core_archive_flip");
  const std::string good = (dir / "good.bin").string(), bad = (dir / "bad.bin").string();
  sample_archive().save(good);
  const std::string bytes = test::read_text(good);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string b = bytes;
    b[i] ^= 0x01;
    test::write_file(bad, b);
    const std::string msg = error_of([&] { Archive::load(bad); });
    ASSERT_TRUE(msg.find("checksum mismatch") != std::string::npos || msg.find("not an ml3 file") != std::string::npos)
        << "byte " << i << ": " << msg;
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    test::write_file(bad, bytes.substr(0, n));
    const std::string msg = error_of([&] { Archive::load(bad); });
    ASSERT_NE(msg, "(no error)") << "truncated to " << n;
    ASSERT_NE(msg.find(bad), std::string::npos) << msg;
  }
}

TEST(Archive, CorruptBodyWithAValidChecksumIsRejectedCleanly) {
  const auto dir = test::temp_dir("core_archive_body");
  const std::string good = (dir / "good.bin").string(), bad = (dir / "bad.bin").string();
  sample_archive().save(good);
  const std::string bytes = test::read_text(good);
  auto load_edited = [&](const std::function<void(std::string&)>& edit) {
    std::string b = bytes;
    edit(b);
    test::write_file(bad, with_valid_checksum(b));
    return error_of([&] { Archive::load(bad); });
  };
  // A string length far past the end of the file (the kind's, right after the magic).
  EXPECT_NE(load_edited([](std::string& b) {
              const uint64_t huge = 1ull << 60;
              std::memcpy(&b[8], &huge, 8);
            }).find("truncated or corrupt"),
            std::string::npos);
  // An unknown dtype, and metadata that is not JSON.
  EXPECT_NE(load_edited([](std::string& b) {
              const auto name = b.find("f32");  // the entry's name, then its dtype
              b.replace(b.find("f32", name + 3), 3, "f31");
            }).find("corrupt entry 'f32'"),
            std::string::npos);
  EXPECT_NE(load_edited([](std::string& b) { b[b.find("{\"")] = '['; }).find("corrupt metadata"), std::string::npos);
}

// ---- rng --------------------------------------------------------------------
TEST(Rng, ReproducibleRestorableAndSeedSensitive) {
  Rng a(42), b(42), c(43);
  std::vector<uint64_t> xs;
  for (int i = 0; i < 100; ++i) {
    xs.push_back(a.next());
    EXPECT_EQ(xs.back(), b.next());
  }
  EXPECT_NE(Rng(42).next(), c.next());
  Rng d(5);
  for (int i = 0; i < 10; ++i) d.next();
  Rng e;
  e.set_state(d.state());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(d.next(), e.next());
  for (int i = 0; i < 1000; ++i) {
    const double u = a.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const double v = a.uniform(-2.0, 3.0);
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 3.0);
  }
  EXPECT_NE(mix_seed(1, 2), mix_seed(2, 1));
  EXPECT_EQ(mix_seed(7, 9), mix_seed(7, 9));
}

// ---- config schema helpers ----------------------------------------------------
TEST(Schema, IncludeSetDefaultAndMarkdown) {
  Schema inner;
  inner.add_int("steps", 5, "steps per episode", 1, 10);
  Schema s;
  s.include("env.", inner);
  s.set_default("env.steps", "7");
  ASSERT_NE(s.find("env.steps"), nullptr);
  EXPECT_EQ(s.find("steps"), nullptr);
  EXPECT_EQ(Config(s).get_int("env.steps"), 7);
  EXPECT_NE(error_of([&] { s.set_default("env.steps", "11"); }).find("bad default"), std::string::npos);
  EXPECT_NE(error_of([&] { s.set_default("env.stepz", "3"); }).find("unknown config key"), std::string::npos);
  EXPECT_EQ(s.closest("env.stepz"), "env.steps");
  const std::string md = schema_markdown(s);
  EXPECT_NE(md.find("| `env.steps` |"), std::string::npos) << md;
  EXPECT_NE(md.find("`7`"), std::string::npos) << md;
}

// ---- OpenAI-ES (core/es.h) --------------------------------------------------------
// f(x) = -|x - c|^2: its gradient is -2 (x - c), its optimum c.
double quadratic_fitness(const std::vector<double>& x, const std::vector<double>& c) {
  double f = 0;
  for (size_t j = 0; j < x.size(); ++j) f -= (x[j] - c[j]) * (x[j] - c[j]);
  return f;
}

TEST(Es, CenteredRanksShareTiesAndSpanMinusHalfToHalf) {
  EXPECT_EQ(centered_ranks({3, 1, 2, 2}), (std::vector<double>{0.5, -0.5, 0.0, 0.0}));
  EXPECT_EQ(centered_ranks({-1e9, 7}), (std::vector<double>{-0.5, 0.5}));
}

// With antithetic pairs a quadratic's fitness differences are exactly
// 2 sigma grad.eps, so the raw-fitness estimate is (1/pairs) sum eps eps^T grad:
// the true gradient up to sampling error ~ sqrt(dim / pairs).
TEST(Es, GradientEstimateMatchesTheTrueGradientOfAQuadratic) {
  const std::vector<double> c{0.5, -1.0, 2.0, 0.0, 1.5}, x0{0, 0, 0, 0, 0};
  EsSettings s;
  s.population = 8000, s.sigma = 0.01, s.rank_shaping = false, s.seed = 3;
  const OpenAiEs es(x0, s);
  std::vector<double> fitness;
  for (int i = 0; i < s.population; ++i) fitness.push_back(quadratic_fitness(es.member(i), c));
  const std::vector<double> g = es.gradient(fitness);
  double err = 0, norm = 0;
  for (size_t j = 0; j < c.size(); ++j) {
    const double truth = -2 * (x0[j] - c[j]);
    err += (g[j] - truth) * (g[j] - truth), norm += truth * truth;
  }
  EXPECT_LT(std::sqrt(err / norm), 0.1);
  // Members are antithetic and regenerated from (seed, generation, pair) alone.
  const auto a = es.member(6), b = es.member(7);
  for (size_t j = 0; j < a.size(); ++j) EXPECT_DOUBLE_EQ(a[j] + b[j], 2 * x0[j]);
  EXPECT_EQ(OpenAiEs(x0, s).member(6), a);
}

// A whole ES run (32 members, centred ranks, Adam) finds the optimum of a
// 10-D quadratic, and a run saved and loaded mid-way continues bit for bit.
TEST(Es, ConvergesOnAQuadraticAndResumesExactly) {
  Rng rng(11);
  std::vector<double> c(10);
  for (auto& v : c) v = rng.uniform(-1, 1);
  EsSettings s;
  s.population = 32, s.sigma = 0.05, s.lr = 0.02, s.seed = 7;
  auto generation = [&](OpenAiEs& es) {
    std::vector<double> f;
    for (int i = 0; i < s.population; ++i) f.push_back(quadratic_fitness(es.member(i), c));
    es.step(f);
  };
  OpenAiEs es(std::vector<double>(10, 0.0), s);
  const double start = -quadratic_fitness(es.mean(), c);
  for (int g = 0; g < 200; ++g) generation(es);
  Archive a("es_test");
  es.save(a, "es/");
  OpenAiEs resumed(std::vector<double>(10, 0.0), s);
  resumed.load(a, "es/");
  for (int g = 0; g < 300; ++g) generation(es), generation(resumed);
  EXPECT_EQ(es.mean(), resumed.mean());
  EXPECT_EQ(resumed.generation(), 500);
  double worst = 0;
  for (size_t j = 0; j < c.size(); ++j) worst = std::max(worst, std::abs(es.mean()[j] - c[j]));
  EXPECT_LT(worst, 0.05) << "squared distance at the start " << start;
}

TEST(Es, RejectsBadSettingsAndFitness) {
  EsSettings s;
  s.population = 31;
  EXPECT_NE(error_of([&] { OpenAiEs({0.0}, s); }).find("even number"), std::string::npos);
  s.population = 4;
  OpenAiEs es({0.0, 1.0}, s);
  EXPECT_NE(error_of([&] { es.step({1, 2, 3}); }).find("3 fitness values"), std::string::npos);
  EXPECT_NE(error_of([&] { es.step({1, 2, NAN, 4}); }).find("not finite"), std::string::npos);
}

}  // namespace
}  // namespace ml3
