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

__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

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
  MAMBART_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
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
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
}
constexpr float kLog2e = 1.4426950408889634f;
// silu(z) = z * sigmoid(z) with a fast divide (2 ulp), once per (token, channel); -> 0 as z -> -inf. softplus stays
// the accurate one above (log1pf): delta's error feeds every state update.
__device__ __forceinline__ float silu_fast(float v) { return __fdividef(v, 1.f + __expf(-v)); }

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
