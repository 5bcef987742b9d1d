// Selective scan (prefill and decode), continuing from and updating ssm_state (batch, d_inner, d_state):
//   delta = softplus(dt + dt_bias);  h = exp(delta * A) * h + delta * B_t * x_t;  y_t = (h . C_t + D x_t) * silu(z_t)
//
// Prefill (seqlen > 1): one pass, sequential in time per channel. The cost is one exp per (token, channel, state)
// (MUFU, 16 per clock per SM: the floor, ~0.09 ms for 4096 tokens x 5120 channels x 16 states on an H100) plus
// ~4 FP32 ops; everything else is arranged so that it stays small next to that:
//  - d_state is split over L lanes per channel (L = 4, 8 or 16; each lane keeps NS = MAXS / L states and its
//    A * log2(e) in registers); exp is one ex2.approx per state. Padded states (d_state < MAXS) have A = B = C = 0.
//  - The block (128 threads = CB channels x L lanes, CB = 128 / L) walks time in tiles of T tokens. Each tile is
//    staged in shared memory once: delta = softplus(dt + dt_bias) and delta * x per (token, channel) (computed once,
//    not once per lane; accurate log1pf as in decode), D * x and silu(z) for the output, and the B/C rows (shared by all channels of the block).
//    The global loads of tile k + 1 are issued into registers before the scan of tile k and stored after it, so
//    their latency hides behind the scan. Padded tokens and channels get delta = 0, B = C = 0: h passes unchanged.
//  - Each lane writes its partial h . C per token to shared memory (one store instead of log2(L) shuffles); after
//    the tile, the same threads that staged (token, channel) pairs sum the L partials, apply D and the gate and
//    store y row-wise (coalesced). Two barriers per tile (shared-memory roles below, in prefill_kernel).
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

// Tiling of the prefill kernel for MAXS (padded d_state) and NS states per lane.
template <int MAXS, int NS>
struct PrefillCfg {
  static constexpr int kThreads = 128;                // 4 warps: one on each SM sub-partition
  static constexpr int L = MAXS / NS;                 // lanes per channel
  static constexpr int CB = kThreads / L;             // channels per block
  static constexpr int T = NS >= 2 ? 128 / NS : 64;   // tokens per tile: T * NS = 64..128 state updates per lane
  static constexpr int PER = T * CB / kThreads;       // (token, channel) pairs per thread when staging / storing y
  static constexpr int BCPER = T * MAXS / kThreads;   // (token, state) pairs of B and C per thread when staging
  static constexpr int CW = NS >= 2 ? 2 : 1;          // states per shared-memory chunk: float4 {B,C,B,C} or float2
  static constexpr int NCH = NS / CW;                 // chunks per lane and token
  // Shared memory (floats): bc (T, MAXS) x 2 | dd (T, CB) x 2 | ep (T, CB) x 2 | part (T, 128); see scan_prefill_kernel
  static constexpr int kBc = 0, kDd = kBc + T * MAXS * 2, kEp = kDd + T * CB * 2, kPart = kEp + T * CB * 2;
  static constexpr size_t kSmemBytes = size_t(kPart + T * kThreads) * sizeof(float);
  static_assert(L >= 4 && L <= 16 && NS * L == MAXS, "lanes per channel");
  static_assert(T % L == 0 && PER * kThreads == T * CB && BCPER * kThreads == T * MAXS, "tile");
  static_assert(kDd % 4 == 0 && kEp % 4 == 0 && kPart % 4 == 0, "16-byte aligned sections");
};

// The scan of one staged tile by one lane: TT tokens in groups of G. A group's shared-memory reads are issued
// together before its math, and the pointers are __restrict__ so that the next group's reads may also move above
// this group's stores of partials: without both, each token was a chain of dependent round trips (read, ex2,
// FMA, store) and the ~10 warps of an SM could not hide it (3.2 state updates per clock per SM, MUFU allows 16).
//   dd:   this lane's channel at token 0 of the tile, stride CB float2 {delta, delta * x} per token;
//   bc:   this lane's first chunk at token 0, stride 2 * MAXS floats per token;
//   part: this thread's partial at token 0, stride kThreads floats per token.
template <int MAXS, int NS>
__device__ __forceinline__ void scan_tile_lane(const float2* __restrict__ dd, const float* __restrict__ bc,
                                               float* __restrict__ part, const float (&A2)[NS], float (&h)[NS]) {
  using Cfg = PrefillCfg<MAXS, NS>;
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
// Thread roles (tid = threadIdx.x):
//   scan:   channel c0 + tid / L, lane q = tid % L with states q*NS .. q*NS+NS-1;
//   io:     channel c0 + tid % CB, tile tokens tid / CB + j * L (j < PER): loads x/dt/z, stages dd/ep, stores y;
//   bc:     state tid % MAXS, tile tokens tid / MAXS + j * (128 / MAXS) (j < BCPER): loads and stages B/C.
// Shared memory per tile (single-buffered):
//   bc   (T, MAXS) float2 {B, C}, in chunks of CW states: lane q's chunk k of token t at float2 index
//        t*MAXS + (k*L + q)*CW, so the L lanes read L adjacent chunks (no bank conflicts);
//   dd   (T, CB) float2 {delta, delta * x};   ep (T, CB) float2 {D * x, silu(z) or 1};
//   part (T, 128) float: lane partial h . C_t.
// Per tile k: [issue loads of tile k+1] scan(k): read bc/dd, write part | barrier | y(k): read part/ep |
// stage(k+1): write bc/dd/ep | barrier. ep is read and written by the same thread for the same pairs, so it needs
// no barrier of its own; bc/dd are last read before the first barrier, part is last read before the second.
template <typename T, int MAXS, int NS>
__global__ void __launch_bounds__(128) scan_prefill_kernel(ScanParams p) {
  using Cfg = PrefillCfg<MAXS, NS>;
  constexpr int L = Cfg::L, CB = Cfg::CB, TT = Cfg::T, NTH = Cfg::kThreads, PER = Cfg::PER, BCPER = Cfg::BCPER;
  constexpr int CW = Cfg::CW;
  extern __shared__ __align__(16) float sm[];
  const int tid = threadIdx.x;
  const int64_t b = blockIdx.y;
  const int64_t c0 = int64_t(blockIdx.x) * CB;
  const int ds = int(p.d_state);
  const int64_t seqlen = p.seqlen;

  // scan role
  const int q = tid % L;
  const int64_t c_scan = c0 + tid / L;
  const bool scan_ok = c_scan < p.d_inner;
  // io role
  const int c_io_l = tid % CB, t_io = tid / CB;
  const int64_t c_io = c0 + c_io_l;
  const bool io_ok = c_io < p.d_inner;
  // bc role: where state s_bc of tile token t goes in bc
  const int s_bc = tid % MAXS, t_bc = tid / MAXS;
  const int bc_pos = ((s_bc % NS) / CW * L + s_bc / NS) * CW + (s_bc % NS) % CW;

  // Weights (never written by an earlier kernel) before the PDL wait.
  float A2[NS];  // A * log2(e)   (NS,) of this lane
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const int s = q * NS + i;
    A2[i] = scan_ok && s < ds ? p.A[c_scan * ds + s] * kLog2e : 0.f;
  }
  const float bias = io_ok && p.dt_bias ? p.dt_bias[c_io] : 0.f;
  const float Dv = io_ok && p.D ? p.D[c_io] : 0.f;
  pdl_wait();

  float* st = p.ssm_state + (b * p.d_inner + c_scan) * ds;  // (d_state,) of this channel; used only if scan_ok
  float h[NS];
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const int s = q * NS + i;
    h[i] = scan_ok && s < ds ? st[s] : 0.f;
  }

  // Per-thread input pointers at the first token this thread loads in the next tile; each load advances them, so
  // after a tile they have moved by T tokens.
  const bool has_z = p.z != nullptr;
  const T* xg = static_cast<const T*>(p.x) + b * p.x_batch_stride + c_io + t_io * p.x_token_stride;  // (b, t, d_inner)
  const T* dtg = static_cast<const T*>(p.dt) + b * p.dt_batch_stride + c_io + t_io * p.dt_token_stride;
  const T* zg = has_z ? static_cast<const T*>(p.z) + b * p.z_batch_stride + c_io + t_io * p.z_token_stride : xg;
  const T* Bg = static_cast<const T*>(p.B) + b * p.B_batch_stride + s_bc + t_bc * p.B_token_stride;  // (b, t, d_state)
  const T* Cg = static_cast<const T*>(p.C) + b * p.C_batch_stride + s_bc + t_bc * p.C_token_stride;
  T* yg = static_cast<T*>(p.y) + b * p.y_batch_stride + c_io + t_io * p.y_token_stride;  // (b, t, d_inner)
  const int64_t x_step = L * p.x_token_stride, dt_step = L * p.dt_token_stride;
  const int64_t z_step = has_z ? L * p.z_token_stride : 0, y_step = L * p.y_token_stride;
  const int64_t B_step = (NTH / MAXS) * p.B_token_stride, C_step = (NTH / MAXS) * p.C_token_stride;

  // Raw inputs of the next tile, held in registers across the scan of the current one.
  T rx[PER], rdt[PER], rz[PER], rB[BCPER], rC[BCPER];
  const T zero = from_f<T>(0.f);
  auto load_tile = [&](int n_valid) {  // tokens of the tile that exist (<= T)
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const bool ok = io_ok && t_io + j * L < n_valid;
      rx[j] = ok ? *xg : zero;
      rdt[j] = ok ? *dtg : zero;
      rz[j] = ok && has_z ? *zg : zero;
      xg += x_step; dtg += dt_step; zg += z_step;
    }
#pragma unroll
    for (int j = 0; j < BCPER; ++j) {
      const bool ok = s_bc < ds && t_bc + j * (NTH / MAXS) < n_valid;
      rB[j] = ok ? *Bg : zero;
      rC[j] = ok ? *Cg : zero;
      Bg += B_step; Cg += C_step;
    }
  };
  auto stage_tile = [&](int n_valid) {
    float2* dd = reinterpret_cast<float2*>(sm + Cfg::kDd);
    float2* ep = reinterpret_cast<float2*>(sm + Cfg::kEp);
    float2* bc = reinterpret_cast<float2*>(sm + Cfg::kBc);
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int ti = t_io + j * L;
      const bool ok = io_ok && ti < n_valid;
      const float xv = to_f(rx[j]);
      // delta = softplus(dt + dt_bias); 0 on padding, so that h passes unchanged
      const float delta = ok ? softplus(to_f(rdt[j]) + bias) : 0.f;
      dd[ti * CB + c_io_l] = make_float2(delta, delta * xv);
      ep[ti * CB + c_io_l] = make_float2(Dv * xv, has_z ? silu_fast(to_f(rz[j])) : 1.f);
    }
#pragma unroll
    for (int j = 0; j < BCPER; ++j) {
      const int ti = t_bc + j * (NTH / MAXS);
      bc[ti * MAXS + bc_pos] = make_float2(to_f(rB[j]), to_f(rC[j]));
    }
  };
  auto scan_tile = [&]() {
    scan_tile_lane<MAXS, NS>(reinterpret_cast<const float2*>(sm + Cfg::kDd) + tid / L, sm + Cfg::kBc + q * 2 * CW,
                             sm + Cfg::kPart + tid, A2, h);
  };
  auto store_y = [&](int n_valid) {
    const float2* ep = reinterpret_cast<const float2*>(sm + Cfg::kEp);
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int ti = t_io + j * L;
      if (io_ok && ti < n_valid) {
        const float* pp = sm + Cfg::kPart + ti * NTH + c_io_l * L;  // the L partials of (t, channel)
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < L; i += 4) {
          const float4 v = *reinterpret_cast<const float4*>(pp + i);
          sum += (v.x + v.y) + (v.z + v.w);
        }
        const float2 e = ep[ti * CB + c_io_l];
        // y = (h . C_t + D x_t) * silu(z_t)
        *yg = from_f<T>((sum + e.x) * e.y);
      }
      yg += y_step;
    }
  };

  const int64_t ntiles = (seqlen + TT - 1) / TT;
  auto valid = [&](int64_t k) { return int(std::min<int64_t>(TT, seqlen - k * TT)); };
  load_tile(valid(0));
  stage_tile(valid(0));
  __syncthreads();
  for (int64_t k = 0; k < ntiles; ++k) {
    const bool more = k + 1 < ntiles;  // uniform over the block
    if (more) load_tile(valid(k + 1));
    scan_tile();
    __syncthreads();  // part complete; bc/dd of tile k read by every lane
    store_y(valid(k));
    if (more) stage_tile(valid(k + 1));
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

template <typename T, int MAXS, int NS>
static void launch_prefill(const ScanParams& p, cudaStream_t stream) {
  using Cfg = PrefillCfg<MAXS, NS>;
  auto kernel = scan_prefill_kernel<T, MAXS, NS>;
  if (Cfg::kSmemBytes > (size_t(48) << 10))  // beyond the default 48 KB per block: opt in
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)));
  dim3 grid(unsigned((p.d_inner + Cfg::CB - 1) / Cfg::CB), unsigned(p.batch));
  launch(kernel, grid, dim3(Cfg::kThreads), Cfg::kSmemBytes, stream, p);
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
