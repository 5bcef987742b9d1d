// A CPU simulation of the CUDA execution model, enough to run this repository's kernels where no GPU is present
// (tests/test_cuda_sim.py). A CUDA source is compiled as C++ with this header forced in first:
//   g++ -std=c++20 -x c++ -DMAMBART_CUDA_SIM -include tests/cuda_sim/cuda_sim.h cuda/scan.cu ...
// Every launch (common.cuh's launch_as) runs its blocks one after another and each block's threads as concurrent
// std::threads; __syncthreads is a barrier of the block, a warp shuffle two barriers of the warp. Device
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
#include <vector>

// The built-in variables: per simulated thread, and per launch.
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace cuda_sim {

// The synchronization of the block being run: one barrier for the block, one per warp, a shuffle slot per thread.
struct Block {
  std::unique_ptr<std::barrier<>> block;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<unsigned long long> slots;
};
inline thread_local Block* t_cur = nullptr;

// Dynamic shared memory (the most an H100/H200 block may have), NaN-filled before each block.
constexpr size_t kSmemFloats = 232448 / 4;

inline void syncthreads() { t_cur->block->arrive_and_wait(); }
inline void syncwarp() { t_cur->warps[int(threadIdx.x) / 32]->arrive_and_wait(); }

template <class V>
V shfl_xor(V v, int mask) {
  static_assert(sizeof(V) <= sizeof(unsigned long long), "shuffle of a register-sized value");
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  std::barrier<>& bar = *t_cur->warps[warp];
  std::memcpy(&t_cur->slots[tid], &v, sizeof(V));
  bar.arrive_and_wait();
  V r;
  std::memcpy(&r, &t_cur->slots[warp * 32 + (lane ^ mask)], sizeof(V));
  bar.arrive_and_wait();
  return r;
}

void* dynamic_smem();   // the dynamic shared memory of the block being run (MAMBART_DYNAMIC_SMEM; cuda_sim.cpp)
void fill_smem_nan();   // fills it with NaN

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
    for (int w = 0; w < (nt + 31) / 32; ++w) cur.warps.push_back(std::make_unique<std::barrier<>>(std::min(32, nt - 32 * w)));
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
            cur.warps[tid / 32]->arrive_and_drop();
            between.arrive_and_wait();
          }
    });
  }
  for (auto& t : threads) t.join();
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
