// The persistent decode step: every layer of one decode step (seqlen 1, batch <= 8) in one cooperative kernel,
// the stages of a layer separated by grid-wide barriers instead of kernel boundaries. Per layer, block b owns a
// fixed slice of every stage (the same slice at every layer and step, so conv and ssm state rows always have
// the same owner):
//   A  norm(residual) (every block, into shared memory); in_proj rows of b; conv step + SiLU for x rows -> xc,
//      the z rows -> xz[:, d_inner:]                                                    (M, d_inner) each
//   B  x_proj rows of b, split-K over the warps                                          -> xdbl (M, nx)
//   C  channels of b: dt_proj + softplus, scan step (4 lanes a channel), D skip, gate   -> y (M, d_inner)
//   D  out_proj rows of b; residual += product rounded to the act dtype                 -> residual (M, d_model)
// with nx = dt_rank + 2 d_state. Why (docs/BENCHMARKS.md "GPU"): at batch 1 a layer was 4-7 dependent small
// kernels whose launch, ramp-up and tail cost more than their bytes. Here a stage starts as soon as its barrier
// opens (measured per stage with MAMBART_STEP_TIMING: the barriers cost ~1.2-1.9 us each plus the slowest block's
// lag). Before arriving at a barrier each block asks L2 for the weights of its coming stages (bulk L2 prefetch);
// that made no measurable difference and stays as a knob. Data written by other blocks during the kernel is read
// through L2 (ld.global.cg), never through the non-coherent read-only path; weights use the read-only path.
// Rounding matches the composed ops: every intermediate is rounded to the act dtype where the ops store it.
#include "decode_step.h"

#include <algorithm>
#include <cstdlib>

#include "kernels.h"
#include "step_ops.cuh"

namespace mambart {
namespace cuda {

namespace {

constexpr int kStepThreads = 512;
constexpr int kStepWarps = kStepThreads / 32;
constexpr int kMaxStepLayers = 128;  // layers per launch (the table is a kernel parameter: ~15 KB of 32 KB)
constexpr int kMaxStepBatch = 8;

struct StepLayer {
  const float* norm_w; const float* norm_b;          // (d_model,)
  const void* in_proj_w; const float* in_proj_b;     // (2 d_inner, d_model), (2 d_inner,)
  const float* conv_w; const float* conv_b;          // (d_inner, d_conv), (d_inner,)
  const void* x_proj_w;                              // (nx, d_inner)
  const void* dt_proj_w; const float* dt_bias;       // (d_inner, dt_rank), (d_inner,)
  const float* A; const float* D;                    // (d_inner, d_state), (d_inner,)
  const void* out_proj_w; const float* out_proj_b;   // (d_model, d_inner), (d_model,)
  float* conv_state; float* ssm_state;               // (M, d_inner, d_conv), (M, d_inner, d_state)
};

struct StepArgs {
  int M, d_model, d_inner, d_state, dt_rank, d_conv, rms, n_layers;
  float eps;
  int dt_vec;             // dt_proj rows readable as 16-byte vectors
  int prefetch_in;        // bytes of the next layer's in_proj slice prefetched before the last barrier of a layer
  int prefetch_out;       // bytes of the out_proj slice prefetched after stage A
  int prefetch_state;     // 1: L2 prefetch of the block's state rows and small per-row weights ahead of their stage
  float* residual;        // (M, d_model) fp32
  void* xz;               // (M, 2 d_inner): z in the second half
  void* xc;               // (M, d_inner)
  void* xdbl;             // (M, nx)
  void* y;                // (M, d_inner)
  unsigned* barrier;      // grid barrier word (zeroed once; see grid_barrier)
  long long* timing;      // nullptr, or (n_layers, 8, nblocks) clock64 stamps of thread 0 (MAMBART_STEP_TIMING)
  StepLayer layer[kMaxStepLayers];
};

// [begin, end) of `n` items split evenly over `parts`.
struct Slice { int begin, end; };
__device__ __forceinline__ Slice slice_of(int n, int parts, int i) {
  return {int(int64_t(n) * i / parts), int(int64_t(n) * (i + 1) / parts)};
}

// Grid-wide barrier of a co-resident (cooperative) grid. Block 0 adds 2^31 - (nblocks - 1), the others 1: the
// top bit of the word flips exactly when all have arrived, and the rest of the word is back where it started.
// Thread 0 of each block keeps the bit it expects to change (`phase`, read once at kernel start: the bit cannot
// flip before every block, this one included, has arrived). Arrival is a release reduction (no round trip);
// the wait an acquire load.
__device__ __forceinline__ unsigned barrier_phase(const unsigned* bar) {
  unsigned cur;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(cur) : "l"(bar) : "memory");
  return cur & 0x80000000u;
}
__device__ __forceinline__ void grid_barrier(unsigned* bar, unsigned& phase) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned inc = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1) : 1u;
    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(bar), "r"(inc) : "memory");
    while (barrier_phase(bar) == phase) {
    }
    phase ^= 0x80000000u;
  }
  __syncthreads();
}

// Asks L2 for [p, p + bytes) (p 16-byte aligned): bulk prefetches of 16 KB pieces on sm_90, one line per thread
// before that. Never waits.
// The range is shrunk to whole 16-byte pieces inside it.
__device__ __forceinline__ void prefetch_range(const void* p, int64_t bytes) {
  const uintptr_t b0 = (reinterpret_cast<uintptr_t>(p) + 15) & ~uintptr_t(15);
  const uintptr_t b1 = (reinterpret_cast<uintptr_t>(p) + uintptr_t(bytes > 0 ? bytes : 0)) & ~uintptr_t(15);
  if (b1 <= b0) return;
  const char* c = reinterpret_cast<const char*>(b0);
  bytes = int64_t(b1 - b0);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int64_t kPiece = 16 << 10;
  for (int64_t off = int64_t(threadIdx.x) * kPiece; off < bytes; off += int64_t(blockDim.x) * kPiece) {
    const unsigned n = unsigned(bytes - off < kPiece ? bytes - off : kPiece);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(c + off), "r"(n) : "memory");
  }
#else
  for (int64_t off = int64_t(threadIdx.x) * 128; off < bytes; off += int64_t(blockDim.x) * 128) prefetch_l2(c + off);
#endif
}

// Rows [n0, n1) of w (N, K) times the M rows of x (shared memory, row stride K). The work is cut into units
// (row, part of K): with few rows per block K is split in S parts so that every warp still gets several units.
// Warp w takes the units w + 16 j (j < R <= RM per pass) and its 32 lanes walk their K parts in 16-byte chunks:
// every lane keeps R x DEPTH independent weight loads in flight, and a warp reads 512 contiguous bytes of a row per
// load. With S == 1 lane j of the warp finishes its unit j's row; else the S partial sums of a row meet in shared
// memory (`part`, kStepWarps * RM * MT floats) and one thread per row finishes it. epi(n, acc[MT]).
// (Measured on an H200, docs/BENCHMARKS.md session 5: 5 rows x 2 chunks instead of 8 x 1 gained 1%, and streaming
// the rows through a shared-memory ring with up to 192 KB per SM in flight was slower: loads in flight are not what
// limits these GEMVs at ~3 TB/s.)
// (A first version gave each row 4..32 lanes of its own and no K split: few loads in flight, ~1.1 TB/s.)
template <typename T, int MT>
constexpr int gemv_rows_per_warp() { return MT <= 2 ? 5 : 4; }
template <typename T, int MT, class Epi>
__device__ __forceinline__ void block_gemv(const T* w, int K, int n0, int n1, const T* x, int M, float* part,
                                           Epi epi) {
  constexpr int VEC = Vec<T>::n, RM = gemv_rows_per_warp<T, MT>();
  const int C = K / VEC, nr = n1 - n0;
  if (nr <= 0) return;  // uniform over the block
  int S = 1;
  while (S < 16 && nr * S * 2 <= kStepWarps * RM && C / (S * 2) >= 64) S *= 2;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int rows_per_pass = kStepWarps * RM / S;
  for (int r0 = 0; r0 < nr; r0 += rows_per_pass) {  // uniform over the block
    const int units = min(nr - r0, rows_per_pass) * S;
    // S divides 16, so a warp's units share their K part (k = warp % S) and are 16 / S rows apart.
    const int k = warp % S, lo = int(int64_t(C) * k / S), hi = int(int64_t(C) * (k + 1) / S);
    const uint4* wb = reinterpret_cast<const uint4*>(w + int64_t(n0 + r0 + warp / S) * K) + lo;
    const int64_t stride = int64_t(kStepWarps / S) * C;  // in 16-byte chunks
    bool ok[RM];
#pragma unroll
    for (int j = 0; j < RM; ++j) ok[j] = warp + kStepWarps * j < units;
    float acc[MT][RM];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int j = 0; j < RM; ++j) acc[m][j] = 0.f;
    // DEPTH chunks of each of the R rows per lane and pass, all loads issued before any use: R x DEPTH independent
    // 16-byte loads in flight per lane (batch <= 2: 5 x 2 in 128 registers; else 4 x 1, the loop unrolled twice).
    constexpr int DEPTH = MT <= 2 ? 2 : 1;
#pragma unroll(DEPTH == 1 ? 2 : 1)
    for (int i = lane; lo + i < hi; i += 32 * DEPTH) {
      uint4 wv[DEPTH][RM];
#pragma unroll
      for (int h = 0; h < DEPTH; ++h)
#pragma unroll
        for (int j = 0; j < RM; ++j)
          if (ok[j] && lo + i + 32 * h < hi) wv[h][j] = __ldg(wb + j * stride + i + 32 * h);
#pragma unroll
      for (int h = 0; h < DEPTH; ++h) {
        if (lo + i + 32 * h < hi) {
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            if (m < M) {
              const uint4 xv = reinterpret_cast<const uint4*>(x + int64_t(m) * K)[lo + i + 32 * h];
#pragma unroll
              for (int j = 0; j < RM; ++j)
                if (ok[j]) acc[m][j] += dot16(wv[h][j], xv, T());
            }
          }
        }
      }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int j = 0; j < RM; ++j)
        if (warp + kStepWarps * j < units) acc[m][j] = warp_sum(acc[m][j]);
    if (S == 1) {  // lane j finishes row j (constant-index selects: no local-memory array)
      float mine[MT];
      bool own = false;
#pragma unroll
      for (int m = 0; m < MT; ++m) mine[m] = acc[m][0];
#pragma unroll
      for (int j = 0; j < RM; ++j) {
        if (lane == j) {
          own = ok[j];
#pragma unroll
          for (int m = 0; m < MT; ++m) mine[m] = acc[m][j];
        }
      }
      if (own) epi(n0 + r0 + warp + kStepWarps * lane, mine);
    } else {
      if (lane == 0) {
#pragma unroll
        for (int j = 0; j < RM; ++j)
          if (ok[j])
#pragma unroll
            for (int m = 0; m < MT; ++m) part[(warp + kStepWarps * j) * MT + m] = acc[m][j];
      }
      __syncthreads();
      if (threadIdx.x < units / S) {
        float sum[MT];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          sum[m] = 0.f;
          for (int k = 0; k < S; ++k) sum[m] += part[(threadIdx.x * S + k) * MT + m];
        }
        epi(n0 + r0 + int(threadIdx.x), sum);
      }
      __syncthreads();
    }
  }
}

// Stage A: xs = norm(residual); xz rows [n0, n1) of in_proj; x rows through the conv step into xc.
template <typename T, int MT>
__device__ void stage_in_proj(const StepArgs& a, const StepLayer& w, T* xs, float* red, float* gpart, Slice rows) {
  norm_rows<T, true>(a.residual, a.M, a.d_model, w.norm_w, w.norm_b, a.rms, a.eps, xs, a.d_model, red);
  const int di = a.d_inner, dc = a.d_conv;
  T* xc = static_cast<T*>(a.xc);
  T* xz = static_cast<T*>(a.xz);
  block_gemv<T, MT>(static_cast<const T*>(w.in_proj_w), a.d_model, rows.begin, rows.end, xs, a.M, gpart,
                    [&](int n, const float (&acc)[MT]) {
                      const float bv = w.in_proj_b ? w.in_proj_b[n] : 0.f;
                      if (n < di) {
                        const float cb = w.conv_b ? __ldg(w.conv_b + n) : 0.f;
#pragma unroll
                        for (int m = 0; m < MT; ++m) {
                          if (m < a.M) {
                            float* st = w.conv_state + (int64_t(m) * di + n) * dc;
                            xc[int64_t(m) * di + n] = from_f<T>(conv_step<T>(st, w.conv_w + int64_t(n) * dc, cb, dc,
                                                                             acc[m] + bv));
                          }
                        }
                      } else {
#pragma unroll
                        for (int m = 0; m < MT; ++m)
                          if (m < a.M) xz[int64_t(m) * 2 * di + n] = from_f<T>(acc[m] + bv);
                      }
                    });
}

// Stage B: xdbl rows [r0, r1) = x_proj(xc); the warps of the block split K, partial sums meet in shared memory.
template <typename T, int MT>
__device__ void stage_x_proj(const StepArgs& a, const StepLayer& w, float (*part)[MT], Slice rows) {
  const int nr = rows.end - rows.begin;
  if (nr <= 0) return;  // uniform over the block
  constexpr int VEC = Vec<T>::n;
  const int K = a.d_inner, C = K / VEC, nx = a.dt_rank + 2 * a.d_state;
  const int S = max(1, kStepWarps / nr), per_pass = kStepWarps / S;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const T* xc = static_cast<const T*>(a.xc);
  const T* W = static_cast<const T*>(w.x_proj_w);
  for (int base = 0; base < nr; base += per_pass) {
    const int j = base + warp / S, ks = warp % S;
    float acc[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[m] = 0.f;
    if (warp / S < per_pass && j < nr) {
      const uint4* wr = reinterpret_cast<const uint4*>(W + int64_t(rows.begin + j) * K);
      const int lo = int(int64_t(C) * ks / S), hi = int(int64_t(C) * (ks + 1) / S);
#pragma unroll 4
      for (int c = lo + lane; c < hi; c += 32) {
        const uint4 wv = __ldg(wr + c);
#pragma unroll
        for (int m = 0; m < MT; ++m)
          if (m < a.M) acc[m] += dot16(wv, __ldcg(reinterpret_cast<const uint4*>(xc + int64_t(m) * K) + c), T());
      }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[m] = warp_sum(acc[m]);
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < MT; ++m) part[warp][m] = acc[m];
    }
    __syncthreads();
    if (threadIdx.x < per_pass * a.M) {
      const int js = threadIdx.x / a.M, m = threadIdx.x % a.M, jj = base + js;
      if (jj < nr) {
        float s = 0.f;
        for (int k = 0; k < S; ++k) s += part[js * S + k][m];
        static_cast<T*>(a.xdbl)[int64_t(m) * nx + rows.begin + jj] = from_f<T>(s);
      }
    }
    __syncthreads();
  }
}

// Stage C: for channels [c0, c1) and every row: dt = dt_proj(xdbl[:dt_rank]) (rounded), delta = softplus(dt + b),
// the scan step over 4 lanes, y = (C.h + D x) * silu(z).
template <typename T, int MT>
__device__ void stage_scan(const StepArgs& a, const StepLayer& w, float* xd, Slice ch) {
  const int nc = ch.end - ch.begin;
  if (nc <= 0) return;  // uniform over the block
  const int M = a.M, di = a.d_inner, ds = a.d_state, r = a.dt_rank, nx = r + 2 * ds, nq = ds / 16;
  const T* xdbl = static_cast<const T*>(a.xdbl);
  for (int i = threadIdx.x; i < M * nx; i += kStepThreads) xd[i] = to_f(__ldcg(xdbl + i));
  __syncthreads();
  const T* xc = static_cast<const T*>(a.xc);
  const T* xz = static_cast<const T*>(a.xz);
  const int q = threadIdx.x & 3, units = M * nc;
  for (int u0 = 0; u0 < units; u0 += kStepThreads / 4) {  // uniform: the 4-lane shuffles see every lane
    const int u = u0 + threadIdx.x / 4;
    const bool active = u < units;
    const int m = active ? u / nc : 0, c = ch.begin + (active ? u % nc : 0);
    const float* xr = xd + m * nx;
    const T* wr = static_cast<const T*>(w.dt_proj_w) + int64_t(c) * r;
    // loads that do not depend on dt first, so their latencies overlap
    const float xv = to_f(__ldcg(xc + int64_t(m) * di + c));
    const float zv = to_f(__ldcg(xz + int64_t(m) * 2 * di + di + c));
    const float bias = w.dt_bias ? w.dt_bias[c] : 0.f;
    const float Dv = w.D ? w.D[c] : 0.f;
    float s = 0.f;
    if (a.dt_vec) {
      constexpr int VEC = Vec<T>::n;
      for (int j = q; j < r / VEC; j += 4) s += dot16f(__ldg(reinterpret_cast<const uint4*>(wr) + j), xr + j * VEC, T());
    } else {
      for (int j = q; j < r; j += 4) s += to_f(wr[j]) * xr[j];
    }
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    const float delta = softplus(to_f(from_f<T>(s)) + bias);
    const float acc = scan_step_4lanes(delta, delta * xv, w.A + int64_t(c) * ds, w.ssm_state + (int64_t(m) * di + c) * ds,
                                       xr + r, xr + r + ds, q, nq, active);
    if (active && q == 0) {
      const float out = (acc + Dv * xv) * silu(zv);
      static_cast<T*>(a.y)[int64_t(m) * di + c] = from_f<T>(out);
    }
  }
}

// Stage D: residual rows... residual[:, n] += out_proj(y)[:, n] for rows [n0, n1) (y staged in shared memory).
template <typename T, int MT>
__device__ void stage_out_proj(const StepArgs& a, const StepLayer& w, T* ys, float* gpart, Slice rows) {
  if (rows.end <= rows.begin) return;  // uniform over the block
  const int di = a.d_inner, d = a.d_model;
  const int n16 = a.M * di / Vec<T>::n;
  for (int i = threadIdx.x; i < n16; i += kStepThreads)
    reinterpret_cast<uint4*>(ys)[i] = __ldcg(reinterpret_cast<const uint4*>(a.y) + i);
  __syncthreads();
  block_gemv<T, MT>(static_cast<const T*>(w.out_proj_w), di, rows.begin, rows.end, ys, a.M, gpart,
                    [&](int n, const float (&acc)[MT]) {
                      const float bv = w.out_proj_b ? w.out_proj_b[n] : 0.f;
#pragma unroll
                      for (int m = 0; m < MT; ++m) {
                        if (m < a.M) {
                          float* res = a.residual + int64_t(m) * d + n;
                          *res = __ldcg(res) + to_f(from_f<T>(acc[m] + bv));
                        }
                      }
                    });
}

template <typename T, int MT>
__global__ void __launch_bounds__(kStepThreads, 1) decode_step_kernel(const __grid_constant__ StepArgs a) {
  MAMBART_DYNAMIC_SMEM(uint4, step_smem);  // A: normed rows (M, d_model); C: xdbl (M, nx) fp32; D: y (M, d_inner)
  __shared__ float red[32];
  __shared__ float part[kStepWarps][MT];
  __shared__ float gpart[kStepWarps * gemv_rows_per_warp<T, MT>() * MT];
  T* xs = reinterpret_cast<T*>(step_smem);
  const int nb = gridDim.x, b = blockIdx.x;
  const int di = a.d_inner, d = a.d_model, nx = a.dt_rank + 2 * a.d_state;
  const size_t es = sizeof(T);
  const Slice in_rows = slice_of(2 * di, nb, b), out_rows = slice_of(d, nb, b), ch = slice_of(di, nb, b);
  const int xr_per = (nx + nb - 1) / nb;
  const Slice x_rows = {min(nx, b * xr_per), min(nx, (b + 1) * xr_per)};
  auto capped = [](int64_t cap, int64_t bytes) { return bytes < cap ? bytes : cap; };
  auto in_slice = [&](const StepLayer& w, int64_t cap) {
    prefetch_range(static_cast<const char*>(w.in_proj_w) + int64_t(in_rows.begin) * d * es,
                   capped(cap, int64_t(in_rows.end - in_rows.begin) * d * es));
  };
  // Timing (diagnostics only): stamps 0..7 of a layer = start, A done, B start, B done, C start, C done, D start,
  // D done (the gaps are barrier waits), after a block-wide sync so they mark the whole block.
  auto stamp = [&](int l, int k) {
    if (a.timing) {
      __syncthreads();
      if (threadIdx.x == 0) a.timing[(int64_t(l) * 8 + k) * nb + b] = clock64();
    }
  };
  // The small reads at the start or end of a stage that would otherwise miss in L2 after a whole step of weight
  // streaming: stage A's norm weights (each block asks for its 1/nb of them), in_proj bias and conv state / taps /
  // bias of its x rows; stage C's ssm state, D and dt bias of its channels; stage D's out_proj bias.
  const Slice xrows = {min(in_rows.begin, di), min(in_rows.end, di)};
  auto prefetch_small_a = [&](const StepLayer& w) {
    const Slice nrm = slice_of(d, nb, b);
    prefetch_range(w.norm_w + nrm.begin, int64_t(nrm.end - nrm.begin) * 4);
    if (w.norm_b) prefetch_range(w.norm_b + nrm.begin, int64_t(nrm.end - nrm.begin) * 4);
    if (w.in_proj_b) prefetch_range(w.in_proj_b + in_rows.begin, int64_t(in_rows.end - in_rows.begin) * 4);
    if (xrows.end > xrows.begin) {
      for (int m = 0; m < a.M; ++m)
        prefetch_range(w.conv_state + (int64_t(m) * di + xrows.begin) * a.d_conv,
                       int64_t(xrows.end - xrows.begin) * a.d_conv * 4);
      prefetch_range(w.conv_w + int64_t(xrows.begin) * a.d_conv, int64_t(xrows.end - xrows.begin) * a.d_conv * 4);
      if (w.conv_b) prefetch_range(w.conv_b + xrows.begin, int64_t(xrows.end - xrows.begin) * 4);
    }
  };
  auto prefetch_small_cd = [&](const StepLayer& w) {
    for (int m = 0; m < a.M; ++m)
      prefetch_range(w.ssm_state + (int64_t(m) * di + ch.begin) * a.d_state,
                     int64_t(ch.end - ch.begin) * a.d_state * 4);
    if (w.D) prefetch_range(w.D + ch.begin, int64_t(ch.end - ch.begin) * 4);
    if (w.dt_bias) prefetch_range(w.dt_bias + ch.begin, int64_t(ch.end - ch.begin) * 4);
    if (w.out_proj_b) prefetch_range(w.out_proj_b + out_rows.begin, int64_t(out_rows.end - out_rows.begin) * 4);
  };
  unsigned phase = 0;
  if (threadIdx.x == 0) phase = barrier_phase(a.barrier);
  in_slice(a.layer[0], a.prefetch_in);
  if (a.prefetch_state) prefetch_small_a(a.layer[0]);
  for (int l = 0; l < a.n_layers; ++l) {
    const StepLayer& w = a.layer[l];
    stamp(l, 0);
    stage_in_proj<T, MT>(a, w, xs, red, gpart, in_rows);
    // Coming up: x_proj rows, dt_proj rows and A of this block's channels, then the out_proj slice.
    prefetch_range(static_cast<const char*>(w.x_proj_w) + int64_t(x_rows.begin) * di * es,
                   int64_t(x_rows.end - x_rows.begin) * di * es);
    prefetch_range(static_cast<const char*>(w.dt_proj_w) + int64_t(ch.begin) * a.dt_rank * es,
                   int64_t(ch.end - ch.begin) * a.dt_rank * es);
    prefetch_range(w.A + int64_t(ch.begin) * a.d_state, int64_t(ch.end - ch.begin) * a.d_state * 4);
    if (a.prefetch_state) prefetch_small_cd(w);
    prefetch_range(static_cast<const char*>(w.out_proj_w) + int64_t(out_rows.begin) * di * es,
                   capped(a.prefetch_out, int64_t(out_rows.end - out_rows.begin) * di * es));
    stamp(l, 1);
    grid_barrier(a.barrier, phase);
    stamp(l, 2);
    stage_x_proj<T, MT>(a, w, part, x_rows);
    stamp(l, 3);
    grid_barrier(a.barrier, phase);
    stamp(l, 4);
    stage_scan<T, MT>(a, w, reinterpret_cast<float*>(step_smem), ch);
    stamp(l, 5);
    grid_barrier(a.barrier, phase);
    stamp(l, 6);
    stage_out_proj<T, MT>(a, w, xs, gpart, out_rows);
    if (l + 1 < a.n_layers) {
      in_slice(a.layer[l + 1], a.prefetch_in);
      if (a.prefetch_state) prefetch_small_a(a.layer[l + 1]);
    }
    stamp(l, 7);
    if (l + 1 < a.n_layers) grid_barrier(a.barrier, phase);
  }
}

int step_batch_template(int64_t M) { return M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8; }

size_t step_smem_bytes(const DecodeLayerParams& p) {
  const size_t es = dtype_size(p.act_dtype), M = size_t(p.batch);
  return std::max({M * size_t(p.d_model) * es, M * size_t(p.d_inner) * es,
                   M * size_t(p.dt_rank + 2 * p.d_state) * sizeof(float)});
}

// Calls fn(decode_step_kernel<T, MT>) for the act dtype and the batch template of M rows.
template <class F>
void with_step_kernel(DType act, int64_t M, F&& fn) {
  const int mt = step_batch_template(M);
  MAMBART_DISPATCH_FLOAT(act, T, "decode_step",
    if (mt == 1) fn(decode_step_kernel<T, 1>);
    else if (mt == 2) fn(decode_step_kernel<T, 2>);
    else if (mt == 4) fn(decode_step_kernel<T, 4>);
    else fn(decode_step_kernel<T, 8>));
}

void* step_kernel(DType act, int64_t M) {
  void* k = nullptr;
  with_step_kernel(act, M, [&](auto kernel) { k = reinterpret_cast<void*>(kernel); });
  return k;
}

int env_kb(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : dflt;
}

}  // namespace

bool decode_step_applicable(const DecodeLayerParams* layers, int64_t n, int device, std::string* why) {
  auto no = [why](const std::string& w) { *why = w; return false; };
  if (n < 1) return no("no layers");
  const DecodeLayerParams& p = layers[0];
  if (p.batch < 1 || p.batch > kMaxStepBatch) return no("batch outside 1..8");
  if (p.w_dtype != p.act_dtype || !is_float_compute(p.act_dtype)) return no("weight dtype != act dtype");
  if (p.d_conv < 1 || p.d_conv > 8) return no("d_conv outside 1..8");
  if (p.d_state % 16 != 0 || p.d_state > 64) return no("d_state not a multiple of 16 up to 64");
  const int64_t es = int64_t(dtype_size(p.act_dtype));
  if ((p.d_model * es) % 16 || (p.d_inner * es) % 16) return no("d_model or d_inner rows not 16-byte multiples");
  if (p.d_model > (1 << 24) || p.d_inner > (1 << 24) || p.dt_rank > (1 << 20)) return no("sizes too large");
  auto al = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  for (int64_t i = 0; i < n; ++i) {
    const DecodeLayerParams& q = layers[i];
    if (q.batch != p.batch || q.d_model != p.d_model || q.d_inner != p.d_inner || q.d_state != p.d_state ||
        q.dt_rank != p.dt_rank || q.d_conv != p.d_conv || q.rms != p.rms || q.eps != p.eps ||
        q.w_dtype != p.w_dtype || q.act_dtype != p.act_dtype)
      return no("layers differ in shape or dtype");
    if (q.residual != p.residual || q.xz != p.xz || q.xc != p.xc || q.xdbl != p.xdbl || q.y != p.y)
      return no("layers use different scratch buffers");
    if (!al(q.in_proj_w) || !al(q.x_proj_w) || !al(q.out_proj_w) || !al(q.A) || !al(q.ssm_state) || !al(q.xz) ||
        !al(q.xc) || !al(q.y))
      return no("unaligned weights, state or scratch");
  }
  int coop = 0, max_smem = 0;
  MAMBART_CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device));
  if (!coop) return no("the device has no cooperative launch");
  MAMBART_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const size_t static_smem = sizeof(float) * (32 + kStepWarps * 8) + 64;
  if (step_smem_bytes(p) + static_smem > size_t(max_smem)) return no("rows too long for shared memory");
  // One block per SM must fit (registers, shared memory): the grid is one block per SM and co-resident.
  const size_t smem = step_smem_bytes(p);
  void* kernel = step_kernel(p.act_dtype, p.batch);
  if (smem > (size_t(48) << 10))
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  int per_sm = 0;
  MAMBART_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kStepThreads, smem));
  if (per_sm < 1) return no("the kernel does not fit on a multiprocessor");
  return true;
}

std::string decode_step_timing_report(const long long* t, int n_layers, int nblocks, int clock_khz) {
  static const char* names[8] = {"A norm+in_proj+conv", "barrier 1", "B x_proj", "barrier 2", "C dt_proj+scan",
                                 "barrier 3", "D out_proj+residual", "barrier 4 (+next layer's start)"};
  double mean[8] = {}, worst[8] = {};
  int layers = 0;
  for (int l = 0; l + 1 < n_layers; ++l, ++layers) {
    for (int k = 0; k < 8; ++k) {
      double sum = 0, mx = 0;
      for (int b = 0; b < nblocks; ++b) {
        const long long t0 = t[(int64_t(l) * 8 + k) * nblocks + b];
        const long long t1 = k < 7 ? t[(int64_t(l) * 8 + k + 1) * nblocks + b] : t[(int64_t(l + 1) * 8) * nblocks + b];
        const double us = double(t1 - t0) / (double(clock_khz) * 1e-3);
        sum += us;
        mx = std::max(mx, us);
      }
      mean[k] += sum / nblocks;
      worst[k] += mx;
    }
  }
  std::string out = str("persistent decode step, per layer (mean over ", layers, " layers; clock64 at ", clock_khz / 1000,
                        " MHz): segment, mean over blocks us, slowest block us\n");
  double total = 0;
  for (int k = 0; k < 8; ++k) {
    out += str("  ", names[k], ": ", mean[k] / std::max(layers, 1), " / ", worst[k] / std::max(layers, 1), "\n");
    total += mean[k] / std::max(layers, 1);
  }
  out += str("  total: ", total, " us per layer\n");
  return out;
}

void launch_decode_step(const DecodeLayerParams* layers, int64_t n, unsigned* barrier, long long* timing,
                        int num_sms, bool prefetch_state, cudaStream_t stream) {
  const DecodeLayerParams& p = layers[0];
  const size_t smem = step_smem_bytes(p);
  if (smem > (size_t(48) << 10))
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(step_kernel(p.act_dtype, p.batch),
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int nb = num_sms;  // one block per SM: every block is resident (cooperative launch checks it)

  StepArgs a = {};
  a.M = int(p.batch); a.d_model = int(p.d_model); a.d_inner = int(p.d_inner); a.d_state = int(p.d_state);
  a.dt_rank = int(p.dt_rank); a.d_conv = int(p.d_conv); a.rms = p.rms ? 1 : 0; a.eps = p.eps;
  const int64_t es = int64_t(dtype_size(p.act_dtype));
  a.dt_vec = (p.dt_rank * es) % 16 == 0 ? 1 : 0;
  for (int64_t i = 0; i < n; ++i)
    if (reinterpret_cast<uintptr_t>(layers[i].dt_proj_w) % 16) a.dt_vec = 0;
  // MAMBART_STEP_PREFETCH_IN_KB / _OUT_KB: bytes of weights asked of L2 ahead of their stage (tuning knobs).
  a.prefetch_in = env_kb("MAMBART_STEP_PREFETCH_IN_KB", 64) << 10;
  a.prefetch_out = env_kb("MAMBART_STEP_PREFETCH_OUT_KB", 128) << 10;
  a.prefetch_state = prefetch_state ? 1 : 0;
  a.residual = p.residual; a.xz = p.xz; a.xc = p.xc; a.xdbl = p.xdbl; a.y = p.y; a.barrier = barrier;

  for (int64_t l0 = 0; l0 < n; l0 += kMaxStepLayers) {
    a.n_layers = int(std::min<int64_t>(kMaxStepLayers, n - l0));
    a.timing = timing ? timing + l0 * 8 * nb : nullptr;
    for (int i = 0; i < a.n_layers; ++i) {
      const DecodeLayerParams& q = layers[l0 + i];
      StepLayer& s = a.layer[i];
      s.norm_w = q.norm_w; s.norm_b = q.norm_b; s.in_proj_w = q.in_proj_w; s.in_proj_b = q.in_proj_b;
      s.conv_w = q.conv_w; s.conv_b = q.conv_b; s.x_proj_w = q.x_proj_w; s.dt_proj_w = q.dt_proj_w;
      s.dt_bias = q.dt_bias; s.A = q.A; s.D = q.D; s.out_proj_w = q.out_proj_w; s.out_proj_b = q.out_proj_b;
      s.conv_state = q.conv_state; s.ssm_state = q.ssm_state;
    }
    with_step_kernel(p.act_dtype, p.batch, [&](auto kernel) {
      launch_as(kLaunchCooperative, kernel, dim3(unsigned(nb)), dim3(kStepThreads), smem, stream, a);
    });
    MAMBART_CUDA_CHECK_LAUNCH("decode_step");
  }
}

}  // namespace cuda
}  // namespace mambart
