// Shared helpers of the CUDA kernels: error checks, dtype traits, reductions, dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "cuda_check.h"
#include "ops.h"

namespace mambart {
namespace cuda {

inline const char* dtype_label(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: return "non-float";
  }
}

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). `sh` holds 32 floats. All threads get it.
__device__ __forceinline__ float block_sum(float v, float* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = lane < nw ? sh[lane] : 0.f;
  return warp_sum(t);
}

// The block's dynamic shared memory as `T name[]`, 16-byte aligned (on the CPU simulation: its per-block buffer).
#ifdef MAMBART_CUDA_SIM
#define MAMBART_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(::cuda_sim::dynamic_smem())
#else
#define MAMBART_DYNAMIC_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

// Programmatic dependent launch (sm_90+): every kernel is launched with programmatic stream serialization, so it
// may start while the previous kernel drains; it must wait here before touching memory the previous one uses.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaGridDependencySynchronize();
#endif
}

// Lets the next kernel in the stream launch now (it still waits in pdl_wait() for this one to finish). Only for
// kernels whose successors touch nothing but read-only data (weights) before their pdl_wait().
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaTriggerProgrammaticLaunchCompletion();
#endif
}

__device__ __forceinline__ void prefetch_l2(const void* p) {
#ifdef __CUDA_ARCH__
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...) with one launch attribute, checking the launch: kLaunchPdl adds
// programmatic stream serialization when PDL is enabled; kLaunchCooperative makes a cooperative launch (every block
// co-resident, or the launch fails), for kernels with grid-wide barriers.
enum LaunchMode { kLaunchPdl, kLaunchCooperative };
template <typename... KArgs, typename... Args>
void launch_as(LaunchMode mode, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
               Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  if (mode == kLaunchCooperative) {
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
  } else {
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
  }
  cfg.attrs = attr;
  cfg.numAttrs = mode == kLaunchCooperative || pdl_enabled() ? 1 : 0;
#ifdef MAMBART_CUDA_SIM  // the CPU simulation (tests/cuda_sim): run the blocks on host threads
  ::cuda_sim::launch(grid, block, kernel, std::forward<Args>(args)...);
#else
  MAMBART_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
#endif
}
template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  launch_as(kLaunchPdl, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

// Elements per 16-byte vector and the dot product of two 16-byte vectors in fp32.
template <typename T> struct Vec;
template <> struct Vec<float> { static constexpr int n = 4; };
template <> struct Vec<__half> { static constexpr int n = 8; };
template <> struct Vec<__nv_bfloat16> { static constexpr int n = 8; };

__device__ __forceinline__ float dot16(const uint4& a, const uint4& b, float) {
  return __uint_as_float(a.x) * __uint_as_float(b.x) + __uint_as_float(a.y) * __uint_as_float(b.y) +
         __uint_as_float(a.z) * __uint_as_float(b.z) + __uint_as_float(a.w) * __uint_as_float(b.w);
}
__device__ __forceinline__ float2 to_f2(uint32_t v, __half) { return __half22float2(*reinterpret_cast<const __half2*>(&v)); }
__device__ __forceinline__ float2 to_f2(uint32_t v, __nv_bfloat16) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v));
}
template <typename H>
__device__ __forceinline__ float dot16(const uint4& a, const uint4& b, H tag) {
  float2 a0 = to_f2(a.x, tag), b0 = to_f2(b.x, tag), a1 = to_f2(a.y, tag), b1 = to_f2(b.y, tag);
  float2 a2 = to_f2(a.z, tag), b2 = to_f2(b.z, tag), a3 = to_f2(a.w, tag), b3 = to_f2(b.w, tag);
  float s = a0.x * b0.x;
  s = fmaf(a0.y, b0.y, s); s = fmaf(a1.x, b1.x, s); s = fmaf(a1.y, b1.y, s);
  s = fmaf(a2.x, b2.x, s); s = fmaf(a2.y, b2.y, s); s = fmaf(a3.x, b3.x, s); s = fmaf(a3.y, b3.y, s);
  return s;
}

__device__ __forceinline__ float silu(float v) { return v / (1.f + __expf(-v)); }
__device__ __forceinline__ float softplus(float v) { return v > 20.f ? v : log1pf(__expf(v)); }

// The prefill scans' fast paths. 2^v in one MUFU.EX2 (results below 2^-126 flush to 0: harmless for a decay
// factor); exp(delta * A) = ex2_fast(delta * A * kLog2e).
__device__ __forceinline__ float ex2_fast(float v) {
#ifdef __CUDA_ARCH__
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
#else  // host compilation (the CPU simulation)
  return exp2f(v);
#endif
}
constexpr float kLog2e = 1.4426950408889634f;
__device__ __forceinline__ float rcp_fast(float v) {  // 1 / v in one MUFU.RCP (1 ulp); 1 / inf = 0
#ifdef __CUDA_ARCH__
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
#else
  return 1.f / v;
#endif
}
// silu(z) = z * sigmoid(z) in two MUFU ops, once per (token, channel); -> 0 as z -> -inf.
__device__ __forceinline__ float silu_fast(float v) { return v * rcp_fast(1.f + ex2_fast(-v * kLog2e)); }
// softplus(v) = max(v, 0) + log1p(u), u = exp(-|v|) in (0, 1], without branches: log1p(u) = 2 atanh(s),
// s = u / (2 + u) <= 1/3, by its series to s^13 (next term < 2e-8 relative). A few ulp from log1pf(expf(v)) (its
// error feeds every state update, so it stays accurate), at a third of the instructions of the library log1pf.
__device__ __forceinline__ float softplus_fast(float v) {
  const float u = ex2_fast(-fabsf(v) * kLog2e);
  const float s = u * rcp_fast(2.f + u), z = s * s;
  float p = fmaf(z, 1.f / 13.f, 1.f / 11.f);
  p = fmaf(p, z, 1.f / 9.f);
  p = fmaf(p, z, 1.f / 7.f);
  p = fmaf(p, z, 1.f / 5.f);
  p = fmaf(p, z, 1.f / 3.f);
  p = fmaf(p, z, 1.f);
  return fmaxf(v, 0.f) + 2.f * s * p;
}

// The Vec<E>::n elements of a 16-byte vector as floats (the tag is an E).
__device__ __forceinline__ void unpack16(const uint4& v, float (&o)[4], float) {
  o[0] = __uint_as_float(v.x); o[1] = __uint_as_float(v.y); o[2] = __uint_as_float(v.z); o[3] = __uint_as_float(v.w);
}
template <typename H>
__device__ __forceinline__ void unpack16(const uint4& v, float (&o)[8], H tag) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = to_f2(w[i], tag);
    o[2 * i] = f.x;
    o[2 * i + 1] = f.y;
  }
}

// Vec<E>::n floats -> one 16-byte vector of E (rounded to nearest): the inverse of unpack16.
__device__ __forceinline__ uint4 pack16(const float (&v)[4], float) {
  return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
}
template <typename H>
__device__ __forceinline__ uint4 pack16(const float (&v)[8], H) {
  H h[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) h[i] = from_f<H>(v[i]);
  uint4 r;
  memcpy(&r, h, sizeof r);
  return r;
}

// 16 bytes global -> shared without a register round trip (cp.async, L2 only, sm_80+), zero-filled when !ok (src is
// then not read); complete after cp_async_wait_all(), and a __syncthreads() must follow before other threads read.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool ok = true) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(uint32_t(__cvta_generic_to_shared(dst))),
               "l"(src), "r"(ok ? 16 : 0)
               : "memory");
#else
  *reinterpret_cast<uint4*>(dst) = ok ? __ldg(reinterpret_cast<const uint4*>(src)) : make_uint4(0, 0, 0, 0);
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

}  // namespace cuda
}  // namespace mambart

// Runs the statement with `T` bound to the device type of an activation dtype (F32/F16/BF16).
#define MAMBART_DISPATCH_FLOAT(dtype, T, what, ...)                                              \
  switch (dtype) {                                                                               \
    case ::mambart::DType::F32: { using T = float; __VA_ARGS__; break; }                         \
    case ::mambart::DType::F16: { using T = __half; __VA_ARGS__; break; }                        \
    case ::mambart::DType::BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }                \
    default:                                                                                     \
      ::mambart::cuda::throw_unsupported(what, ::mambart::cuda::str("unsupported dtype ",         \
                                                                    ::mambart::cuda::dtype_label(dtype))); \
  }
