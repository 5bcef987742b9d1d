// The prefill scan kernel (seqlen > 1), included by scan.cu (launch logic, layout notes) and by the CPU simulation
// test (tests/cuda_sim: this file compiled as C++ with one thread per CUDA thread, to check its logic where no GPU
// is present). Continues from and updates ssm_state (batch, d_inner, d_state):
//   delta = softplus(dt + dt_bias);  h = exp(delta * A) * h + delta * B_t * x_t;  y_t = (h . C_t + D x_t) * silu(z_t)
//
// kScanWhole: one block walks the whole sequence of its channels, the state read and written in place.
// Time segments (ScanSegments, n > 1): the sequence is cut into n segments scanned in parallel, for more warps
// per SM when batch * d_inner alone leaves the SMs short of them. Two kernels of this template:
//   kScanLocal (grid z = n - 1): segment s < n - 1 scanned from h = 0 (s = 0: from ssm_state, copied to h0), no y:
//       h_end[s] = its end state, dsum[s] = sum of delta over it (fp32, in token order).
//   kScanSegment (grid z = n): segment s starts from its true state, rebuilt from the local ones in segment order,
//       H_0 = h_end[0], H_j = exp(A dsum[j]) H_{j-1} + h_end[j] (the decay over a segment is exp(A * sum delta)),
//       scans it writing y; the last segment writes ssm_state (which no block of this pass reads: segment 0 starts
//       from the copy h0, so the result does not depend on block order).
// Each state update of segments 0..n-2 is computed twice (local, segment pass): time parallelism costs a second
// exp per update, which pays only if the extra warps hide more latency than that (scan.cu: prefill_plan).
#pragma once
#include <algorithm>
#include <cstdint>

#include "common.cuh"

namespace mambart {
namespace cuda {

// Time segments of one prefill scan (kScanLocal, kScanSegment); n = 1 (kScanWhole) needs no scratch.
struct ScanSegments {
  int n = 1;              // segments
  int64_t len = 0;        // tokens per segment (the last one may be shorter)
  float* h0 = nullptr;    // (batch, d_inner, d_state) copy of ssm_state before the scan
  float* h_end = nullptr; // (n - 1, batch, d_inner, d_state) end state of segment s (s = 0 from h0, others from 0)
  float* dsum = nullptr;  // (n - 1, batch, d_inner) sum of delta over segment s (used for s >= 1)
};

enum ScanPass { kScanWhole = 0, kScanLocal = 1, kScanSegment = 2 };

// Tiling of the prefill kernel for the act dtype E, MAXS (padded d_state), NS states per lane and TT tokens per
// tile (0: the default, T * NS = 32..128 state updates per lane). kScanLocal needs no partials (part) and no z, C.
template <typename E, int MAXS, int NS, int TT = 0, ScanPass PASS = kScanWhole>
struct PrefillCfg {
  static constexpr int kThreads = 128;                // 4 warps: one on each SM sub-partition
  static constexpr int L = MAXS / NS;                 // lanes per channel
  static constexpr int CB = kThreads / L;             // channels per block
  static constexpr int T = TT > 0 ? TT : NS >= 2 ? 128 / NS : 32;  // tokens per tile
  static constexpr int VE = Vec<E>::n;                // elements per 16-byte vector
  static constexpr int PER = T * CB / kThreads;       // (token, channel) pairs per thread in store_y
  static constexpr int CW = NS >= 2 ? 2 : 1;          // states per shared-memory chunk: float4 {B,C,B,C} or float2
  static constexpr int NCH = NS / CW;                 // chunks per lane and token
  static constexpr bool kLocal = PASS == kScanLocal;
  // Raw tile (act dtype, one of two buffers): x, dt, z (T, CB) each, then B, C (T, MAXS) each; B/C past d_state 0.
  static constexpr int kRawX = 0, kRawDt = T * CB, kRawZ = 2 * T * CB, kRawB = 3 * T * CB, kRawC = kRawB + T * MAXS;
  static constexpr int kRawElems = kRawC + T * MAXS;
  // Shared memory (floats): bc (T, MAXS) float2 | dd (T, CB) float2 | part (T, 128) (not local) | bias (CB) | raw x 2
  static constexpr int kBc = 0, kDd = kBc + T * MAXS * 2, kPart = kDd + T * CB * 2;
  static constexpr int kBias = kPart + (kLocal ? 0 : T * kThreads);
  static constexpr int kRaw = (kBias + CB + 3) / 4 * 4;
  static constexpr size_t kSmemBytes = size_t(kRaw) * sizeof(float) + 2 * size_t(kRawElems) * sizeof(E);
  static_assert(L >= 4 && L <= 16 && NS * L == MAXS, "lanes per channel");
  static_assert(T % L == 0 && PER * kThreads == T * CB, "tile");
  static_assert(CB % VE == 0 && MAXS % VE == 0 && (T * CB) % VE == 0, "16-byte vectors");
  static_assert(kDd % 4 == 0 && kPart % 4 == 0 && (kRawElems * sizeof(E)) % 16 == 0, "16-byte aligned sections");
};

// The scan of one staged tile by one lane: T tokens in groups of G. A group's shared-memory reads are issued
// together before its math, and the pointers are __restrict__ so that the next group's reads may also move above
// this group's stores of partials.
//   dd:   this lane's channel at token 0 of the tile, stride CB float2 {delta, delta * x} per token;
//   bc:   this lane's first chunk at token 0, stride 2 * MAXS floats per token;
//   part: this thread's partial h . C_t at token 0, stride kThreads floats per token (not in the local pass).
// Returns the tile's sum of delta in the local pass (0 otherwise).
template <class Cfg, int MAXS, int NS>
__device__ __forceinline__ float scan_tile_lane(const float2* __restrict__ dd, const float* __restrict__ bc,
                                                float* __restrict__ part, const float (&A2)[NS], float (&h)[NS]) {
  constexpr int L = Cfg::L, CB = Cfg::CB, CW = Cfg::CW, NCH = Cfg::NCH;
  constexpr int G = NS >= 8 ? 2 : 16 / NS;  // tokens per group: 4..16 registers of inputs per token
  static_assert(Cfg::T % G == 0, "group");
  float dsum = 0.f;
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
      if constexpr (Cfg::kLocal) dsum += d[g].x;
#pragma unroll
      for (int k = 0; k < NCH; ++k) {
        // h = exp(delta * A) * h + delta * B_t * x_t;  y += h * C_t (not in the local pass)
        h[CW * k] = ex2_fast(d[g].x * A2[CW * k]) * h[CW * k] + d[g].y * v[g][k].x;
        if constexpr (!Cfg::kLocal) acc[g] = fmaf(h[CW * k], v[g][k].y, acc[g]);
        if constexpr (CW == 2) {
          h[2 * k + 1] = ex2_fast(d[g].x * A2[2 * k + 1]) * h[2 * k + 1] + d[g].y * v[g][k].z;
          if constexpr (!Cfg::kLocal) acc[g] = fmaf(h[2 * k + 1], v[g][k].w, acc[g]);
        }
      }
    }
    if constexpr (!Cfg::kLocal) {
#pragma unroll
      for (int g = 0; g < G; ++g) part[(t0 + g) * Cfg::kThreads] = acc[g];
    }
  }
  return dsum;
}

// Prefill scan, one pass (PASS) of one time segment per block. Grid (ceil(d_inner / CB), batch, segments of the
// pass), 128 threads, Cfg::kSmemBytes of dynamic shared memory.
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
// The local pass fetches and stages no z and C, and has no part and no y.
// Registers: the whole-sequence kernel keeps ptxas's default (no minimum of blocks: 64-80 registers at d_state 16);
// the segmented passes ask for 5 blocks per SM (<= 102 registers): their point is more warps per SM, and left to
// the default, ptxas capped the local pass at 64 registers with spills.
template <ScanPass PASS>
constexpr int kScanMinBlocks = PASS == kScanWhole ? 0 : 5;

template <typename E, int MAXS, int NS, int TT, ScanPass PASS>
__global__ void __launch_bounds__(128, kScanMinBlocks<PASS>) scan_prefill_kernel(ScanParams p, ScanSegments sg,
                                                                                  int vec_io) {
  using Cfg = PrefillCfg<E, MAXS, NS, TT, PASS>;
  constexpr int L = Cfg::L, CB = Cfg::CB, T = Cfg::T, NTH = Cfg::kThreads, PER = Cfg::PER, VE = Cfg::VE;
  constexpr int CW = Cfg::CW;
  constexpr bool kLocal = Cfg::kLocal, kSeg = PASS != kScanWhole;
  MAMBART_DYNAMIC_SMEM(float, sm);
  const int tid = threadIdx.x;
  const int64_t b = blockIdx.y;
  const int seg = kSeg ? int(blockIdx.z) : 0;
  const int64_t c0 = int64_t(blockIdx.x) * CB;
  const int ds = int(p.d_state);
  const int64_t di = p.d_inner;
  const int64_t t_begin = kSeg ? int64_t(seg) * sg.len : 0;
  const int64_t seqlen = kSeg ? std::min<int64_t>(sg.len, p.seqlen - t_begin) : p.seqlen;  // tokens of this block

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

  // The state this segment starts from (NS,) of this lane; padded states and channels stay 0.
  const int64_t row = (b * di + c_scan) * ds;        // this channel's (d_state,) in a (batch, d_inner, d_state) array
  const int64_t seg_stride = p.batch * di * ds;      // one segment's states in h_end
  float* st = p.ssm_state + row;                     // used only if scan_ok
  float h[NS];
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const int s = q * NS + i;
    const bool ok = scan_ok && s < ds;
    if constexpr (!kSeg) {
      h[i] = ok ? st[s] : 0.f;
    } else if constexpr (kLocal) {  // segment 0 from the state (a copy for the segment pass), the others from 0
      h[i] = ok && seg == 0 ? st[s] : 0.f;
      if (ok && seg == 0) sg.h0[row + s] = h[i];
    } else {  // H_0 = h_end[0]; H_j = exp(A dsum[j]) H_{j-1} + h_end[j], j < seg
      h[i] = !ok ? 0.f : seg == 0 ? sg.h0[row + s] : sg.h_end[row + s];
      for (int j = 1; ok && j < seg; ++j)
        h[i] = ex2_fast(A2[i] * sg.dsum[(j * p.batch + b) * di + c_scan]) * h[i] + sg.h_end[j * seg_stride + row + s];
    }
  }
  float dsum = 0.f;  // local pass: sum of delta over the segment

  const bool has_z = !kLocal && p.z != nullptr;
  const E* xb = static_cast<const E*>(p.x) + b * p.x_batch_stride + t_begin * p.x_token_stride;  // (seqlen, d_inner)
  const E* dtb = static_cast<const E*>(p.dt) + b * p.dt_batch_stride + t_begin * p.dt_token_stride;
  const E* zb = has_z ? static_cast<const E*>(p.z) + b * p.z_batch_stride + t_begin * p.z_token_stride : xb;
  const E* Bb = static_cast<const E*>(p.B) + b * p.B_batch_stride + t_begin * p.B_token_stride;    // (seqlen, d_state)
  const E* Cb = static_cast<const E*>(p.C) + b * p.C_batch_stride + t_begin * p.C_token_stride;
  E* yb = static_cast<E*>(p.y) + b * p.y_batch_stride + t_begin * p.y_token_stride;
  E* raw0 = reinterpret_cast<E*>(sm + Cfg::kRaw);

  // The vector path's 16-byte pieces of a tile: thread tid takes x/dt/z vectors tid + j NTH (j < NXV) and B/C
  // vectors tid + j NTH (j < NBV); its global pointers start at its token of tile 0 and move one tile per fill.
  constexpr int NXV = (T * CB / VE + NTH - 1) / NTH, NBV = (T * MAXS / VE + NTH - 1) / NTH;
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
  const int64_t x_tile = T * p.x_token_stride, dt_tile = T * p.dt_token_stride;
  const int64_t z_tile = T * (has_z ? p.z_token_stride : p.x_token_stride);
  const int64_t B_tile = T * p.B_token_stride, C_tile = T * p.C_token_stride;

  // Tile starting at token t0 (of the segment) with n_valid tokens -> raw buffer `buf`; zeros past the ends.
  // Called for tiles 0, 1, 2, ... in order (the vector path's pointers advance by one tile per call).
  auto fill = [&](int buf, int64_t t0, int n_valid) {
    E* raw = raw0 + buf * Cfg::kRawElems;
    if (vec_io) {
#pragma unroll
      for (int j = 0; j < NXV; ++j) {
        const int v = tid + j * NTH, t = v / (CB / VE), c = (v % (CB / VE)) * VE;
        if (v < T * CB / VE) {
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
        if (v < T * MAXS / VE) {
          const bool ok = t < n_valid && s0 < ds;
          cp_async16(raw + Cfg::kRawB + t * MAXS + s0, ok ? pB[j] : Bb, ok);
          if (!kLocal) cp_async16(raw + Cfg::kRawC + t * MAXS + s0, ok ? pC[j] : Cb, ok);
        }
        pB[j] += B_tile; pC[j] += C_tile;
      }
      cp_async_commit();
    } else {
      const E zero = from_f<E>(0.f);
#pragma unroll 4
      for (int i = tid; i < T * CB; i += NTH) {
        const int t = i / CB, c = i % CB;
        const bool ok = t < n_valid && c0 + c < di;
        const int64_t tok = t0 + t;
        raw[Cfg::kRawX + i] = ok ? xb[tok * p.x_token_stride + c0 + c] : zero;
        raw[Cfg::kRawDt + i] = ok ? dtb[tok * p.dt_token_stride + c0 + c] : zero;
        if (has_z) raw[Cfg::kRawZ + i] = ok ? zb[tok * p.z_token_stride + c0 + c] : zero;
      }
#pragma unroll 4
      for (int i = tid; i < T * MAXS; i += NTH) {
        const int t = i / MAXS, s0 = i % MAXS;
        const bool ok = t < n_valid && s0 < ds;
        const int64_t tok = t0 + t;
        raw[Cfg::kRawB + i] = ok ? Bb[tok * p.B_token_stride + s0] : zero;
        if (!kLocal) raw[Cfg::kRawC + i] = ok ? Cb[tok * p.C_token_stride + s0] : zero;
      }
    }
  };
  // raw buffer `buf` -> dd {delta, delta * x} and bc {B, C} (lane chunk order; C = 0 in the local pass); delta = 0
  // on padded tokens, so that h passes them unchanged (padded channels have x = 0 and A = 0).
  auto stage = [&](int buf, int n_valid) {
    const E* raw = raw0 + buf * Cfg::kRawElems;
    float2* dd = reinterpret_cast<float2*>(sm + Cfg::kDd);
    float2* bc = reinterpret_cast<float2*>(sm + Cfg::kBc);
#pragma unroll
    for (int v = tid; v < T * CB / VE; v += NTH) {
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
    for (int v = tid; v < T * MAXS / VE; v += NTH) {
      const int t = v / (MAXS / VE), s0 = (v % (MAXS / VE)) * VE;
      float Bv[VE], Cv[VE];
      unpack16(*reinterpret_cast<const uint4*>(raw + Cfg::kRawB + t * MAXS + s0), Bv, E());
      if (!kLocal) unpack16(*reinterpret_cast<const uint4*>(raw + Cfg::kRawC + t * MAXS + s0), Cv, E());
#pragma unroll
      for (int i = 0; i < VE; ++i) {
        const int s = s0 + i;  // lane s / NS, chunk (s % NS) / CW: float2 index t*MAXS + (chunk*L + lane)*CW + s%CW
        bc[t * MAXS + ((s % NS) / CW * L + s / NS) * CW + (s % NS) % CW] = make_float2(Bv[i], kLocal ? 0.f : Cv[i]);
      }
    }
  };
  auto scan_tile = [&]() {  // returns the tile's sum of delta (local pass)
    return scan_tile_lane<Cfg, MAXS, NS>(reinterpret_cast<const float2*>(sm + Cfg::kDd) + tid / L,
                                         sm + Cfg::kBc + q * 2 * CW, sm + Cfg::kPart + tid, A2, h);
  };
  // y = (h . C_t + D x_t) * silu(z_t) of the tile in raw buffer `buf`; called for tiles 0, 1, 2, ... in order (yt
  // moves one tile per call).
  E* yt = yb + t_io * p.y_token_stride + c_io;  // this thread's first token of the current tile
  const int64_t y_step = L * p.y_token_stride, y_tile = T * p.y_token_stride;
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

  const int64_t ntiles = (seqlen + T - 1) / T;
  auto valid = [&](int64_t k) { return int(std::min<int64_t>(T, seqlen - k * T)); };
  fill(0, 0, valid(0));
  cp_async_wait_all();
  __syncthreads();
  stage(0, valid(0));
  __syncthreads();
  for (int64_t k = 0; k < ntiles; ++k) {
    const bool more = k + 1 < ntiles;  // uniform over the block
    if (more) fill(int((k + 1) & 1), (k + 1) * T, valid(k + 1));
    const float tile_dsum = scan_tile();
    if constexpr (kLocal) dsum += tile_dsum;
    cp_async_wait_all();
    __syncthreads();  // part complete; bc/dd of tile k read by every lane; raw of tile k + 1 landed
    if (!kLocal) store_y(int(k & 1), valid(k));
    if (more) stage(int((k + 1) & 1), valid(k + 1));
    __syncthreads();  // tile k+1 staged; part of tile k read out
  }
  if (scan_ok) {
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      const int s = q * NS + i;
      if (s >= ds) continue;
      if (kLocal) sg.h_end[int64_t(seg) * seg_stride + row + s] = h[i];
      else if (!kSeg || seg == sg.n - 1) st[s] = h[i];
    }
    if (kLocal && q == 0) sg.dsum[(int64_t(seg) * p.batch + b) * di + c_scan] = dsum;
  }
}

}  // namespace cuda
}  // namespace mambart
