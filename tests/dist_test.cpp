// Distributed meta-training end to end (the real binary, ranks as processes on
// this machine over c10d/Gloo on 127.0.0.1): 2 ranks give the numbers of one
// process; a rank that dies or hangs stops the other within the timeout with
// its number named; the last checkpoint resumes on another number of ranks.
// Not built under the sanitizers (CMakeLists.txt): several LibTorch processes
// with timeouts are too slow there, and libgloo is not instrumented.
#include <fstream>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/archive.h"
#include "core/net.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using test::run_command;

// Tiny pointmass ML3 that touches every shared piece of state: the loss's
// normalisation statistics (iterations 1-2), expert labels into the buffer and
// the target fit, the inner Adam state in the pool, pool restarts.
std::string tiny_config(const fs::path& dir) {
  test::write_file(dir / "meta.yaml", "algorithm: ml3\nenv:\n  name: pointmass\npolicy:\n  obs_norm: false\n");
  return "--config " + (dir / "meta.yaml").string() +
         " meta.tasks_per_iteration=4 meta.pool_size=4 meta.episodes_per_task=6 meta.checkpoint_every=1"
         " meta.pool_reset_every=2 policy.hidden=16 loss.hidden=8 loss.norm_iterations=2 threads=1"
         " loss.target=true loss.target_hidden=8 shaping.expert_labels=true shaping.target_fit_steps=3"
         " shaping.buffer_rows=500 shaping.demo_rows=64 meta.inner_optimizer=adam meta.inner_lr=1e-3"
         " meta.steps_per_batch=2";
}

std::vector<nlohmann::json> rows(const fs::path& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Equal to float tolerance, timing columns aside.
void expect_same_run(const fs::path& a, const fs::path& b) {
  const auto ra = rows(a), rb = rows(b);
  ASSERT_EQ(ra.size(), rb.size());
  ASSERT_FALSE(ra.empty());
  for (size_t i = 0; i < ra.size(); ++i)
    for (const auto& [key, va] : ra[i].items()) {
      if (key.find("seconds") != std::string::npos) continue;
      const auto& vb = rb[i].at(key);
      if (!va.is_number()) {
        EXPECT_EQ(va, vb) << key << " row " << i;
        continue;
      }
      const double x = va.get<double>(), y = vb.get<double>();
      EXPECT_NEAR(x, y, 1e-4 * (1 + std::abs(x))) << key << " row " << i;
    }
  const Archive la = Archive::load((a / "loss.ml3").string()), lb = Archive::load((b / "loss.ml3").string());
  ASSERT_EQ(la.blobs().size(), lb.blobs().size());
  size_t compared = 0;
  for (const auto& [name, blob] : la.blobs()) {
    const Blob& other = lb.get(name);
    ASSERT_EQ(blob.shape, other.shape) << name;
    if (blob.dtype != "f32") continue;
    const auto* x = reinterpret_cast<const float*>(blob.bytes.data());
    const auto* y = reinterpret_cast<const float*>(other.bytes.data());
    for (int64_t j = 0; j < blob.numel(); ++j) EXPECT_NEAR(x[j], y[j], 1e-5 * (1 + std::abs(x[j]))) << name << "[" << j << "]";
    ++compared;
  }
  EXPECT_GT(compared, 0u);
}

std::string ml3(const std::string& args) { return std::string(ML3_BINARY) + " " + args; }

TEST(Dist, TwoRanksGiveTheNumbersOfOneProcess) {
  const auto root = test::temp_dir("dist_same");
  const std::string cfg = tiny_config(root) + " meta.iterations=3 --quiet";
  auto r = run_command(ml3("meta-train " + cfg + " --out " + (root / "one").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_command(ml3("launch --nproc 2 --dist-timeout 60 -- meta-train " + cfg + " --out " + (root / "two").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  expect_same_run(root / "one", root / "two");
  EXPECT_FALSE(fs::exists(root / "two" / "checkpoints" / "iter_000004.ckpt"));
  // Rank 0 writes; the comm_seconds and wait_seconds columns are there (0 in one process).
  EXPECT_EQ(rows(root / "one").back()["comm_seconds"], 0.0);
  EXPECT_EQ(rows(root / "one").back()["wait_seconds"], 0.0);
  EXPECT_GT(rows(root / "two").back()["comm_seconds"].get<double>(), 0.0);
  EXPECT_GT(rows(root / "two").back()["wait_seconds"].get<double>(), 0.0);
}

// meta-test's (method, seed) runs spread over 2 ranks and gathered on rank
// 0: the same results and curves as one process, byte for byte (each run is
// the same computation wherever it runs); rank 1 prints nothing.
TEST(Dist, MetaTestSpreadsItsRunsOverRanksWithTheSameOutputs) {
  const auto root = test::temp_dir("dist_metatest");
  auto r = run_command(ml3("meta-train " + tiny_config(root) + " meta.iterations=1 --quiet --out " + (root / "mt").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string args = "meta-test --loss " + (root / "mt" / "loss.ml3").string() + " " + tiny_config(root) +
                           " meta_test.updates=4 meta_test.seeds=3 meta_test.eval_every=2 meta_test.eval_episodes=8"
                           " value.hidden=8 baselines.ppo.pg.epochs=2"
                           " baselines.ppo.pg.minibatches=2 baselines.reinforce.pg.epochs=2"
                           " baselines.reinforce.pg.minibatches=2 --quiet --json --out ";
  r = run_command(ml3(args + (root / "one").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  auto one = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  r = run_command(ml3("launch --nproc 2 --dist-timeout 60 -- " + args + (root / "two").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  auto two = nlohmann::json::parse(r.out.substr(r.out.find('{')));  // once: rank 0's
  EXPECT_NE(one["plot"], two["plot"]);  // the output folders; everything else is the same
  one = test::without_timings(one), two = test::without_timings(two);
  EXPECT_TRUE(one == two) << one.dump().substr(0, 2000) << "\n" << two.dump().substr(0, 2000);
  EXPECT_EQ(one["methods"].size(), 3u);
  EXPECT_EQ(one["methods"][0]["per_seed"].size(), 3u);
  EXPECT_EQ(test::read_text(root / "one" / "curves.json"), test::read_text(root / "two" / "curves.json"));
}

// compare, with a learning-rate sweep: the sweep's runs are spread too, every
// rank picks the same rate, and rank 0's outputs are those of one process.
TEST(Dist, CompareSpreadsItsRunsAndSweepOverRanksWithTheSameOutputs) {
  const auto root = test::temp_dir("dist_compare");
  const std::string demos = (root / "pm.demos").string();
  auto r = run_command(ml3("demos --env pointmass --episodes 6 --out " + demos));
  ASSERT_EQ(r.code, 0) << r.out;
  test::write_file(root / "cmp.yaml",
                   "env: {name: pointmass}\npolicy: {hidden: [8, 8]}\nvalue: {hidden: [8]}\nthreads: 1\n"
                   "compare: {seeds: 3, updates: 4, episodes_per_update: 8, eval_every: 2, eval_episodes: 8, "
                   "threshold: 0.1}\n"
                   "sweep: {seeds: 1, updates: 2}\n"
                   "methods:\n"
                   "  reinforce: {kind: reinforce, sweep_lrs: \"1e-3,1e-2\", pg: {epochs: 2, minibatches: 2}}\n"
                   "  bc: {kind: bc, bc: {demos: " + demos + ", steps_per_update: 2, batch_rows: 16}}\n");
  const std::string args = "compare --config " + (root / "cmp.yaml").string() + " --quiet --json --out ";
  r = run_command(ml3(args + (root / "one").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  auto one = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  r = run_command(ml3("launch --nproc 2 --dist-timeout 60 -- " + args + (root / "two").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  auto two = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  one = test::without_timings(one), two = test::without_timings(two);
  EXPECT_TRUE(one == two) << one.dump().substr(0, 2000) << "\n" << two.dump().substr(0, 2000);
  EXPECT_EQ(one["sweep"]["methods"]["reinforce"]["runs"].size(), 2u);
  EXPECT_EQ(test::read_text(root / "one" / "curves.json"), test::read_text(root / "two" / "curves.json"));
}

// One rank of `world` as a process with the rendezvous environment; its
// output goes to `log`.
pid_t spawn_rank(int rank, int world, int port, double timeout, const std::string& args, const fs::path& log) {
  const std::string cmd = "exec env WORLD_SIZE=" + std::to_string(world) + " RANK=" + std::to_string(rank) +
                          " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                          " ML3_DIST_TIMEOUT=" + std::to_string(timeout) + " " + ml3(args) + " >" + log.string() +
                          " 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

bool wait_for(const std::function<bool()>& cond, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

// The other rank's exit status after rank `victim` was hit by `signal`, and the seconds it took.
struct Stopped {
  int code = -1;
  double seconds = 0;
  std::string log;
};
// `config`: the meta-train arguments (default: tiny_config's ML3 run).
Stopped stop_rank(int victim, const fs::path& root, const std::string& name, int signal, double timeout,
                  const std::string& config = "") {
  const int port = free_local_port();
  const std::string args = "meta-train " + (config.empty() ? tiny_config(root) + " meta.iterations=1000" : config) +
                           " --out " + (root / name).string();
  const pid_t r0 = spawn_rank(0, 2, port, timeout, args, root / (name + "_0.log"));
  const pid_t r1 = spawn_rank(1, 2, port, timeout, args, root / (name + "_1.log"));
  const bool progressed =
      wait_for([&] { return fs::exists(root / name / "checkpoints" / "iter_000002.ckpt"); }, 60);
  const pid_t hit = victim == 0 ? r0 : r1, other = victim == 0 ? r1 : r0;
  kill(hit, signal);
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  const bool stopped = wait_for([&] { return waitpid(other, &status, WNOHANG) == other; }, timeout + 20);
  Stopped s;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!stopped) kill(other, SIGKILL), waitpid(other, &status, 0);
  kill(hit, SIGKILL);
  waitpid(hit, nullptr, 0);
  EXPECT_TRUE(progressed);
  EXPECT_TRUE(stopped) << "the other rank did not stop";
  s.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  s.log = test::read_text(root / (name + "_" + std::to_string(1 - victim) + ".log"));
  return s;
}

// The surviving rank `survivor` failed with exit 1 within the timeout (+5 s),
// its message naming the collective and, with `diagnosis`, the other rank.
void expect_stopped(const Stopped& s, int survivor, const std::string& diagnosis, int timeout) {
  EXPECT_EQ(s.code, 1) << s.log;
  EXPECT_NE(s.log.find("error: distributed: rank " + std::to_string(survivor) + " of 2: collective '"),
            std::string::npos)
      << s.log;
  EXPECT_NE(s.log.find(diagnosis), std::string::npos) << s.log;
  EXPECT_LT(s.seconds, timeout + 5) << s.log;
}

// Hung (stopped): the other rank's collective times out after
// ML3_DIST_TIMEOUT. Rank 0 here: it also serves the rendezvous store, which
// then does not answer either (rank 1 hung: the dead-rank test's diagnosis).
TEST(Dist, AHungRankStopsTheOtherWithinTheTimeout) {
  const auto root = test::temp_dir("dist_hung");
  expect_stopped(stop_rank(0, root, "hung", SIGSTOP, 3), 1, "rank 0 (the host of the rendezvous store) does not answer", 3);
}

// A rank ignores SIGPIPE: when its peer dies mid-write, the write fails with
// EPIPE and the collective reports the rank, instead of the signal ending
// this rank silently (exit by signal, empty log: seen under load before the
// fix). Checked on the live ranks through /proc/<pid>/status's SigIgn mask.
TEST(Dist, RanksIgnoreSigpipeSoADeadPeerIsReportedNotFatal) {
  const auto root = test::temp_dir("dist_sigpipe");
  const int port = free_local_port();
  const std::string args = "meta-train " + tiny_config(root) + " meta.iterations=1000 --out " + (root / "run").string();
  const pid_t r0 = spawn_rank(0, 2, port, 30, args, root / "r0.log");
  const pid_t r1 = spawn_rank(1, 2, port, 30, args, root / "r1.log");
  // Once a checkpoint exists both ranks have set up the process group.
  const bool started = wait_for([&] { return fs::exists(root / "run" / "checkpoints" / "iter_000001.ckpt"); }, 60);
  auto ignores_sigpipe = [](pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("SigIgn:", 0) == 0) return ((std::stoull(line.substr(7), nullptr, 16) >> (SIGPIPE - 1)) & 1) == 1;
    return false;
  };
  const bool ignored0 = started && ignores_sigpipe(r0), ignored1 = started && ignores_sigpipe(r1);
  kill(r0, SIGKILL), kill(r1, SIGKILL);
  waitpid(r0, nullptr, 0), waitpid(r1, nullptr, 0);
  ASSERT_TRUE(started) << test::read_text(root / "r0.log");
  EXPECT_TRUE(ignored0);
  EXPECT_TRUE(ignored1);
  fs::remove_all(root);
}

TEST(Dist, ADeadRankStopsTheOtherAndTheRunResumesOnOtherRankCounts) {
  const auto root = test::temp_dir("dist_dead");
  // Killed: its connections close; rank 0 stops at its next collective.
  expect_stopped(stop_rank(1, root, "killed", SIGKILL, 5), 0, "rank 1 stopped responding", 5);
  // The last checkpoint is whole; one process continues it, then 2 ranks.
  const fs::path run = root / "killed";
  const Archive last = Archive::load((run / "checkpoints" / "last.ckpt").string(), "checkpoint");
  const int it = last.meta().at("iteration").get<int>();
  ASSERT_GE(it, 2);
  auto r = run_command(ml3("meta-train --quiet --resume " + run.string() + " --stop-after " + std::to_string(it + 1)));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_command(ml3("launch --nproc 2 --dist-timeout 60 -- meta-train --quiet --resume " + run.string() +
                      " --stop-after " + std::to_string(it + 2)));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("on 2 ranks"), std::string::npos) << r.out;
  const auto rs = rows(run);
  ASSERT_EQ(rs.size(), static_cast<size_t>(it + 2));
  EXPECT_EQ(rs.back()["iteration"], it + 2);
}

TEST(Dist, LaunchNamesTheRankThatFailedAndRefusesOtherAlgorithms) {
  const auto root = test::temp_dir("dist_launch");
  auto r = run_command(ml3("launch --nproc 2 --dist-timeout 10 -- meta-train --config " + (root / "none.yaml").string()));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("error: launch: rank "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("of 2 exited with code"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[rank 1] "), std::string::npos) << r.out;
  r = run_command(ml3("launch --nproc 2 --dist-timeout 10 -- train --config " + std::string(ML3_SOURCE_DIR) +
                      "/configs/pointmass_ppo.yaml train.iterations=1 --out " + (root / "ppo").string()));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("'ml3 train' does not run on several ranks"), std::string::npos) << r.out;
  r = run_command(ml3("launch --nproc 2 --dist-timeout 10 -- meta-train --config " + std::string(ML3_SOURCE_DIR) +
                      "/configs/sine_ml3.yaml --out " + (root / "sine").string()));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("algorithm 'sine' does not run on several ranks"), std::string::npos) << r.out;
  r = run_command("env WORLD_SIZE=2 " + ml3("meta-train --config " + std::string(ML3_SOURCE_DIR) +
                                             "/configs/pointmass_ml3.yaml --out " + (root / "x").string()));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("environment variable RANK is not set (WORLD_SIZE is)"), std::string::npos) << r.out;
}

// Two "hosts": ranks in separate network namespaces joined by a veth pair
// with private addresses, rendezvous and collectives over that link only
// (GLOO_SOCKET_IFNAME). Needs the right to create namespaces (root); skipped
// otherwise.
TEST(Dist, RanksInSeparateNetworkNamespacesTalkOverAVethLink) {
  const std::string id = std::to_string(getpid() % 100000), a = "ml3a" + id, b = "ml3b" + id;
  const std::string va = "m3a" + id, vb = "m3b" + id;  // interface names: at most 15 characters
  auto r = run_command("ip netns add " + a + " && ip netns add " + b);
  struct Cleanup {
    std::string a, b;
    ~Cleanup() { run_command("ip netns del " + a + "; ip netns del " + b); }
  } cleanup{a, b};
  if (r.code != 0) GTEST_SKIP() << "network namespaces are not permitted here: " << r.out;
  r = run_command("ip link add " + va + " type veth peer name " + vb + " && ip link set " + va + " netns " + a +
                  " && ip link set " + vb + " netns " + b + " && ip -n " + a + " addr add 10.77.0.1/24 dev " + va +
                  " && ip -n " + b + " addr add 10.77.0.2/24 dev " + vb + " && ip -n " + a + " link set " + va +
                  " up && ip -n " + b + " link set " + vb + " up && ip -n " + a + " link set lo up && ip -n " + b +
                  " link set lo up");
  if (r.code != 0) GTEST_SKIP() << "no veth pair between namespaces here: " << r.out;
  const auto root = test::temp_dir("dist_netns");
  const std::string cfg = tiny_config(root) + " meta.iterations=2 --quiet";
  const int port = free_local_port();
  auto rank = [&](int k, const std::string& ns, const std::string& dev) {
    return "ip netns exec " + ns + " env WORLD_SIZE=2 RANK=" + std::to_string(k) +
           " MASTER_ADDR=10.77.0.1 MASTER_PORT=" + std::to_string(port) + " GLOO_SOCKET_IFNAME=" + dev +
           " ML3_DIST_TIMEOUT=30 " + ml3("meta-train " + cfg + " --out " + (root / "two").string());
  };
  r = run_command("(" + rank(0, a, va) + " > " + (root / "rank0.log").string() + " 2>&1 &) ; " + rank(1, b, vb) +
                  " && sleep 0.5 && cat " + (root / "rank0.log").string());
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_TRUE(wait_for([&] { return fs::exists(root / "two" / "summary.json"); }, 30)) << r.out;
  r = run_command(ml3("meta-train " + cfg + " --out " + (root / "one").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  expect_same_run(root / "one", root / "two");
  // The collectives went over the veth link.
  r = run_command("ip netns exec " + a + " cat /sys/class/net/" + va + "/statistics/tx_bytes");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_GT(std::atol(r.out.c_str()), 20000) << r.out;
}

// ES meta-training of a PPO drift (algorithm lpo): a tiny pointmass run.
std::string tiny_lpo(const fs::path& dir) {
  test::write_file(dir / "lpo.yaml", "algorithm: lpo\nenv:\n  name: pointmass\n");
  return "--config " + (dir / "lpo.yaml").string() +
         " es.population=4 es.lifetimes=3 es.eval_every=2 es.checkpoint_every=1 lifetime.updates=2"
         " lifetime.episodes_per_update=6 lifetime.eval_episodes=6 policy.hidden=8 value.hidden=8 threads=1"
         " pg.epochs=2 pg.minibatches=2 drift.hidden=4 es.sigma=0.5 es.fitness=return";
}

// The population's lifetimes spread over 2 ranks, only fitness values
// exchanged: every metric (timings aside) and the drift's parameters are
// byte-identical to one process's.
TEST(Dist, LpoTwoRanksAreByteIdenticalToOneProcess) {
  const auto root = test::temp_dir("dist_lpo");
  // Both objectives: a drift (fast backend) and an ML3 loss (LibTorch; its
  // normalisation lifetime runs on every rank).
  const std::vector<std::pair<std::string, std::string>> objectives = {
      {"drift", ""},
      {"ml3_loss", " es.objective=ml3_loss es.lifetimes=1 policy.obs_norm=false loss.hidden=4 learned_loss.optimizer=adam"
                   " learned_loss.lr=0.01 learned_loss.steps=2"}};
  for (const auto& [name, extra] : objectives) {
    const std::string cfg = tiny_lpo(root) + " es.generations=3 --quiet" + extra;
    const fs::path one_dir = root / (name + "_one"), two_dir = root / (name + "_two");
    auto r = run_command(ml3("meta-train " + cfg + " --out " + one_dir.string()));
    ASSERT_EQ(r.code, 0) << r.out;
    r = run_command(ml3("launch --nproc 2 --dist-timeout 60 -- meta-train " + cfg + " --out " + two_dir.string()));
    ASSERT_EQ(r.code, 0) << r.out;
    auto without_comm = [](const fs::path& dir) {
      std::vector<std::string> out;
      for (auto row : rows(dir)) {
        for (const char* k : {"wall_seconds", "seconds", "comm_seconds", "wait_seconds"}) row.erase(k);
        out.push_back(row.dump());
      }
      return out;
    };
    const auto one = without_comm(one_dir), two = without_comm(two_dir);
    ASSERT_EQ(one.size(), 3u) << name;
    EXPECT_EQ(one, two) << name;
    // The artifact's parameters (and the loss's normalisation), byte for byte.
    const std::string file = name == "drift" ? "lpo.drift" : "lpo.ml3";
    const Archive a = Archive::load((one_dir / file).string()), b = Archive::load((two_dir / file).string());
    ASSERT_EQ(a.blobs().size(), b.blobs().size()) << name;
    for (const auto& [key, blob] : a.blobs()) EXPECT_EQ(blob.bytes, b.get(key).bytes) << name << " " << key;
  }
  fs::remove_all(root);
}

// A dead rank stops the other within the timeout, naming it; the last
// checkpoint resumes in one process.
TEST(Dist, LpoDeadRankStopsTheOtherAndTheRunResumes) {
  const auto root = test::temp_dir("dist_lpo_dead");
  expect_stopped(stop_rank(1, root, "killed", SIGKILL, 5, tiny_lpo(root) + " es.generations=1000"), 0,
                 "rank 1 stopped responding", 5);
  const fs::path run = root / "killed";
  const Archive last = Archive::load((run / "checkpoints" / "last.ckpt").string(), "checkpoint");
  const int it = last.meta().at("iteration").get<int>();
  ASSERT_GE(it, 2);
  const auto r = run_command(ml3("meta-train --quiet --resume " + run.string() + " --stop-after " + std::to_string(it + 1)));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(rows(run).back()["iteration"], it + 1);
  fs::remove_all(root);
}

}  // namespace
}  // namespace ml3
