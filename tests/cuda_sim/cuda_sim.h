// A CPU simulation of the CUDA execution model, enough to run this repository's kernels where no GPU is present
// (tests/test_cuda_sim.py). A CUDA source is compiled as C++ with this header forced in first:
//   g++ -std=c++20 -x c++ -DMAMBART_CUDA_SIM -include tests/cuda_sim/cuda_sim.h cuda/scan.cu ...
// Every launch (common.cuh's launch_as) runs its blocks one after another; a block's threads run as fibers that
// switch at barriers (under -fsanitize=thread: as concurrent std::threads); __syncthreads is a barrier of the
// block, a warp shuffle two barriers of the warp. Device
// intrinsics take host equivalents (ex2.approx -> exp2f, in common.cuh), cp.async is a plain copy, PDL waits are
// no-ops, and dynamic shared memory is filled with NaN before each block.
// What it checks: indexing, tiling, padding, the host launch logic, and the protocol between a block's threads
// (a missing barrier is a data race: build with -fsanitize=thread to see it). What it cannot: speed, memory
// ordering between blocks, or the hardware approximations' rounding.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <ucontext.h>
#include <vector>

// The built-in variables: per simulated thread, and per launch.
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace cuda_sim {

// Dynamic shared memory (the most an H100/H200 block may have), NaN-filled before each block.
constexpr size_t kSmemFloats = 232448 / 4;
void* dynamic_smem();   // the dynamic shared memory of the block being run (MAMBART_DYNAMIC_SMEM; cuda_sim.cpp)
void fill_smem_nan();   // fills it with NaN

#ifndef __SANITIZE_THREAD__
// Fibers (ucontext) on the calling thread: a block's simulated threads take turns, switching only where they wait
// at a barrier, so a barrier costs a few context switches instead of a futex round trip per thread (~100x faster
// than OS threads for barrier-heavy kernels). Deterministic: the same interleaving every run.
struct FiberBarrier {  // a thread that leaves the kernel drops out (as an exited GPU thread does)
  int expected = 0, arrived = 0;
  unsigned gen = 0;
};
struct Sched {
  ucontext_t main;
  std::vector<ucontext_t> ctx;
  std::vector<std::unique_ptr<char[]>> stacks;
  std::vector<char> done;
  int cur = 0;
  FiberBarrier block;
  std::vector<FiberBarrier> warps;
  std::vector<unsigned long long> slots;  // one 64-bit shuffle slot per thread
  void (*body)(void*) = nullptr;
  void* body_arg = nullptr;
};
inline Sched* g_sched = nullptr;
constexpr size_t kFiberStack = size_t(256) << 10;

inline void yield() { swapcontext(&g_sched->ctx[size_t(g_sched->cur)], &g_sched->main); }
inline void wait(FiberBarrier& b) {
  const unsigned g = b.gen;
  if (++b.arrived == b.expected) {
    b.arrived = 0;
    ++b.gen;
  } else {
    while (b.gen == g) yield();
  }
}
inline void drop(FiberBarrier& b) {
  if (--b.expected > 0 && b.arrived == b.expected) {
    b.arrived = 0;
    ++b.gen;
  }
}
inline void syncthreads() { wait(g_sched->block); }
inline void syncwarp() { wait(g_sched->warps[size_t(threadIdx.x) / 32]); }
inline unsigned long long* shfl_slots() { return g_sched->slots.data(); }

inline void fiber_entry() {
  Sched& s = *g_sched;
  s.body(s.body_arg);
  drop(s.block);
  drop(s.warps[size_t(s.cur) / 32]);
  s.done[size_t(s.cur)] = 1;
  setcontext(&s.main);  // not resumed again
}

// kernel(args...) over grid x block (1-D blocks): blocks in order, x fastest.
template <class... KArgs, class... Args>
void launch(dim3 grid, dim3 block, void (*kernel)(KArgs...), Args&&... args) {
  const int nt = int(block.x * block.y * block.z);
  ::blockDim = block;
  ::gridDim = grid;
  Sched s;
  s.ctx.resize(size_t(nt));
  s.done.assign(size_t(nt), 0);
  for (int i = 0; i < nt; ++i) s.stacks.push_back(std::make_unique<char[]>(kFiberStack));
  auto call = [&]() { kernel(args...); };
  s.body = [](void* f) { (*static_cast<decltype(call)*>(f))(); };
  s.body_arg = &call;
  Sched* outer = g_sched;
  g_sched = &s;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        ::blockIdx = dim3(x, y, z);
        s.block = FiberBarrier{nt, 0, 0};
        s.warps.assign(size_t((nt + 31) / 32), FiberBarrier{});
        for (int w = 0; w < (nt + 31) / 32; ++w) s.warps[size_t(w)].expected = std::min(32, nt - 32 * w);
        s.slots.assign(size_t(nt), 0);
        fill_smem_nan();
        for (int i = 0; i < nt; ++i) {
          getcontext(&s.ctx[size_t(i)]);
          s.ctx[size_t(i)].uc_stack.ss_sp = s.stacks[size_t(i)].get();
          s.ctx[size_t(i)].uc_stack.ss_size = kFiberStack;
          s.ctx[size_t(i)].uc_link = nullptr;
          makecontext(&s.ctx[size_t(i)], fiber_entry, 0);
          s.done[size_t(i)] = 0;
        }
        for (int left = nt; left > 0;)
          for (int i = 0; i < nt; ++i) {
            if (s.done[size_t(i)]) continue;
            s.cur = i;
            ::threadIdx = dim3(unsigned(i), 0, 0);
            swapcontext(&s.main, &s.ctx[size_t(i)]);
            if (s.done[size_t(i)]) --left;
          }
      }
  g_sched = outer;
}
#else
// Under ThreadSanitizer: a block's threads as concurrent std::threads, so that a missing barrier between them is a
// data race the sanitizer reports.
struct Block {
  std::unique_ptr<std::barrier<>> block;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<unsigned long long> slots;  // one 64-bit shuffle slot per thread
};
inline thread_local Block* t_cur = nullptr;

inline void syncthreads() { t_cur->block->arrive_and_wait(); }
inline void syncwarp() { t_cur->warps[size_t(threadIdx.x) / 32]->arrive_and_wait(); }
inline unsigned long long* shfl_slots() { return t_cur->slots.data(); }

// kernel(args...) over grid x block (1-D blocks): blocks in order, x fastest; a block's threads concurrently. A
// thread that leaves the kernel early drops out of its block's and warp's barriers, as on the GPU.
template <class... KArgs, class... Args>
void launch(dim3 grid, dim3 block, void (*kernel)(KArgs...), Args&&... args) {
  const int nt = int(block.x * block.y * block.z);
  ::blockDim = block;
  ::gridDim = grid;
  Block cur;
  auto reset = [&]() noexcept {  // runs once between blocks, when every thread has left the previous one
    cur.block = std::make_unique<std::barrier<>>(nt);
    cur.warps.clear();
    for (int w = 0; w < (nt + 31) / 32; ++w)
      cur.warps.push_back(std::make_unique<std::barrier<>>(std::min(32, nt - 32 * w)));
    cur.slots.assign(size_t(nt), 0);
    fill_smem_nan();
  };
  reset();
  std::barrier<decltype(reset)> between(nt, reset);
  std::vector<std::thread> threads;
  for (int tid = 0; tid < nt; ++tid) {
    threads.emplace_back([&, tid] {
      ::threadIdx = dim3(unsigned(tid), 0, 0);
      t_cur = &cur;
      for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
          for (unsigned x = 0; x < grid.x; ++x) {
            ::blockIdx = dim3(x, y, z);
            kernel(args...);
            cur.block->arrive_and_drop();
            cur.warps[size_t(tid) / 32]->arrive_and_drop();
            between.arrive_and_wait();
          }
    });
  }
  for (auto& t : threads) t.join();
}
#endif

// A warp shuffle: every lane writes its value, the warp syncs, reads its partner's, syncs again.
template <class V>
V shfl_xor(V v, int mask) {
  static_assert(sizeof(V) <= sizeof(unsigned long long), "shuffle of a register-sized value");
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  unsigned long long* slots = shfl_slots();
  std::memcpy(&slots[tid], &v, sizeof(V));
  syncwarp();
  V r;
  std::memcpy(&r, &slots[warp * 32 + (lane ^ mask)], sizeof(V));
  syncwarp();
  return r;
}

}  // namespace cuda_sim

#undef __global__
#define __global__
#undef __shared__
#define __shared__ static  // one variable for all threads (blocks run one at a time); dynamic: MAMBART_DYNAMIC_SMEM
#undef __launch_bounds__
#define __launch_bounds__(...)

inline void __syncthreads() { cuda_sim::syncthreads(); }
template <class V>
inline V __shfl_xor_sync(unsigned, V v, int mask) { return cuda_sim::shfl_xor(v, mask); }
template <class T>
inline T __ldg(const T* p) { return *p; }
template <class T>
inline T __ldcg(const T* p) { return *p; }
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float __expf(float v) { return std::exp(v); }
// Atomics: the block's threads run concurrently, so these are real atomics on host memory.
inline unsigned atomicAdd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_or(v); }
inline unsigned long long atomicExch(unsigned long long* p, unsigned long long v) {
  return std::atomic_ref<unsigned long long>(*p).exchange(v);
}
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) {
  std::atomic_ref<unsigned long long> a(*p);
  unsigned long long old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_sim::syncwarp(); }
using std::max;  // CUDA's global min/max overloads
using std::min;
inline float rsqrtf(float v) { return 1.f / std::sqrt(v); }
// The runtime's typed overload (declared for nvcc only); the simulator has nothing to configure.
template <class F>
inline cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int) { return cudaSuccess; }
