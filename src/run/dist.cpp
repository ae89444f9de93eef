// The process group of distributed runs: c10d's TCP store for the rendezvous,
// Gloo for the collectives, a heartbeat in the store to tell which peer
// died or hangs when a collective fails (src/run/dist.h, docs/distributed.md).
#include "src/run/dist.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <fmt/format.h>
#include <mutex>
#include <thread>
#include <utility>

#include "core/error.h"

namespace ml3::dist {

namespace {
using Clock = std::chrono::steady_clock;

const char* env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

long env_int(const char* name, long lo, long hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) throw Error(fmt::format("distributed: environment variable {} is not set (WORLD_SIZE is)", name));
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end || x < lo || x > hi)
    throw Error(fmt::format("distributed: environment variable {}='{}': expected an integer in [{}, {}]", name, v, lo, hi));
  return x;
}

std::string bytes_text(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }
std::vector<uint8_t> text_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

constexpr auto kBeat = std::chrono::milliseconds(500);
}  // namespace

Env env_settings() {
  Env e;
  const char* t = std::getenv("ML3_DIST_TIMEOUT");
  if (t && *t) {
    char* end = nullptr;
    e.timeout_seconds = std::strtod(t, &end);
    if (*end || !(e.timeout_seconds > 0))
      throw Error(fmt::format("distributed: environment variable ML3_DIST_TIMEOUT='{}': expected seconds > 0", t));
  }
  if (!std::getenv("WORLD_SIZE") || !*std::getenv("WORLD_SIZE")) return e;
  e.world = static_cast<int>(env_int("WORLD_SIZE", 1, 65536));
  if (e.world == 1) return e;
  e.rank = static_cast<int>(env_int("RANK", 0, e.world - 1));
  e.addr = env_or("MASTER_ADDR", "");
  if (e.addr.empty()) throw Error("distributed: environment variable MASTER_ADDR is not set (WORLD_SIZE is)");
  e.port = static_cast<int>(env_int("MASTER_PORT", 1, 65535));
  return e;
}

struct Comm::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store, beat_store;  // the beat has its own connection
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::thread beat;
  std::mutex mu;  // stop
  std::condition_variable cv;
  bool stop = false;
  std::atomic<bool> beat_done{false}, failed{false};
  std::atomic<int> step{0};
};

Comm& Comm::get() {
  static std::unique_ptr<Comm> comm(new Comm(env_settings()));
  return *comm;
}

Comm::Comm(const Env& e) : env_(e) {
  if (!distributed()) return;
  // A write to the socket of a rank that died must fail with EPIPE (which
  // the collective turns into our error naming the rank), not end this
  // process silently by SIGPIPE: c10d's and Gloo's sockets do not all ask
  // for MSG_NOSIGNAL (Python, where they usually run, ignores SIGPIPE).
  std::signal(SIGPIPE, SIG_IGN);
  impl_ = std::make_unique<Impl>();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(env_.timeout_seconds * 1000));
  // The rendezvous waits at least 30 s: ranks start at different times (a
  // loaded host, a scheduler), even when collectives get a short timeout.
  const double rendezvous_seconds = std::max(env_.timeout_seconds, 30.0);
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env_.port);
  o.isServer = env_.rank == 0;
  o.numWorkers = env_.world;
  o.waitWorkers = true;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(rendezvous_seconds * 1000));
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env_.addr, o);
    o.isServer = false;
    o.numWorkers = c10::nullopt;
    o.waitWorkers = false;
    impl_->beat_store = c10::make_intrusive<c10d::TCPStore>(env_.addr, o);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (env_.addr == "localhost" || env_.addr.rfind("127.", 0) == 0)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env_.rank, env_.world, opts);
  } catch (const std::exception& ex) {
    throw Error(fmt::format("distributed: rank {} of {}: rendezvous at {}:{} failed within {} s "
                            "(ML3_DIST_TIMEOUT, at least 30): {}",
                            env_.rank, env_.world, env_.addr, env_.port, rendezvous_seconds,
                            std::string(ex.what()).substr(0, 300)));
  }
  // Heartbeat: "<beats>:<step>" under ml3/beat/<rank>, twice a second. The
  // store I/O is done without a lock held: with rank 0 (the store) stopped it
  // blocks, and nothing may wait for it.
  impl_->beat = std::thread([this] {
    Impl& m = *impl_;
    for (long n = 0;; ++n) {
      try {
        m.beat_store->set(fmt::format("ml3/beat/{}", env_.rank), text_bytes(fmt::format("{}:{}", n, m.step.load())));
      } catch (const std::exception&) {
        // The store's host (rank 0) is gone; a collective will say so.
      }
      std::unique_lock<std::mutex> lock(m.mu);
      if (m.cv.wait_for(lock, kBeat, [&] { return m.stop; })) break;
    }
    m.beat_done = true;
  });
}

// The heartbeat stops; after a failure, or when it does not stop in time
// (blocked on a store that does not answer), the group is left to the
// process's exit instead of waiting for peers that are gone.
Comm::~Comm() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  const auto end = Clock::now() + 4 * kBeat;
  while (!impl_->failed && !impl_->beat_done && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (impl_->beat_done && !impl_->failed) {
    impl_->beat.join();
    return;
  }
  impl_->beat.detach();
  (void)impl_.release();
}

void Comm::set_step(int step) {
  if (impl_) impl_->step = step;
}

double Comm::take_comm_seconds() { return std::exchange(comm_seconds_, 0.0); }
double Comm::take_wait_seconds() { return std::exchange(wait_seconds_, 0.0); }

void Comm::sync(const char* what) {
  const double before = comm_seconds_;
  barrier(what);
  wait_seconds_ += comm_seconds_ - before;
  comm_seconds_ = before;
}

// Which peer is to blame: one whose heartbeat stopped (dead, killed or
// stopped), else one behind this rank's step (hangs in its own work). Read
// from the store on a thread of its own, given 1 s beyond the two readings:
// a store that does not answer is rank 0 stopped or gone.
std::string Comm::culprit() {
  auto read = [this] {
    std::vector<std::string> v(static_cast<size_t>(env_.world));
    for (int r = 0; r < env_.world; ++r) {
      const std::string key = fmt::format("ml3/beat/{}", r);
      if (r != env_.rank && impl_->beat_store->check({key})) v[r] = bytes_text(impl_->beat_store->get(key));
    }
    return v;
  };
  const auto a = read();
  std::this_thread::sleep_for(3 * kBeat);
  const auto b = read();
  for (int r = 0; r < env_.world; ++r)
    if (r != env_.rank && a[r] == b[r]) return fmt::format("rank {} stopped responding (died or hangs)", r);
  for (int r = 0; r < env_.world; ++r) {
    if (r == env_.rank || b[r].empty()) continue;
    const int step = std::atoi(b[r].substr(b[r].find(':') + 1).c_str());
    if (step < impl_->step) return fmt::format("rank {} is behind, still at iteration {}", r, step);
  }
  return "a peer rank failed";
}

void Comm::fail(const char* what, const std::string& cause) {
  impl_->failed = true;
  auto result = std::make_shared<std::promise<std::string>>();
  std::future<std::string> found = result->get_future();
  std::thread([this, result] {
    try {
      result->set_value(culprit());
    } catch (const std::exception&) {
      result->set_value("rank 0 (the host of the rendezvous store) is gone");
    }
  }).detach();  // Impl outlives it: after a failure the destructor leaves it to the process's exit
  const std::string who = found.wait_for(3 * kBeat + std::chrono::seconds(1)) == std::future_status::ready
                              ? found.get()
                              : "rank 0 (the host of the rendezvous store) does not answer (died or hangs)";
  throw Error(fmt::format("distributed: rank {} of {}: collective '{}' failed: {}; stopping ({})", env_.rank,
                          env_.world, what, who, cause.substr(0, cause.find('\n'))));
}

void Comm::run(const char* what, const std::function<void()>& fn) {
  const auto t0 = Clock::now();
  ++calls_;
  try {
    fn();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(what, e.what());
  }
  comm_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
}

void Comm::allreduce_sum(at::Tensor& t, const char* what) {
  if (!distributed()) return;
  run(what, [&] {
    std::vector<at::Tensor> v{t};
    impl_->pg->allreduce(v)->wait();
  });
}

void Comm::broadcast(at::Tensor& t, int root, const char* what) {
  if (!distributed()) return;
  run(what, [&] {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    impl_->pg->broadcast(v, o)->wait();
  });
}

void Comm::barrier(const char* what) {
  if (!distributed()) return;
  run(what, [&] { impl_->pg->barrier()->wait(); });
}

std::vector<std::vector<double>> Comm::share_jobs(std::vector<std::vector<double>> results, int first,
                                                  const char* what) {
  if (!distributed()) return results;
  for (int j = 0; j < static_cast<int>(results.size()); ++j) {
    std::vector<at::Tensor> mine;
    if (owner(first, j) == rank()) mine.push_back(at::tensor(results[j], at::kDouble));
    const at::Tensor got = broadcast_list(mine, owner(first, j), what).at(0).contiguous();
    results[j].assign(got.data_ptr<double>(), got.data_ptr<double>() + got.numel());
  }
  return results;
}

// Header [n, (dtype, ndim, dims...)...] with its length first, then every
// tensor in one float64 buffer (exact for float32 and for int64 below 2^53).
std::vector<at::Tensor> Comm::broadcast_list(const std::vector<at::Tensor>& list, int root, const char* what) {
  if (!distributed()) return list;
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  std::vector<int64_t> head;
  if (rank() == root) {
    head.push_back(static_cast<int64_t>(list.size()));
    for (const auto& t : list) {
      head.push_back(static_cast<int64_t>(t.scalar_type()));
      head.push_back(t.dim());
      for (auto d : t.sizes()) head.push_back(d);
    }
  }
  at::Tensor len = at::tensor({static_cast<int64_t>(head.size())}, i64);
  broadcast(len, root, what);
  at::Tensor h = rank() == root ? at::tensor(head, i64) : at::empty({len.item<int64_t>()}, i64);
  broadcast(h, root, what);
  const int64_t* hp = h.data_ptr<int64_t>();
  std::vector<std::pair<at::ScalarType, std::vector<int64_t>>> shapes;
  int64_t total = 0;
  for (int64_t i = 0, k = 1; i < hp[0]; ++i) {
    const auto type = static_cast<at::ScalarType>(hp[k]);
    std::vector<int64_t> dims(hp + k + 2, hp + k + 2 + hp[k + 1]);
    k += 2 + hp[k + 1];
    int64_t n = 1;
    for (auto d : dims) n *= d;
    total += n;
    shapes.emplace_back(type, dims);
  }
  at::Tensor flat;
  if (rank() == root) {
    std::vector<at::Tensor> parts;
    for (const auto& t : list) parts.push_back(t.detach().reshape({-1}).to(at::kDouble));
    flat = parts.empty() ? at::zeros({0}, at::kDouble) : at::cat(parts).contiguous();
  } else {
    flat = at::empty({total}, at::kDouble);
  }
  if (total > 0) broadcast(flat, root, what);
  std::vector<at::Tensor> out;
  int64_t off = 0;
  for (const auto& [type, dims] : shapes) {
    int64_t n = 1;
    for (auto d : dims) n *= d;
    out.push_back(flat.slice(0, off, off + n).reshape(dims).to(type).clone());
    off += n;
  }
  return out;
}

}  // namespace ml3::dist
