#pragma once
// A small persistent thread pool for data-parallel loops. parallel_for splits
// [0, n) into one contiguous chunk per thread (the caller runs chunk 0), so the
// work a given index does never depends on the thread count. Workers spin
// briefly before sleeping: environment steps are ~10 us, and a condition
// variable wake-up alone costs about that much.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ml3 {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  // Calls fn(begin, end) on disjoint chunks covering [0, n); blocks until all
  // chunks are done. Exceptions thrown by fn are rethrown here (first one).
  void parallel_for(int n, const std::function<void(int, int)>& fn);

 private:
  void worker(int index);
  void run_chunk(int chunk);

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  int n_ = 0;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::exception_ptr error_;
};

}  // namespace ml3
