// Selective scan (prefill and decode), continuing from and updating ssm_state (batch, d_inner, d_state):
//   delta = softplus(dt + dt_bias);  h = exp(delta * A) * h + delta * B_t * x_t;  y_t = (h . C_t + D x_t) * silu(z_t)
//
// Prefill (seqlen > 1): one pass, sequential in time per channel. The cost is one exp per (token, channel, state)
// (MUFU, 16 per clock per SM: the floor, ~0.09 ms for 4096 tokens x 5120 channels x 16 states on an H100) plus
// ~4 FP32 ops; everything else is arranged so that it stays small next to that:
//  - d_state is split over L lanes per channel (L = 4, 8 or 16; each lane keeps NS = MAXS / L states and its
//    A * log2(e) in registers); exp is one ex2.approx per state. Padded states (d_state < MAXS) have A = B = C = 0.
//  - The block (128 threads = CB channels x L lanes, CB = 128 / L) walks time in tiles of T tokens. The raw tile
//    (x, dt, z, B, C) of tile k + 1 is fetched by cp.async into one of two shared-memory buffers while tile k is
//    scanned (no registers held, nothing for the compiler to sink). It is then staged once per (token, channel):
//    delta = softplus(dt + dt_bias) (branch-free, accurate to a few ulp: softplus_fast) and delta * x, and the B/C
//    rows (shared by all channels of the block) in the lanes' chunk order. Padded tokens get delta = 0 and padded
//    channels x = 0, A = 0: h passes unchanged.
//  - Each lane writes its partial h . C per token to shared memory (one store instead of log2(L) shuffles); after
//    the tile, one thread per (token, channel) sums the L partials, adds D x, gates by silu(z) (z from the raw
//    tile) and stores y row-wise. Two barriers per tile (roles in scan_prefill_kernel).
//  - Measured (ncu, 2.8b, H200; docs/BENCHMARKS.md "Session 4"): before this layout the scan proper was a third
//    of the stall samples, the staging (library log1pf, branchy __fdividef), 40 scalar loads per thread per tile
//    and the y pass the rest. This layout needs 80 registers instead of 125 but takes the same time (343 us per
//    4096-token layer of 2.8b): the kernel is latency-bound at ~2.4 warps per scheduler (320 blocks of 4 warps on
//    132 SMs), and other blocks' scans already overlapped the staging (a warp-specialized version was 0.97x).
//  - No time parallelism: a two-pass sub-chunked scan costs a second exp per state update, and the big shapes have
//    enough channels. Instead L adapts to the parallelism (prefill_lanes): more lanes per channel (fewer states
//    each, more per-token overhead) when batch * d_inner alone leaves the SM sub-partitions short of warps.
// MAXS (>= d_state) is 16, 32 or 64. Decode (seqlen 1) has its own kernel below (scan_step_kernel).
#include <algorithm>
#include <cstdlib>

#include "common.cuh"
#include "kernels.h"
#include "step_ops.cuh"

namespace mambart {
namespace cuda {

// Tiling of the prefill kernel for the act dtype E, MAXS (padded d_state) and NS states per lane.
template <typename E, int MAXS, int NS>
struct PrefillCfg {
  static constexpr int kThreads = 128;                // 4 warps: one on each SM sub-partition
  static constexpr int L = MAXS / NS;                 // lanes per channel
  static constexpr int CB = kThreads / L;             // channels per block
  static constexpr int T = NS >= 2 ? 128 / NS : 32;   // tokens per tile: T * NS = 32..128 state updates per lane
  static constexpr int VE = Vec<E>::n;                // elements per 16-byte vector
  static constexpr int PER = T * CB / kThreads;       // (token, channel) pairs per thread in store_y
  static constexpr int CW = NS >= 2 ? 2 : 1;          // states per shared-memory chunk: float4 {B,C,B,C} or float2
  static constexpr int NCH = NS / CW;                 // chunks per lane and token
  // Raw tile (act dtype, one of two buffers): x, dt, z (T, CB) each, then B, C (T, MAXS) each; B/C past d_state 0.
  static constexpr int kRawX = 0, kRawDt = T * CB, kRawZ = 2 * T * CB, kRawB = 3 * T * CB, kRawC = kRawB + T * MAXS;
  static constexpr int kRawElems = kRawC + T * MAXS;
  // Shared memory (floats): bc (T, MAXS) float2 | dd (T, CB) float2 | part (T, 128) | bias (CB) | raw x 2
  static constexpr int kBc = 0, kDd = kBc + T * MAXS * 2, kPart = kDd + T * CB * 2, kBias = kPart + T * kThreads;
  static constexpr int kRaw = (kBias + CB + 3) / 4 * 4;
  static constexpr size_t kSmemBytes = size_t(kRaw) * sizeof(float) + 2 * size_t(kRawElems) * sizeof(E);
  static_assert(L >= 4 && L <= 16 && NS * L == MAXS, "lanes per channel");
  static_assert(T % L == 0 && PER * kThreads == T * CB, "tile");
  static_assert(CB % VE == 0 && MAXS % VE == 0 && (T * CB) % VE == 0, "16-byte vectors");
  static_assert(kDd % 4 == 0 && kPart % 4 == 0 && (kRawElems * sizeof(E)) % 16 == 0, "16-byte aligned sections");
};

// The scan of one staged tile by one lane: TT tokens in groups of G. A group's shared-memory reads are issued
// together before its math, and the pointers are __restrict__ so that the next group's reads may also move above
// this group's stores of partials.
//   dd:   this lane's channel at token 0 of the tile, stride CB float2 {delta, delta * x} per token;
//   bc:   this lane's first chunk at token 0, stride 2 * MAXS floats per token;
//   part: this thread's partial at token 0, stride kThreads floats per token.
template <typename E, int MAXS, int NS>
__device__ __forceinline__ void scan_tile_lane(const float2* __restrict__ dd, const float* __restrict__ bc,
                                               float* __restrict__ part, const float (&A2)[NS], float (&h)[NS]) {
  using Cfg = PrefillCfg<E, MAXS, NS>;
  constexpr int L = Cfg::L, CB = Cfg::CB, CW = Cfg::CW, NCH = Cfg::NCH;
  constexpr int G = NS >= 8 ? 2 : 16 / NS;  // tokens per group: 4..16 registers of inputs per token
  static_assert(Cfg::T % G == 0, "group");
#pragma unroll
  for (int t0 = 0; t0 < Cfg::T; t0 += G) {
    float2 d[G];           // {delta, delta * x}
    float4 v[G][NCH];      // CW == 2: {B_s, C_s, B_s+1, C_s+1}; CW == 1: {B_s, C_s, -, -}
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int t = t0 + g;
      d[g] = dd[t * CB];
#pragma unroll
      for (int k = 0; k < NCH; ++k) {
        const float* c = bc + t * MAXS * 2 + k * L * 2 * CW;
        if constexpr (CW == 2) {
          v[g][k] = *reinterpret_cast<const float4*>(c);
        } else {
          const float2 u = *reinterpret_cast<const float2*>(c);
          v[g][k] = make_float4(u.x, u.y, 0.f, 0.f);
        }
      }
    }
    float acc[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      acc[g] = 0.f;
#pragma unroll
      for (int k = 0; k < NCH; ++k) {
        // h = exp(delta * A) * h + delta * B_t * x_t;  y += h * C_t
        h[CW * k] = ex2_fast(d[g].x * A2[CW * k]) * h[CW * k] + d[g].y * v[g][k].x;
        acc[g] = fmaf(h[CW * k], v[g][k].y, acc[g]);
        if constexpr (CW == 2) {
          h[2 * k + 1] = ex2_fast(d[g].x * A2[2 * k + 1]) * h[2 * k + 1] + d[g].y * v[g][k].z;
          acc[g] = fmaf(h[2 * k + 1], v[g][k].w, acc[g]);
        }
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) part[(t0 + g) * Cfg::kThreads] = acc[g];
  }
}

// Prefill scan. Grid (ceil(d_inner / CB), batch), 128 threads, PrefillCfg::kSmemBytes of dynamic shared memory.
// vec_io: every row of x, dt, z, B, C starts 16-byte aligned and d_inner, d_state are multiples of VE, so tiles
// are fetched by cp.async in 16-byte vectors; otherwise element by element.
// Per tile k (T tokens), with the raw tiles double-buffered:
//   fill(k+1): x, dt, z, B, C of tile k + 1 -> raw[(k+1) % 2] (cp.async: in flight during the scan, no registers)
//   scan(k):   each lane reads bc/dd, writes its partial h . C_t to part                 | cp.async wait, barrier
//   y(k):      thread (channel tid % CB, tokens tid / CB + j L) sums the L partials, adds D x, gates by silu(z)
//              read from raw[k % 2], stores y row-wise
//   stage(k+1): delta = softplus(dt + dt_bias), delta * x -> dd; B/C -> bc (from raw[(k+1) % 2]) | barrier
// bc/dd are last read before the first barrier and written after it; part is read before the second and written
// after it; raw[k % 2] is read by y(k) and refilled (tile k + 2) only after the second barrier.
template <typename E, int MAXS, int NS>
__global__ void __launch_bounds__(128) scan_prefill_kernel(ScanParams p, int vec_io) {
  using Cfg = PrefillCfg<E, MAXS, NS>;
  constexpr int L = Cfg::L, CB = Cfg::CB, TT = Cfg::T, NTH = Cfg::kThreads, PER = Cfg::PER, VE = Cfg::VE;
  constexpr int CW = Cfg::CW;
  extern __shared__ __align__(16) float sm[];
  const int tid = threadIdx.x;
  const int64_t b = blockIdx.y;
  const int64_t c0 = int64_t(blockIdx.x) * CB;
  const int ds = int(p.d_state);
  const int64_t seqlen = p.seqlen, di = p.d_inner;

  // scan role
  const int q = tid % L;
  const int64_t c_scan = c0 + tid / L;
  const bool scan_ok = c_scan < di;
  // y role
  const int c_io_l = tid % CB, t_io = tid / CB;
  const int64_t c_io = c0 + c_io_l;
  const bool io_ok = c_io < di;

  // Weights (never written by an earlier kernel) before the PDL wait.
  float A2[NS];  // A * log2(e)   (NS,) of this lane
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const int s = q * NS + i;
    A2[i] = scan_ok && s < ds ? p.A[c_scan * ds + s] * kLog2e : 0.f;
  }
  float* bias_s = sm + Cfg::kBias;  // (CB,) dt_bias of the block's channels, 0 past d_inner
  if (tid < CB) bias_s[tid] = c0 + tid < di && p.dt_bias ? p.dt_bias[c0 + tid] : 0.f;
  const float Dv = io_ok && p.D ? p.D[c_io] : 0.f;
  pdl_wait();

  float* st = p.ssm_state + (b * di + c_scan) * ds;  // (d_state,) of this channel; used only if scan_ok
  float h[NS];
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const int s = q * NS + i;
    h[i] = scan_ok && s < ds ? st[s] : 0.f;
  }

  const bool has_z = p.z != nullptr;
  const E* xb = static_cast<const E*>(p.x) + b * p.x_batch_stride;    // (seqlen, d_inner), token stride given
  const E* dtb = static_cast<const E*>(p.dt) + b * p.dt_batch_stride;
  const E* zb = has_z ? static_cast<const E*>(p.z) + b * p.z_batch_stride : xb;
  const E* Bb = static_cast<const E*>(p.B) + b * p.B_batch_stride;    // (seqlen, d_state)
  const E* Cb = static_cast<const E*>(p.C) + b * p.C_batch_stride;
  E* yb = static_cast<E*>(p.y) + b * p.y_batch_stride;
  E* raw0 = reinterpret_cast<E*>(sm + Cfg::kRaw);

  // The vector path's 16-byte pieces of a tile: thread tid takes x/dt/z vectors tid + j NTH (j < NXV) and B/C
  // vectors tid + j NTH (j < NBV); its global pointers start at its token of tile 0 and move one tile per fill.
  constexpr int NXV = (TT * CB / VE + NTH - 1) / NTH, NBV = (TT * MAXS / VE + NTH - 1) / NTH;
  const E* px[NXV];
  const E* pdt[NXV];
  const E* pz[NXV];
  const E* pB[NBV];
  const E* pC[NBV];
#pragma unroll
  for (int j = 0; j < NXV; ++j) {
    const int v = tid + j * NTH, t = v / (CB / VE), c = (v % (CB / VE)) * VE;
    px[j] = xb + t * p.x_token_stride + c0 + c;
    pdt[j] = dtb + t * p.dt_token_stride + c0 + c;
    pz[j] = zb + t * (has_z ? p.z_token_stride : p.x_token_stride) + c0 + c;
  }
#pragma unroll
  for (int j = 0; j < NBV; ++j) {
    const int v = tid + j * NTH, t = v / (MAXS / VE), s0 = (v % (MAXS / VE)) * VE;
    pB[j] = Bb + t * p.B_token_stride + s0;
    pC[j] = Cb + t * p.C_token_stride + s0;
  }
  const int64_t x_tile = TT * p.x_token_stride, dt_tile = TT * p.dt_token_stride;
  const int64_t z_tile = TT * (has_z ? p.z_token_stride : p.x_token_stride);
  const int64_t B_tile = TT * p.B_token_stride, C_tile = TT * p.C_token_stride;

  // Tile starting at token t0 with n_valid tokens -> raw buffer `buf`; zeros past the ends. Called for tiles
  // 0, 1, 2, ... in order (the vector path's pointers advance by one tile per call).
  auto fill = [&](int buf, int64_t t0, int n_valid) {
    E* raw = raw0 + buf * Cfg::kRawElems;
    if (vec_io) {
#pragma unroll
      for (int j = 0; j < NXV; ++j) {
        const int v = tid + j * NTH, t = v / (CB / VE), c = (v % (CB / VE)) * VE;
        if (v < TT * CB / VE) {
          const bool ok = t < n_valid && c0 + c < di;
          cp_async16(raw + Cfg::kRawX + t * CB + c, ok ? px[j] : xb, ok);
          cp_async16(raw + Cfg::kRawDt + t * CB + c, ok ? pdt[j] : dtb, ok);
          if (has_z) cp_async16(raw + Cfg::kRawZ + t * CB + c, ok ? pz[j] : zb, ok);
        }
        px[j] += x_tile; pdt[j] += dt_tile; pz[j] += z_tile;
      }
#pragma unroll
      for (int j = 0; j < NBV; ++j) {
        const int v = tid + j * NTH, t = v / (MAXS / VE), s0 = (v % (MAXS / VE)) * VE;
        if (v < TT * MAXS / VE) {
          const bool ok = t < n_valid && s0 < ds;
          cp_async16(raw + Cfg::kRawB + t * MAXS + s0, ok ? pB[j] : Bb, ok);
          cp_async16(raw + Cfg::kRawC + t * MAXS + s0, ok ? pC[j] : Cb, ok);
        }
        pB[j] += B_tile; pC[j] += C_tile;
      }
      cp_async_commit();
    } else {
      const E zero = from_f<E>(0.f);
#pragma unroll 4
      for (int i = tid; i < TT * CB; i += NTH) {
        const int t = i / CB, c = i % CB;
        const bool ok = t < n_valid && c0 + c < di;
        const int64_t tok = t0 + t;
        raw[Cfg::kRawX + i] = ok ? xb[tok * p.x_token_stride + c0 + c] : zero;
        raw[Cfg::kRawDt + i] = ok ? dtb[tok * p.dt_token_stride + c0 + c] : zero;
        if (has_z) raw[Cfg::kRawZ + i] = ok ? zb[tok * p.z_token_stride + c0 + c] : zero;
      }
#pragma unroll 4
      for (int i = tid; i < TT * MAXS; i += NTH) {
        const int t = i / MAXS, s0 = i % MAXS;
        const bool ok = t < n_valid && s0 < ds;
        const int64_t tok = t0 + t;
        raw[Cfg::kRawB + i] = ok ? Bb[tok * p.B_token_stride + s0] : zero;
        raw[Cfg::kRawC + i] = ok ? Cb[tok * p.C_token_stride + s0] : zero;
      }
    }
  };
  // raw buffer `buf` -> dd {delta, delta * x} and bc {B, C} (lane chunk order); delta = 0 on padded tokens, so
  // that h passes them unchanged (padded channels have x = 0 and A = 0).
  auto stage = [&](int buf, int n_valid) {
    const E* raw = raw0 + buf * Cfg::kRawElems;
    float2* dd = reinterpret_cast<float2*>(sm + Cfg::kDd);
    float2* bc = reinterpret_cast<float2*>(sm + Cfg::kBc);
#pragma unroll
    for (int v = tid; v < TT * CB / VE; v += NTH) {
      const int t = v / (CB / VE), c = (v % (CB / VE)) * VE;
      float xv[VE], dv[VE];
      unpack16(*reinterpret_cast<const uint4*>(raw + Cfg::kRawX + t * CB + c), xv, E());
      unpack16(*reinterpret_cast<const uint4*>(raw + Cfg::kRawDt + t * CB + c), dv, E());
      const bool ok = t < n_valid;
#pragma unroll
      for (int i = 0; i < VE; i += 2) {
        const float d0 = ok ? softplus_fast(dv[i] + bias_s[c + i]) : 0.f;
        const float d1 = ok ? softplus_fast(dv[i + 1] + bias_s[c + i + 1]) : 0.f;
        *reinterpret_cast<float4*>(dd + t * CB + c + i) = make_float4(d0, d0 * xv[i], d1, d1 * xv[i + 1]);
      }
    }
#pragma unroll
    for (int v = tid; v < TT * MAXS / VE; v += NTH) {
      const int t = v / (MAXS / VE), s0 = (v % (MAXS / VE)) * VE;
      float Bv[VE], Cv[VE];
      unpack16(*reinterpret_cast<const uint4*>(raw + Cfg::kRawB + t * MAXS + s0), Bv, E());
      unpack16(*reinterpret_cast<const uint4*>(raw + Cfg::kRawC + t * MAXS + s0), Cv, E());
#pragma unroll
      for (int i = 0; i < VE; ++i) {
        const int s = s0 + i;  // lane s / NS, chunk (s % NS) / CW: float2 index t*MAXS + (chunk*L + lane)*CW + s%CW
        bc[t * MAXS + ((s % NS) / CW * L + s / NS) * CW + (s % NS) % CW] = make_float2(Bv[i], Cv[i]);
      }
    }
  };
  auto scan_tile = [&]() {
    scan_tile_lane<E, MAXS, NS>(reinterpret_cast<const float2*>(sm + Cfg::kDd) + tid / L, sm + Cfg::kBc + q * 2 * CW,
                                sm + Cfg::kPart + tid, A2, h);
  };
  // y = (h . C_t + D x_t) * silu(z_t) of the tile in raw buffer `buf`; called for tiles 0, 1, 2, ... in order (yt
  // moves one tile per call).
  E* yt = yb + t_io * p.y_token_stride + c_io;  // this thread's first token of the current tile
  const int64_t y_step = L * p.y_token_stride, y_tile = TT * p.y_token_stride;
  auto store_y = [&](int buf, int n_valid) {
    const E* raw = raw0 + buf * Cfg::kRawElems;
    E* yj = yt;
    yt += y_tile;
#pragma unroll
    for (int j = 0; j < PER; ++j, yj += y_step) {
      const int ti = t_io + j * L;
      if (io_ok && ti < n_valid) {
        const float* pp = sm + Cfg::kPart + ti * NTH + c_io_l * L;  // the L partials of (t, channel)
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < L; i += 4) {
          const float4 v = *reinterpret_cast<const float4*>(pp + i);
          sum += (v.x + v.y) + (v.z + v.w);
        }
        const float xv = to_f(raw[Cfg::kRawX + ti * CB + c_io_l]);
        const float g = has_z ? silu_fast(to_f(raw[Cfg::kRawZ + ti * CB + c_io_l])) : 1.f;
        *yj = from_f<E>((sum + Dv * xv) * g);
      }
    }
  };

  const int64_t ntiles = (seqlen + TT - 1) / TT;
  auto valid = [&](int64_t k) { return int(std::min<int64_t>(TT, seqlen - k * TT)); };
  fill(0, 0, valid(0));
  cp_async_wait_all();
  __syncthreads();
  stage(0, valid(0));
  __syncthreads();
  for (int64_t k = 0; k < ntiles; ++k) {
    const bool more = k + 1 < ntiles;  // uniform over the block
    if (more) fill(int((k + 1) & 1), (k + 1) * TT, valid(k + 1));
    scan_tile();
    cp_async_wait_all();
    __syncthreads();  // part complete; bc/dd of tile k read by every lane; raw of tile k + 1 landed
    store_y(int(k & 1), valid(k));
    if (more) stage(int((k + 1) & 1), valid(k + 1));
    __syncthreads();  // tile k+1 staged; part of tile k read out
  }
  if (scan_ok) {
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      const int s = q * NS + i;
      if (s < ds) st[s] = h[i];
    }
  }
}

// Decode (seqlen 1), d_state = 16 * NQ: 4 lanes per channel, lane q holding the float4s j*4+q (j < NQ) of the
// state, so a warp reads and writes 8 channels' states as contiguous 16-byte pieces. y is reduced over the 4 lanes.
template <typename T, int NQ, bool DTPROJ>
__global__ void scan_step_kernel(ScanParams p, DtProjArgs d) {
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int q = threadIdx.x & 3;
  const int64_t c = g >> 2, b = blockIdx.y;
  const bool active = c < p.d_inner;
  const int64_t cc = active ? c : p.d_inner - 1;
  constexpr int DS = 16 * NQ;
  if (DTPROJ && d.early) {  // weights (dt_proj row, A row) do not depend on the previous kernel
    prefetch_l2(static_cast<const T*>(d.w) + cc * d.dt_rank + q * (d.dt_rank / 4));
    prefetch_l2(p.A + cc * DS + q * (DS / 4));
  }
  pdl_wait();
  if (DTPROJ && d.early) pdl_trigger();
  const float bias = p.dt_bias ? p.dt_bias[cc] : 0.f;
  const float xv = to_f(static_cast<const T*>(p.x)[b * p.x_batch_stride + cc]);
  float dtv;
  if (DTPROJ) {  // dt = dt_proj(xdbl[:dt_rank]) for this channel, 4 lanes over dt_rank, rounded to T like the op
    const T* wr = static_cast<const T*>(d.w) + cc * d.dt_rank;
    const T* xr = static_cast<const T*>(d.x) + b * d.x_batch_stride;
    float s = 0.f;
    if (d.vec) {
      const int chunks = d.dt_rank / Vec<T>::n;
#pragma unroll 4
      for (int j = q; j < chunks; j += 4)
        s += dot16(__ldg(reinterpret_cast<const uint4*>(wr) + j), __ldg(reinterpret_cast<const uint4*>(xr) + j), T());
    } else {
      for (int j = q; j < d.dt_rank; j += 4) s += to_f(wr[j]) * to_f(xr[j]);
    }
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    dtv = to_f(from_f<T>(s));
  } else {
    dtv = to_f(static_cast<const T*>(p.dt)[b * p.dt_batch_stride + cc]);
  }
  const float delta = softplus(dtv + bias);
  const float dx = delta * xv;
  const T* Bt = static_cast<const T*>(p.B) + b * p.B_batch_stride;
  const T* Ct = static_cast<const T*>(p.C) + b * p.C_batch_stride;
  const float acc = scan_step_4lanes(delta, dx, p.A + cc * DS, p.ssm_state + (b * p.d_inner + cc) * DS, Bt, Ct, q, NQ,
                                     active);
  if (!active || q != 0) return;
  float out = acc + (p.D ? p.D[c] : 0.f) * xv;
  if (p.z) out *= silu(to_f(static_cast<const T*>(p.z)[b * p.z_batch_stride + c]));
  static_cast<T*>(p.y)[b * p.y_batch_stride + c] = from_f<T>(out);
}

bool supports_scan(const ScanParams& p, std::string* why) {
  if (!is_float_compute(p.act_dtype)) { *why = "act dtype must be float32/float16/bfloat16"; return false; }
  if (p.d_state < 1 || p.d_state > 64) { *why = str("d_state ", p.d_state, " not supported (1..64)"); return false; }
  if (p.batch < 0 || p.seqlen < 0 || p.d_inner <= 0) { *why = "bad sizes"; return false; }
  if (p.batch > 65535) { *why = "batch > 65535"; return false; }
  if (!p.A || !p.ssm_state || !p.x || !p.dt || !p.B || !p.C || !p.y) { *why = "missing pointer"; return false; }
  return true;
}

// Whether every row of x, dt, z, B, C starts 16-byte aligned and d_inner, d_state are whole vectors (the
// prefill kernel's cp.async path).
static bool prefill_vec_io(const ScanParams& p) {
  const int64_t es = int64_t(dtype_size(p.act_dtype)), ve = 16 / es;
  auto al = [&](const void* q, int64_t token_stride, int64_t batch_stride) {
    return reinterpret_cast<uintptr_t>(q) % 16 == 0 && (token_stride * es) % 16 == 0 && (batch_stride * es) % 16 == 0;
  };
  return p.d_inner % ve == 0 && p.d_state % ve == 0 && al(p.x, p.x_token_stride, p.x_batch_stride) &&
         al(p.dt, p.dt_token_stride, p.dt_batch_stride) && al(p.B, p.B_token_stride, p.B_batch_stride) &&
         al(p.C, p.C_token_stride, p.C_batch_stride) && (!p.z || al(p.z, p.z_token_stride, p.z_batch_stride));
}

template <typename T, int MAXS, int NS>
static void launch_prefill(const ScanParams& p, cudaStream_t stream) {
  using Cfg = PrefillCfg<T, MAXS, NS>;
  auto kernel = scan_prefill_kernel<T, MAXS, NS>;
  if (Cfg::kSmemBytes > (size_t(48) << 10))  // beyond the default 48 KB per block: opt in
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)));
  dim3 grid(unsigned((p.d_inner + Cfg::CB - 1) / Cfg::CB), unsigned(p.batch));
  launch(kernel, grid, dim3(Cfg::kThreads), Cfg::kSmemBytes, stream, p, prefill_vec_io(p) ? 1 : 0);
  MAMBART_CUDA_CHECK_LAUNCH("scan");
}

// Lanes per channel of the prefill kernel (4, 8 or 16). A block has one warp on each of the SM's 4 sub-partitions,
// so the busiest sub-partition runs load = ceil(blocks / num_sms) warps. Per warp and token it needs about
// max(MUFU, issue) cycles: MUFU = 8 * (NS + 4 / L) (a warp-wide MUFU op occupies the 4-lane unit 8 cycles; 4 per
// (token, channel) for softplus and silu), issue ~ 5 * NS + 6 + 24 / L instructions. Few warps on a sub-partition
// cannot hide the latencies (efficiency guessed 0.5 / 0.75 / 0.9 / 1 for 1 / 2 / 3 / 4+ warps). Fewer lanes win
// unless more lanes are >= 10% cheaper by this estimate. Examples (132 SMs, batch 1, d_state 16): d_inner 5120
// (2.8b) -> 8, 4096 (1.4b) -> 8, 1536 (130m) -> 16; batch 8 x 5120 -> 4. MAMBART_SCAN_LANES=4|8|16 forces a value
// (benchmarks, tests).
static int prefill_lanes(const ScanParams& p, int maxs, int num_sms) {
  if (const char* e = std::getenv("MAMBART_SCAN_LANES")) {
    const int v = std::atoi(e);
    if ((v == 4 || v == 8 || v == 16) && maxs / v >= 1) return v;
  }
  num_sms = std::max(num_sms, 1);
  int best = 4;
  double best_cost = 0.0;
  for (int L : {4, 8, 16}) {
    const double ns = double(maxs) / L;
    const int64_t cb = 128 / L;
    const int64_t blocks = p.batch * ((p.d_inner + cb - 1) / cb);
    const int64_t load = (blocks + num_sms - 1) / num_sms;
    const double per_tok = std::max(8.0 * ns + 32.0 / L, 5.0 * ns + 6.0 + 24.0 / L);
    const double eff = load >= 4 ? 1.0 : load == 3 ? 0.9 : load == 2 ? 0.75 : 0.5;
    const double cost = double(load) * per_tok / eff;
    if (L == 4 || cost < 0.9 * best_cost) { best = L; best_cost = cost; }
  }
  return best;
}

template <typename T, int MAXS>
static void launch_scan_s(const ScanParams& p, int num_sms, cudaStream_t stream) {
  switch (prefill_lanes(p, MAXS, num_sms)) {
    case 4: launch_prefill<T, MAXS, MAXS / 4>(p, stream); break;
    case 8: launch_prefill<T, MAXS, MAXS / 8>(p, stream); break;
    default: launch_prefill<T, MAXS, MAXS / 16>(p, stream); break;
  }
}

bool scan_step_applicable(const ScanParams& p) {
  return p.seqlen == 1 && p.d_state % 16 == 0 && p.d_state <= 64 && reinterpret_cast<uintptr_t>(p.A) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(p.ssm_state) % 16 == 0;
}

template <typename T, bool DTPROJ>
static bool launch_scan_step(const ScanParams& p, const DtProjArgs& d, cudaStream_t stream) {
  if (!scan_step_applicable(p)) return false;
  const int threads = 128;
  dim3 grid(unsigned((p.d_inner * 4 + threads - 1) / threads), unsigned(p.batch));
  switch (p.d_state / 16) {
    case 1: launch(scan_step_kernel<T, 1, DTPROJ>, grid, threads, 0, stream, p, d); break;
    case 2: launch(scan_step_kernel<T, 2, DTPROJ>, grid, threads, 0, stream, p, d); break;
    case 3: launch(scan_step_kernel<T, 3, DTPROJ>, grid, threads, 0, stream, p, d); break;
    default: launch(scan_step_kernel<T, 4, DTPROJ>, grid, threads, 0, stream, p, d); break;
  }
  MAMBART_CUDA_CHECK_LAUNCH("scan_step");
  return true;
}

void launch_scan_step_dtproj(const ScanParams& p, DtProjArgs d, cudaStream_t stream) {
  std::string why;
  if (!supports_scan(p, &why)) throw_unsupported("scan_step_dtproj", why);
  if (!scan_step_applicable(p)) throw_unsupported("scan_step_dtproj", "needs seqlen 1, d_state % 16 == 0 (<= 64), aligned A/state");
  if (p.batch == 0) return;
  const size_t es = dtype_size(p.act_dtype);
  d.early = pdl_early() ? 1 : 0;
  d.vec = (d.dt_rank * es) % 16 == 0 && reinterpret_cast<uintptr_t>(d.w) % 16 == 0 &&
          reinterpret_cast<uintptr_t>(d.x) % 16 == 0 && (d.x_batch_stride * int64_t(es)) % 16 == 0;
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "scan_step_dtproj", launch_scan_step<T, true>(p, d, stream));
}

void launch_scan(const ScanParams& p, int num_sms, cudaStream_t stream) {
  std::string why;
  if (!supports_scan(p, &why)) throw_unsupported("scan", why);
  if (p.batch == 0 || p.seqlen == 0) return;
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "scan",
    if (launch_scan_step<T, false>(p, DtProjArgs{}, stream)) break;
    if (p.d_state <= 16) launch_scan_s<T, 16>(p, num_sms, stream);
    else if (p.d_state <= 32) launch_scan_s<T, 32>(p, num_sms, stream);
    else launch_scan_s<T, 64>(p, num_sms, stream));
}

}  // namespace cuda
}  // namespace mambart
