// Device functions of one decode step, shared by the per-op kernels (matmul.cu, scan.cu) and the persistent
// decode kernel (decode_step.cu) and the batched decode kernels (conv_xproj.cu, scan_batch.cu): the norm of the
// residual rows, the conv step of one channel, the scan step of one channel over 4 lanes.
#pragma once
#include "common.cuh"

namespace mambart {
namespace cuda {

// out[m * ldo + i] = norm(residual[m * K + i]) * w[i] (+ b[i]) rounded to T, for m < M, computed by the whole
// block with fp32 sums exactly as add_norm computes them; ends with __syncthreads(). `red` holds 32 floats.
// When a row fits in PER values per thread it is loaded once into registers (all loads issued before the sums: one
// memory round trip per row), else it is re-read for each pass. COHERENT reads the residual through L2 only
// (ld.global.cg): for a residual written by other blocks of the same (persistent) kernel.
template <typename T, bool COHERENT, int PER = 8>
__device__ void norm_rows(const float* residual, int M, int K, const float* w, const float* b, int rms, float eps,
                          T* out, int ldo, float* red) {
  const int nt = int(blockDim.x);
  const bool cached = K <= PER * nt;
  for (int m = 0; m < M; ++m) {
    const float* res = residual + int64_t(m) * K;
    auto ld = [res](int i) { return COHERENT ? __ldcg(res + i) : res[i]; };
    float v[PER];
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int i = int(threadIdx.x) + j * nt;
      v[j] = cached && i < K ? ld(i) : 0.f;
    }
    auto each = [&](auto&& fn) {  // fn(value, index) over this thread's elements of the row
      if (cached) {
#pragma unroll
        for (int j = 0; j < PER; ++j) {
          const int i = int(threadIdx.x) + j * nt;
          if (i < K) fn(v[j], i);
        }
      } else {
        for (int i = int(threadIdx.x); i < K; i += nt) fn(ld(i), i);
      }
    };
    float s = 0.f, sq = 0.f;
    each([&](float x, int) { s += x; sq += x * x; });
    float var, mean = 0.f;
    if (rms) {
      var = block_sum(sq, red) / float(K);
    } else {
      mean = block_sum(s, red) / float(K);
      float q = 0.f;
      each([&](float x, int) { q += (x - mean) * (x - mean); });
      var = block_sum(q, red) / float(K);
    }
    const float inv = rsqrtf(var + eps);
    each([&](float x, int i) {
      float o = (x - mean) * inv * w[i];
      if (b) o += b[i];
      out[int64_t(m) * ldo + i] = from_f<T>(o);
    });
  }
  __syncthreads();
}

// Conv step of one channel on its state in registers: st (d_conv values, oldest first, N >= d_conv) is shifted left
// with x (in_proj output, rounded to T) appended, and convolved with w (d_conv taps) + bias; returns SiLU of the sum.
template <typename T, int N>
__device__ __forceinline__ float conv_step_regs(float (&st)[N], const float (&w)[N], float bias, int dc, float xv) {
  float acc = bias;
  const float x = to_f(from_f<T>(xv));
  float win[N];
#pragma unroll
  for (int k = 0; k < N; ++k) {  // window = [old state[1..d_conv-1], x]; it is the new state
    win[k] = k + 1 < dc ? st[k + 1 < N ? k + 1 : k] : x;
    if (k < dc) acc += w[k] * win[k];
  }
#pragma unroll
  for (int k = 0; k < N; ++k) st[k] = win[k];
  return silu(acc);
}

// Conv step of one channel in memory: its state st (d_conv) and taps cw (d_conv) as in conv_step_regs; every load is
// issued before the first store (one memory round trip, not one per tap).
template <typename T>
__device__ __forceinline__ float conv_step(float* st, const float* cw, float bias, int dc, float xv) {
  constexpr int kMaxConv = 8;
  float s[kMaxConv], wk[kMaxConv];
#pragma unroll
  for (int k = 0; k < kMaxConv; ++k) {
    s[k] = k < dc ? st[k] : 0.f;
    wk[k] = k < dc ? __ldg(cw + k) : 0.f;
  }
  const float out = conv_step_regs<T>(s, wk, bias, dc, xv);
#pragma unroll
  for (int k = 0; k < kMaxConv; ++k)
    if (k < dc) st[k] = s[k];
  return out;
}

// Scan step of one channel whose d_state = 16 * nq states (nq <= 4) are split over 4 consecutive lanes: lane q
// holds the float4s j * 4 + q (j < nq), so a warp reads and writes 8 channels' states as contiguous 16-byte pieces.
// One piece (states s .. s + 3): h = exp(delta * a) * h + dx * B;  returns h . C. B and C hold d_state values (act
// dtype or fp32).
template <typename BC>
__device__ __forceinline__ float scan_piece(float delta, float dx, const float4& a, float4& h, const BC* Bt,
                                            const BC* Ct, int s) {
  h.x = __expf(delta * a.x) * h.x + dx * to_f(Bt[s + 0]);
  h.y = __expf(delta * a.y) * h.y + dx * to_f(Bt[s + 1]);
  h.z = __expf(delta * a.z) * h.z + dx * to_f(Bt[s + 2]);
  h.w = __expf(delta * a.w) * h.w + dx * to_f(Bt[s + 3]);
  return h.x * to_f(Ct[s + 0]) + h.y * to_f(Ct[s + 1]) + h.z * to_f(Ct[s + 2]) + h.w * to_f(Ct[s + 3]);
}
// The sum over the 4 lanes of a channel (all 4 get it; every lane of the 4 must call it).
__device__ __forceinline__ float sum_4lanes(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

// The scan step on the state in memory: A_row and st_row 16-byte aligned; returns sum_s h * C over the 4 lanes.
// Each piece is loaded, updated and stored in turn (few live registers: the persistent decode kernel is at its
// limit). The state is written only when `write` (inactive lanes still take part in the shuffles).
template <typename BC>
__device__ __forceinline__ float scan_step_4lanes(float delta, float dx, const float* A_row, float* st_row,
                                                  const BC* Bt, const BC* Ct, int q, int nq, bool write) {
  const float4* A4 = reinterpret_cast<const float4*>(A_row);
  float4* st = reinterpret_cast<float4*>(st_row);
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if (j < nq) {
      const int i4 = j * 4 + q;
      float4 h = st[i4];
      const float4 a = __ldg(A4 + i4);
      acc += scan_piece(delta, dx, a, h, Bt, Ct, i4 * 4);
      if (write) st[i4] = h;
    }
  }
  return sum_4lanes(acc);
}

// The scan step on the lane's pieces in registers: h[j] and a[j] are the float4s j * 4 + q of the state and of the
// A row (j < N = nq); h is updated. Returns sum_s h * C over the 4 lanes.
template <int N, typename BC>
__device__ __forceinline__ float scan_update_4lanes(float delta, float dx, const float4 (&a)[N], float4 (&h)[N],
                                                    const BC* Bt, const BC* Ct, int q) {
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < N; ++j) acc += scan_piece(delta, dx, a[j], h[j], Bt, Ct, (j * 4 + q) * 4);
  return sum_4lanes(acc);
}

// Dot product of a 16-byte vector of T with Vec<T>::n fp32 values.
__device__ __forceinline__ float dot16f(const uint4& a, const float* x, float) {
  return __uint_as_float(a.x) * x[0] + __uint_as_float(a.y) * x[1] + __uint_as_float(a.z) * x[2] +
         __uint_as_float(a.w) * x[3];
}
template <typename H>
__device__ __forceinline__ float dot16f(const uint4& a, const float* x, H tag) {
  const float2 a0 = to_f2(a.x, tag), a1 = to_f2(a.y, tag), a2 = to_f2(a.z, tag), a3 = to_f2(a.w, tag);
  float s = a0.x * x[0];
  s = fmaf(a0.y, x[1], s); s = fmaf(a1.x, x[2], s); s = fmaf(a1.y, x[3], s);
  s = fmaf(a2.x, x[4], s); s = fmaf(a2.y, x[5], s); s = fmaf(a3.x, x[6], s); s = fmaf(a3.y, x[7], s);
  return s;
}

}  // namespace cuda
}  // namespace mambart
