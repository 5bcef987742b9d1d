// A small fork-join pool owned by one CPU backend: `threads - 1` workers plus the calling thread.
// Workers spin briefly for the next job (the ops of one decode step come microseconds apart), then sleep.
// Safe for concurrent callers without oversubscription: when the pool is already running another caller's
// job, run() executes every part on the calling thread instead of waiting for the pool.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace mambart {
namespace cpu {

class ThreadPool {
 public:
  using PartFn = void (*)(void* ctx, int part, int n_parts);
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return int(workers_.size()) + 1; }
  // Calls fn(ctx, i, n_parts) for i in [0, n_parts), n_parts <= threads(); returns when all are done.
  // fn must not throw.
  void run(int n_parts, PartFn fn, void* ctx);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex busy_;            // held by the caller whose job the workers run
  std::mutex mu_;              // guards sleeping
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  PartFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_parts_ = 0;
};

// Physical cores available to this process (SMT siblings counted once; respects the affinity mask).
int physical_cores();

}  // namespace cpu
}  // namespace mambart
