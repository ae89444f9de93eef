// ml3 launch: N ranks of a distributed run on this machine (docs/distributed.md).
// Spawns N copies of this binary with the rendezvous environment PyTorch's
// launchers set (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK),
// prefixes each rank's stderr with "[rank r] ", and when one rank fails gives
// the others the distributed timeout to stop by themselves, then ends them.
// LibTorch-free.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/net.h"
#include "tools/commands.h"

namespace ml3 {
namespace {

using Clock = std::chrono::steady_clock;

// SIGINT/SIGTERM to the launcher (Ctrl-C, a scheduler's cancel): passed on to the ranks.
volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

struct Rank {
  pid_t pid = -1;
  int err = -1;  // read end of its stderr
  std::string partial;
  bool running = true;
  int status = 0;
};

std::string exit_text(int status) {
  return WIFSIGNALED(status) ? fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)))
                             : fmt::format("exited with code {}", WEXITSTATUS(status));
}

struct LaunchArgs {
  int nproc = 2;
  int port = 0;
  double timeout = 0;
  std::vector<std::string> command;
};

void launch(const LaunchArgs& a) {
  if (a.command.empty()) throw UsageError("launch: needs the ml3 sub-command to run after --, e.g. "
                                          "ml3 launch --nproc 2 -- meta-train --config configs/pointmass_ml3.yaml");
  const int port = a.port > 0 ? a.port : free_local_port();
  if (a.timeout > 0) setenv("ML3_DIST_TIMEOUT", fmt::format("{}", a.timeout).c_str(), 1);
  const char* t = std::getenv("ML3_DIST_TIMEOUT");
  const double timeout = t && *t ? std::atof(t) : 300.0;
  std::vector<Rank> ranks(static_cast<size_t>(a.nproc));
  for (int r = 0; r < a.nproc; ++r) {
    int fds[2];
    if (pipe(fds) != 0) throw Error(fmt::format("launch: pipe: {}", std::strerror(errno)));
    const pid_t pid = fork();
    if (pid < 0) throw Error(fmt::format("launch: fork: {}", std::strerror(errno)));
    if (pid == 0) {
      dup2(fds[1], 2);
      close(fds[0]), close(fds[1]);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(a.nproc).c_str(), 1);
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      std::vector<char*> argv{const_cast<char*>("ml3")};
      for (const auto& s : a.command) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "launch: cannot run this ml3 binary: %s\n", std::strerror(errno));
      _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    ranks[r].pid = pid, ranks[r].err = fds[0];
  }
  int failed = -1;  // the first rank that failed
  Clock::time_point deadline;
  bool terminated = false, forwarded = false;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  auto forward = [&](Rank& k, int r, bool flush) {
    char buf[4096];
    ssize_t n;
    while ((n = read(k.err, buf, sizeof buf)) > 0) k.partial.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = k.partial.find('\n')) != std::string::npos; k.partial.erase(0, nl + 1))
      std::fprintf(stderr, "[rank %d] %s\n", r, k.partial.substr(0, nl).c_str());
    if (flush && !k.partial.empty()) std::fprintf(stderr, "[rank %d] %s\n", r, k.partial.c_str()), k.partial.clear();
  };
  for (int running = a.nproc; running > 0;) {
    std::vector<pollfd> p;
    for (auto& k : ranks)
      if (k.err >= 0) p.push_back({k.err, POLLIN, 0});
    if (!p.empty()) poll(p.data(), p.size(), 100);
    else usleep(100000);
    for (int r = 0; r < a.nproc; ++r) {
      Rank& k = ranks[r];
      if (k.err >= 0) forward(k, r, false);
      if (!k.running || waitpid(k.pid, &k.status, WNOHANG) != k.pid) continue;
      k.running = false, --running;
      if (k.err >= 0) forward(k, r, true), close(k.err), k.err = -1;
      const bool ok = WIFEXITED(k.status) && WEXITSTATUS(k.status) == 0;
      if (!ok && failed < 0) {
        failed = r;
        deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000) + 2000);
        std::fprintf(stderr, "launch: rank %d %s; the other ranks get %g s (ML3_DIST_TIMEOUT) to stop\n", r,
                     exit_text(k.status).c_str(), timeout);
      }
    }
    if (g_signal && !forwarded) {
      for (auto& k : ranks)
        if (k.running) kill(k.pid, g_signal);
      forwarded = true;
    }
    if (failed >= 0 && running > 0 && Clock::now() > deadline) {
      for (int r = 0; r < a.nproc; ++r)
        if (ranks[r].running) {
          std::fprintf(stderr, "launch: rank %d did not stop in time; ending it\n", r);
          kill(ranks[r].pid, terminated ? SIGKILL : SIGTERM);
        }
      terminated = true;
      deadline = Clock::now() + std::chrono::seconds(2);
    }
  }
  if (g_signal)
    throw Error(fmt::format("launch: stopped by signal {} ({}), passed on to the ranks", g_signal, strsignal(g_signal)));
  if (failed >= 0)
    throw Error(fmt::format("launch: rank {} of {} {}", failed, a.nproc, exit_text(ranks[failed].status)));
}

}  // namespace

void register_launch_command(CLI::App& app) {
  static LaunchArgs a;
  auto* cmd = app.add_subcommand(
      "launch", "Run an ml3 sub-command as N ranks of a distributed run on this machine (docs/distributed.md)");
  cmd->add_option("--nproc", a.nproc, "Number of ranks")->check(CLI::Range(1, 1024));
  cmd->add_option("--master-port", a.port, "Rendezvous port (default: a free one)")->check(CLI::Range(1, 65535));
  cmd->add_option("--dist-timeout", a.timeout,
                  "Seconds a collective may wait for a peer, and the others get after one rank failed "
                  "(sets ML3_DIST_TIMEOUT; default 300)")
      ->check(CLI::Range(0.1, 1e7));
  cmd->add_option("command", a.command, "The ml3 sub-command and its arguments, after --")->required();
  cmd->callback([] { launch(a); });
}

}  // namespace ml3
