#pragma once
// Distributed runs (docs/distributed.md): a process group over LibTorch's
// c10d -- rendezvous through c10d's TCP store from the environment PyTorch
// users know (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK), collectives over
// Gloo. Without WORLD_SIZE (or with WORLD_SIZE=1) there is one process and no
// c10d at all: every collective is a no-op and runs are unchanged bit for bit.
// ML3_DIST_TIMEOUT (seconds, default 300) bounds every collective and the
// rendezvous (which waits at least 30 s); a collective that fails or times
// out throws ml3::Error naming this rank, the collective and, when it can be
// told, the rank that died or hangs. The c10d headers stay in src/run/dist.cpp.
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace ml3::dist {

// The sub-commands that may run as a rank of a distributed run (the others
// would only repeat the same work on every rank): meta-train (of an
// algorithm whose iterations spread over ranks, Algorithm::spreads_over_ranks),
// meta-test (of an algorithm whose meta-test does, AlgorithmEntry::
// meta_test_spreads_over_ranks), compare, and launch itself.
inline bool command_runs_on_ranks(const std::string& command) {
  return command == "meta-train" || command == "meta-test" || command == "compare" || command == "launch";
}

struct Env {
  int world = 1, rank = 0;
  std::string addr;  // MASTER_ADDR
  int port = 0;      // MASTER_PORT
  double timeout_seconds = 300;
};
// The environment's settings; throws ml3::Error naming the variable that is
// missing or malformed (WORLD_SIZE set but RANK missing, ...).
Env env_settings();

class Comm {
 public:
  // The process-wide group, set up from the environment on first use.
  static Comm& get();
  ~Comm();
  int rank() const { return env_.rank; }
  int world() const { return env_.world; }
  bool distributed() const { return env_.world > 1; }
  bool root() const { return env_.rank == 0; }

  // In place; `what` names the collective in errors ("meta-gradient").
  void allreduce_sum(at::Tensor& t, const char* what);
  // `t` from rank `root` to all (in place: same shape and dtype everywhere).
  void broadcast(at::Tensor& t, int root, const char* what);
  // Tensors of any shapes (dtype float32, float64 or int64) from `root`;
  // other ranks pass anything and receive them.
  std::vector<at::Tensor> broadcast_list(const std::vector<at::Tensor>& list, int root, const char* what);
  void barrier(const char* what);
  // Jobs 0..n-1 of a loop spread over the ranks: job j runs on rank
  // (first + j) % world. Each rank passes the results of its own jobs (the
  // others empty); every rank gets all of them.
  int owner(int first, int job) const { return (first + job) % env_.world; }
  std::vector<std::vector<double>> share_jobs(std::vector<std::vector<double>> results, int first, const char* what);
  // A barrier whose time counts as waiting (for the slowest rank), not as
  // communication: called before an exchange, it separates the two.
  void sync(const char* what);
  // The iteration this rank works on (named in errors of hung peers).
  void set_step(int step);
  // Seconds spent in collectives (sync() aside) and in sync() since the last
  // call; resets both clocks.
  double take_comm_seconds();
  double take_wait_seconds();

 private:
  explicit Comm(const Env& e);
  void run(const char* what, const std::function<void()>& fn);
  [[noreturn]] void fail(const char* what, const std::string& cause);
  std::string culprit();
  struct Impl;
  Env env_;
  std::unique_ptr<Impl> impl_;
  double comm_seconds_ = 0, wait_seconds_ = 0;
  long calls_ = 0;
};

}  // namespace ml3::dist
