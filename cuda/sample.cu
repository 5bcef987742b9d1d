// Token selection on the device: one block per row of fp32 logits; only the chosen ids leave the device.
// Order (HF semantics): repetition penalty over the row's history (once per distinct token) -> temperature ->
// top_k -> top_p -> min_p -> draw with u = rng_uniform(seed, row, step). temperature == 0 is greedy (argmax,
// lowest index on ties). Thresholds for top_k / top_p are found by bisection on the order-preserving integer
// key of the scaled logits (32 block-wide passes), so nothing is sorted; ties at a threshold are all kept.
// The draw walks the kept tokens in index order: the first whose cumulative probability exceeds u.
#include <algorithm>

#include "common.cuh"
#include "kernels.h"

namespace mambart {
namespace cuda {

namespace {

constexpr int kSampleThreads = 1024;

// rng_uniform of ops.h, on the device (the same counter-based stream).
__device__ __forceinline__ uint64_t d_splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ double d_rng_uniform(uint64_t seed, uint64_t row, uint64_t step) {
  const uint64_t h = d_splitmix64(seed ^ d_splitmix64(row * 0x632be59bd9b4e019ull ^ d_splitmix64(step)));
  return double(h >> 11) * (1.0 / 9007199254740992.0);
}

__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

template <typename V>
__device__ V block_reduce_sum(V v, V* sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  V t = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : V(0);
  if (threadIdx.x < 32) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (threadIdx.x == 0) sh[0] = t;
  }
  __syncthreads();
  return sh[0];
}

// Block-wide (max value, lowest index) over the row.
__device__ void block_argmax(float v, int idx, float* shv, int* shi, float* out_v, int* out_i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > v || (ov == v && oi < idx)) { v = ov; idx = oi; }
  }
  __syncthreads();
  if ((threadIdx.x & 31) == 0) { shv[threadIdx.x >> 5] = v; shi[threadIdx.x >> 5] = idx; }
  __syncthreads();
  if (threadIdx.x < 32) {
    const int nw = blockDim.x >> 5;
    v = threadIdx.x < nw ? shv[threadIdx.x] : -INFINITY;
    idx = threadIdx.x < nw ? shi[threadIdx.x] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, v, o);
      const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
      if (ov > v || (ov == v && oi < idx)) { v = ov; idx = oi; }
    }
    if (threadIdx.x == 0) { shv[0] = v; shi[0] = idx; }
  }
  __syncthreads();
  *out_v = shv[0];
  *out_i = shi[0];
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(SampleParams p) {
  pdl_wait();
  MAMBART_DYNAMIC_SMEM(uint32_t, seen);  // (vocab / 32) bitmap, only with a repetition penalty
  __shared__ float shf[32];
  __shared__ int shi[32];
  __shared__ unsigned shu[32];
  const int64_t r = blockIdx.x;
  float* logits = const_cast<float*>(p.logits) + r * p.ld_logits;
  const int V = int(p.vocab);

  if (p.repetition_penalty != 1.f && p.history && p.history_len) {
    const int words = (V + 31) / 32;
    for (int i = threadIdx.x; i < words; i += blockDim.x) seen[i] = 0u;
    __syncthreads();
    const int64_t n = p.history_len[r];
    const int32_t* hist = p.history + r * p.ld_history;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int id = hist[i];
      if (id < 0 || id >= V) continue;
      const uint32_t bit = 1u << (id & 31);
      if ((atomicOr(&seen[id >> 5], bit) & bit) == 0u) {
        const float v = logits[id];
        logits[id] = v < 0.f ? v * p.repetition_penalty : v / p.repetition_penalty;
      }
    }
    __syncthreads();
  }

  // Max of the (penalized) logits, lowest index on ties.
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = logits[i];
    if (v > bv) { bv = v; bi = i; }  // strided ascending i: first max per thread has the lowest index
  }
  float maxv;
  int argmax;
  block_argmax(bv, bi, shf, shi, &maxv, &argmax);
  if (argmax == 0x7fffffff) argmax = 0;  // all NaN / -inf: token 0
  if (p.temperature <= 0.f) {
    if (threadIdx.x == 0) p.out[r] = argmax;
    return;
  }
  const float inv_t = 1.f / p.temperature;
  const float smax = maxv * inv_t;
  const uint32_t kmax = order_key(smax);
  // Mass exp(s - smax) of the tokens whose key lies in [lo, hi].
  auto mass_in = [&](uint32_t lo, uint32_t hi, float min_s) {
    float m = 0.f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
      const float s = logits[i] * inv_t;
      const uint32_t k = order_key(s);
      if (k >= lo && k <= hi && s >= min_s) m += __expf(s - smax);
    }
    return block_reduce_sum<float>(m, shf);
  };
  // top_k: the largest key K with count(key >= K) >= k.
  uint32_t thr = 0u;
  if (p.top_k > 0 && p.top_k < p.vocab) {
    uint32_t lo = 0u, hi = kmax;  // answer in [lo, hi]
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      unsigned cnt = 0;
      for (int i = threadIdx.x; i < V; i += blockDim.x) cnt += order_key(logits[i] * inv_t) >= mid;
      cnt = block_reduce_sum<unsigned>(cnt, shu);
      if (cnt >= unsigned(p.top_k)) lo = mid; else hi = mid - 1;
    }
    thr = lo;
  }
  // top_p: the smallest prefix (in descending order) whose mass reaches top_p: the largest K with
  // mass(key >= K) >= top_p * Z.
  if (p.top_p < 1.f) {
    const float limit = p.top_p * mass_in(thr, 0xffffffffu, -INFINITY);
    uint32_t lo = thr, hi = kmax;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      if (mass_in(mid, 0xffffffffu, -INFINITY) >= limit) lo = mid; else hi = mid - 1;
    }
    thr = lo;
  }
  // min_p: keep p >= min_p * p_max, i.e. s >= smax + log(min_p).
  const float min_s = p.min_p > 0.f ? smax + logf(p.min_p) : -INFINITY;
  // Draw in descending order: target = u * total; the token is in the group of the largest key K with
  // mass(kept, key >= K) > target; ties inside that group go by index.
  const float total = mass_in(thr, 0xffffffffu, min_s);
  const uint64_t step = p.step_counter ? *p.step_counter : p.step;
  const float target = float(d_rng_uniform(p.seed, uint64_t(r), step)) * total;
  uint32_t lo = thr, hi = kmax;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (mass_in(mid, 0xffffffffu, min_s) > target) lo = mid; else hi = mid - 1;
  }
  const uint32_t K = lo;
  // Tokens with key K (kept): usually exactly one. Lowest index via a block argmax on -index.
  unsigned ties = 0;
  int first = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float s = logits[i] * inv_t;
    if (order_key(s) == K && s >= min_s) { ++ties; first = min(first, i); }
  }
  ties = block_reduce_sum<unsigned>(ties, shu);
  float dummy;
  int lowest;
  block_argmax(first == 0x7fffffff ? -INFINITY : -float(first), first, shf, shi, &dummy, &lowest);
  if (ties <= 1) {
    if (threadIdx.x == 0) p.out[r] = ties == 1 ? lowest : argmax;
    return;
  }
  const float above = K < 0xffffffffu ? mass_in(K + 1, 0xffffffffu, min_s) : 0.f;
  if (threadIdx.x == 0) {  // several tokens share the key: walk them in index order (rare)
    float cum = above;
    int pick = -1, last = -1;
    for (int i = lowest; i < V; ++i) {
      const float s = logits[i] * inv_t;
      if (order_key(s) == K && s >= min_s) {
        last = i;
        cum += __expf(s - smax);
        if (target < cum) { pick = i; break; }
      }
    }
    p.out[r] = pick >= 0 ? pick : last;
  }
}

// Greedy without a penalty, spread over many blocks per row: each block folds its slice into one 64-bit key
// (order_key(value) << 32 | ~index, so the max is the largest value with the lowest index) with atomicMax; the
// last block of a row writes the index and resets its slot and counter (scratch stays zero between calls).
constexpr int kArgmaxThreads = 256;
__global__ void __launch_bounds__(kArgmaxThreads) argmax_kernel(SampleParams p, unsigned long long* slot,
                                                                 unsigned* count) {
  pdl_wait();
  __shared__ unsigned long long sh[kArgmaxThreads / 32];
  __shared__ bool last;
  const int64_t r = blockIdx.y;
  const float* row = p.logits + r * p.ld_logits;
  const int V = int(p.vocab);
  unsigned long long best = 0ull;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < V; i += gridDim.x * blockDim.x) {
    const float v = row[i];
    const unsigned long long k = v == v ? (static_cast<unsigned long long>(order_key(v)) << 32) | (0xffffffffu - unsigned(i)) : 0ull;
    best = k > best ? k : best;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long t = __shfl_xor_sync(0xffffffffu, best, o);
    best = t > best ? t : best;
  }
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kArgmaxThreads / 32; ++w) best = sh[w] > best ? sh[w] : best;
    atomicMax(slot + r, best);
    __threadfence();
    last = atomicAdd(count + r, 1u) == gridDim.x - 1;
    if (last) {
      const unsigned long long k = atomicExch(slot + r, 0ull);
      count[r] = 0u;
      p.out[r] = k == 0ull ? 0 : int32_t(0xffffffffu - unsigned(k & 0xffffffffull));
    }
  }
}

}  // namespace

bool supports_sample(const SampleParams& p, std::string* why) {
  if (p.rows < 0 || p.vocab <= 0 || p.ld_logits < p.vocab) { *why = "bad sizes"; return false; }
  if (p.vocab > 1500000) { *why = "vocab > 1.5M"; return false; }
  if (p.rows > 2147483647) { *why = "too many rows"; return false; }
  if (p.top_k < 0) { *why = "top_k < 0"; return false; }
  return true;
}

size_t sample_scratch_bytes(int64_t rows) { return size_t(rows) * 12; }

namespace {
__global__ void step_increment_kernel(uint64_t* counter) {
  pdl_wait();
  ++*counter;
}
void launch_sample_impl(const SampleParams& p, void* scratch, cudaStream_t stream);
}  // namespace

void launch_sample(const SampleParams& p, void* scratch, cudaStream_t stream) {
  launch_sample_impl(p, scratch, stream);
  if (p.step_counter) {  // after every block of the sampler read it (stream order)
    launch(step_increment_kernel, 1, 1, 0, stream, p.step_counter);
    MAMBART_CUDA_CHECK_LAUNCH("step_increment");
  }
}

namespace {
void launch_sample_impl(const SampleParams& p, void* scratch, cudaStream_t stream) {
  std::string why;
  if (!supports_sample(p, &why)) throw_unsupported("sample", why);
  if (p.rows == 0) return;
  const bool penalty = p.repetition_penalty != 1.f && p.history && p.history_len;
  if (p.temperature <= 0.f && !penalty && scratch && p.rows <= 65535) {
    auto* slot = static_cast<unsigned long long*>(scratch);
    auto* count = reinterpret_cast<unsigned*>(slot + p.rows);
    const unsigned nblk = unsigned(std::min<int64_t>((p.vocab + 2047) / 2048, 128));
    launch(argmax_kernel, dim3(nblk, unsigned(p.rows)), kArgmaxThreads, 0, stream, p, slot, count);
    MAMBART_CUDA_CHECK_LAUNCH("argmax");
    return;
  }
  size_t smem = 0;
  if (p.repetition_penalty != 1.f && p.history && p.history_len) {
    smem = size_t((p.vocab + 31) / 32) * 4;
    if (smem > 48 * 1024) {
      static bool raised = false;  // vocab > 393k: raise the dynamic shared memory limit once
      if (!raised) {
        MAMBART_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
        raised = true;
      }
    }
  }
  launch(sample_kernel, unsigned(p.rows), kSampleThreads, smem, stream, p);
  MAMBART_CUDA_CHECK_LAUNCH("sample");
}
}  // namespace

}  // namespace cuda
}  // namespace mambart
