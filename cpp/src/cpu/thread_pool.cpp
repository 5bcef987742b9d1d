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
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
    claim_.fetch_add(uint64_t(1) << 32);  // a new "job" wakes everyone
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_on(uint32_t job) {
  uint64_t v = claim_.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t part = uint32_t(v & 0xffff), n = uint32_t((v >> 16) & 0xffff);
    if (uint32_t(v >> 32) != job || part >= n) return;
    if (!claim_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn_(ctx_, int(part), int(n));
    done_.fetch_add(1, std::memory_order_acq_rel);
    v = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t job = uint32_t(claim_.load(std::memory_order_acquire) >> 32);
    if (job == seen) {
      const auto until = std::chrono::steady_clock::now() + kSpinFor;
      int spins = 0;
      while ((job = uint32_t(claim_.load(std::memory_order_acquire) >> 32)) == seen) {
        MAMBART_CPU_RELAX();
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return uint32_t(claim_.load(std::memory_order_acquire) >> 32) != seen; });
        }
      }
    }
    seen = job;
    if (stop_.load()) return;
    work_on(job);
  }
}

void ThreadPool::run(int n_parts, PartFn fn, void* ctx) {
  std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
  if (n_parts <= 1 || workers_.empty() || !busy.owns_lock()) {
    for (int i = 0; i < n_parts; ++i) fn(ctx, i, n_parts);
    return;
  }
  // Only this caller (holding busy_) writes the job; the release of the claim word publishes fn_/ctx_.
  fn_ = fn;
  ctx_ = ctx;
  done_.store(0, std::memory_order_relaxed);
  const uint32_t job = uint32_t(claim_.load(std::memory_order_relaxed) >> 32) + 1;
  {
    std::lock_guard<std::mutex> lk(mu_);
    claim_.store((uint64_t(job) << 32) | (uint64_t(n_parts) << 16), std::memory_order_release);
  }
  cv_.notify_all();
  work_on(job);
  int spins = 0;
  while (done_.load(std::memory_order_acquire) != n_parts) {
    MAMBART_CPU_RELAX();
    if (++spins > 4096) std::this_thread::yield();  // a worker holding a part was descheduled
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
