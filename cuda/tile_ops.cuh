// Device functions of the batched decode kernels (conv_xproj.cu, scan_batch.cu): a warp's 16 x 8 tile product from
// shared memory (tensor cores for fp16/bf16) and the copy of a weight tile into shared memory (cp.async).
#pragma once
#include <type_traits>

#include "common.cuh"

namespace mambart {
namespace cuda {

// Row stride (elements) of a tile of `cols` columns (a multiple of 16) in shared memory: 8 elements of padding, so
// that for 16-bit T the stride in 32-bit words is 4 mod 8 and the fragment loads of mma_16x8 (8 rows x 4 words) hit
// 32 different banks; rows stay 16-byte aligned for the staging copies.
__host__ __device__ constexpr int tile_ld(int cols) { return cols + 8; }

// c (16 x 8, fp32) += a (16 x K) b (8 x K)^T for one warp, a and b row-major in shared memory (row strides lda, ldb
// in elements, even; 4-byte aligned), K a multiple of 16. Lane l = 4 g + t holds c[0..3] = (row g, col 2t),
// (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1). 16-bit T: mma.sync m16n8k16 with fp32 accumulation (sm_80+); fp32 T:
// the same sums on the FP32 units, k in order.
template <typename T>
__device__ __forceinline__ void mma_16x8(float (&c)[4], const T* a, int lda, const T* b, int ldb, int K) {
  const int lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (sizeof(T) == 2) {
    auto w32 = [](const T* p) { return *reinterpret_cast<const uint32_t*>(p); };  // elements (k, k + 1)
    const T* a0 = a + g * lda + 2 * t;
    const T* a1 = a0 + 8 * lda;
    const T* b0 = b + g * ldb + 2 * t;
    for (int k = 0; k < K; k += 16) {
      const uint32_t x0 = w32(a0 + k), x1 = w32(a1 + k), x2 = w32(a0 + k + 8), x3 = w32(a1 + k + 8);
      const uint32_t y0 = w32(b0 + k), y1 = w32(b0 + k + 8);
      if constexpr (std::is_same<T, __half>::value) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(x0), "r"(x1), "r"(x2), "r"(x3), "r"(y0), "r"(y1));
      } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(x0), "r"(x1), "r"(x2), "r"(x3), "r"(y0), "r"(y1));
      }
    }
    return;
  }
#endif
  const T* a0 = a + g * lda;
  const T* a1 = a0 + 8 * lda;
  const T* b0 = b + 2 * t * ldb;
  const T* b1 = b0 + ldb;
  for (int k = 0; k < K; ++k) {
    const float u0 = to_f(a0[k]), u1 = to_f(a1[k]), v0 = to_f(b0[k]), v1 = to_f(b1[k]);
    c[0] = fmaf(u0, v0, c[0]);
    c[1] = fmaf(u0, v1, c[1]);
    c[2] = fmaf(u1, v0, c[2]);
    c[3] = fmaf(u1, v1, c[3]);
  }
}

// The block copies rows [0, rows) x cols [0, cols) of a row-major matrix src (row stride ld elements) into dst
// (shared memory, row stride lds), zero-filling up to rows_pad x cols_pad (cols_pad a multiple of Vec<T>::n). With
// `vec` (src rows and src 16-byte aligned) full 16-byte chunks go by cp.async: call cp_async_wait_all() and
// __syncthreads() before reading dst. Meant for weights, so it may run before pdl_wait().
template <typename T>
__device__ __forceinline__ void stage_tile(T* dst, int lds, const T* src, int64_t ld, int rows, int cols, int rows_pad,
                                           int cols_pad, bool vec) {
  constexpr int V = Vec<T>::n;
  const int cpr = cols_pad / V;  // 16-byte chunks per row
  for (int i = int(threadIdx.x); i < rows_pad * cpr; i += int(blockDim.x)) {
    const int r = i / cpr, k = (i % cpr) * V;
    T* d = dst + r * lds + k;
    const T* s = src + r * ld + k;
    if (vec && r < rows && k + V <= cols) {
      cp_async16(d, s);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) d[e] = r < rows && k + e < cols ? s[e] : from_f<T>(0.f);
    }
  }
}

}  // namespace cuda
}  // namespace mambart
