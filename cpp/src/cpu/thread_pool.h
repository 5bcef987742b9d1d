// A small fork-join pool owned by one CPU backend: `threads - 1` workers plus the calling thread.
// Workers spin briefly for the next job (the ops of one decode step come microseconds apart), then sleep.
// Parts are claimed, not assigned: the caller and the workers take the next unclaimed part, so when a worker
// is descheduled (cores shared with other processes) the caller runs its parts instead of waiting for it.
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
  // Calls fn(ctx, i, n_parts) for i in [0, n_parts), n_parts < 65536; returns when all are done.
  // fn must not throw.
  void run(int n_parts, PartFn fn, void* ctx);

 private:
  void worker_loop();
  // Runs unclaimed parts of job `job` until none is left.
  void work_on(uint32_t job);

  std::vector<std::thread> workers_;
  std::mutex busy_;            // held by the caller whose job the workers run
  std::mutex mu_;              // guards sleeping
  std::condition_variable cv_;
  // (job id << 32) | (n_parts << 16) | next unclaimed part: one word, so a claim (CAS) names its job.
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> done_{0};   // parts of the current job finished
  std::atomic<bool> stop_{false};
  PartFn fn_ = nullptr;
  void* ctx_ = nullptr;
};

// Physical cores available to this process (SMT siblings counted once; respects the affinity mask).
int physical_cores();

}  // namespace cpu
}  // namespace mambart
