#include "cpu/thread_pool.h"

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MAMBART_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define MAMBART_CPU_RELAX() asm volatile("yield")
#else
#define MAMBART_CPU_RELAX() ((void)0)
#endif

namespace mambart {
namespace cpu {

namespace {
// How long an idle worker spins before sleeping: longer than the gap between the ops of one step.
constexpr auto kSpinFor = std::chrono::microseconds(300);
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      const auto until = std::chrono::steady_clock::now() + kSpinFor;
      int spins = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen) {
        MAMBART_CPU_RELAX();
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        }
      }
    }
    seen = g;
    if (stop_.load()) return;
    if (index < n_parts_) fn_(ctx_, index, n_parts_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int n_parts, PartFn fn, void* ctx) {
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (n_parts <= 1 || workers_.empty() || !busy.owns_lock()) {
    for (int i = 0; i < n_parts; ++i) fn(ctx, i, n_parts);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  n_parts_ = n_parts;
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  fn(ctx, 0, n_parts);
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
    MAMBART_CPU_RELAX();
    if (++spins > 4096) std::this_thread::yield();  // a worker was descheduled (shared cores)
  }
}

int physical_cores() {
  int n = 0;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    std::set<std::pair<int, int>> cores;  // (package, core)
    int cpus = 0;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (!CPU_ISSET(c, &set)) continue;
      ++cpus;
      const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
      std::ifstream pk(dir + "physical_package_id"), co(dir + "core_id");
      int p = -1, k = -1;
      if (pk >> p && co >> k) cores.insert({p, k});
      else cores.insert({-1, c});  // no topology: count the cpu itself
    }
    n = cores.empty() ? cpus : int(cores.size());
  }
#endif
  if (n <= 0) n = int(std::thread::hardware_concurrency());
  return n > 0 ? n : 1;
}

}  // namespace cpu
}  // namespace mambart
