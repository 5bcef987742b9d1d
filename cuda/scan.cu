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
//  - L adapts to the parallelism (prefill_lanes): more lanes per channel (fewer states each, more per-token
//    overhead) when batch * d_inner alone leaves the SM sub-partitions short of warps.
//  - Time segments (MAMBART_SCAN_SEGMENTS, off by default until measured on a GPU; scan_prefill.cuh): the sequence
//    cut into n segments, a local pass (each segment from 0: end state and sum of delta) then a segment pass
//    (each from its rebuilt state): n times the blocks for a second exp per update of segments 0..n-2. The
//    kernel code lives in scan_prefill.cuh so that the CPU simulation test (tests/cuda_sim) can run it.
// MAXS (>= d_state) is 16, 32 or 64. Decode (seqlen 1) has its own kernel below (scan_step_kernel).
#include <algorithm>
#include <cstdlib>

#include "common.cuh"
#include "kernels.h"
#include "scan_prefill.cuh"
#include "step_ops.cuh"

namespace mambart {
namespace cuda {

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

template <typename T, int MAXS, int NS, int TT, ScanPass PASS>
static void launch_prefill_pass(const ScanParams& p, const ScanSegments& sg, int segments, cudaStream_t stream) {
  using Cfg = PrefillCfg<T, MAXS, NS, TT, PASS>;
  auto kernel = scan_prefill_kernel<T, MAXS, NS, TT, PASS>;
  if (Cfg::kSmemBytes > (size_t(48) << 10))  // beyond the default 48 KB per block: opt in
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Cfg::kSmemBytes)));
  dim3 grid(unsigned((p.d_inner + Cfg::CB - 1) / Cfg::CB), unsigned(p.batch), unsigned(segments));
  launch(kernel, grid, dim3(Cfg::kThreads), Cfg::kSmemBytes, stream, p, sg, prefill_vec_io(p) ? 1 : 0);
  MAMBART_CUDA_CHECK_LAUNCH("scan");
}

// Tokens per tile of the segmented passes: 32 (half the default tile at 8 lanes) keeps the segment pass's shared
// memory near 35 KB at fp16, so that 5-6 blocks fit an SM: the extra blocks are the point of the segments.
constexpr int kSegTile = 32;

// One segment: the default kernel, state in place. Segments (d_state <= 16 only: every released Mamba-1
// checkpoint; the others run in one segment): the local pass, then the segment pass (scan_prefill.cuh).
template <typename T, int MAXS, int NS>
static void launch_prefill(const ScanParams& p, const ScanSegments& sg, cudaStream_t stream) {
  if (sg.n == 1) {
    launch_prefill_pass<T, MAXS, NS, 0, kScanWhole>(p, sg, 1, stream);
    return;
  }
  if constexpr (MAXS == 16) {
    launch_prefill_pass<T, MAXS, NS, kSegTile, kScanLocal>(p, sg, sg.n - 1, stream);
    launch_prefill_pass<T, MAXS, NS, kSegTile, kScanSegment>(p, sg, sg.n, stream);
  } else {
    throw_unsupported("scan", "time segments need d_state <= 16");  // prefill_plan never asks for them
  }
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

// How one prefill scan runs: lanes per channel and time segments.
struct PrefillPlan {
  int maxs = 16, lanes = 8, segments = 1;
  int64_t seg_len = 0;
  size_t scratch_bytes = 0;  // h0 + h_end + dsum (ScanSegments) when segments > 1
};

// Time segments: MAMBART_SCAN_SEGMENTS unset or 1 -> one (the default: the segmented scan is not yet measured on a
// GPU); N -> N; "auto" -> as many as fill one wave of the segment pass (kScanMinBlocks = 5 blocks per SM, one warp
// per sub-partition each), segments of >= 512 tokens, at most 8: 2.8b and 1.4b -> 2, 130m -> 3 at batch 1 on 132
// SMs (a guess until measured: docs/BENCHMARKS.md, session 6). Segments are whole kSegTile tiles.
static PrefillPlan prefill_plan(const ScanParams& p, int num_sms) {
  PrefillPlan pl;
  pl.maxs = p.d_state <= 16 ? 16 : p.d_state <= 32 ? 32 : 64;
  pl.lanes = prefill_lanes(p, pl.maxs, num_sms);
  pl.seg_len = p.seqlen;
  int n = 1;
  if (const char* e = std::getenv("MAMBART_SCAN_SEGMENTS")) {
    if (std::string(e) == "auto") {
      const int64_t cb = 128 / pl.lanes, blocks = std::max<int64_t>(1, p.batch * ((p.d_inner + cb - 1) / cb));
      const int64_t want = kScanMinBlocks<kScanSegment> * int64_t(std::max(num_sms, 1)) / blocks;
      n = int(std::max<int64_t>(1, std::min<int64_t>({want, 8, p.seqlen / 512})));
    } else {
      n = std::max(1, std::min(64, std::atoi(e)));
    }
  }
  if (pl.maxs != 16 || p.seqlen < 2 * kSegTile) n = 1;
  if (n > 1) {
    pl.seg_len = ((p.seqlen + n - 1) / n + kSegTile - 1) / kSegTile * kSegTile;
    n = int((p.seqlen + pl.seg_len - 1) / pl.seg_len);
    if (n == 1) pl.seg_len = p.seqlen;
  }
  pl.segments = n;
  if (n > 1) {
    const size_t states = size_t(p.batch) * size_t(p.d_inner) * size_t(p.d_state);
    pl.scratch_bytes = (size_t(n) * states + size_t(n - 1) * size_t(p.batch) * size_t(p.d_inner)) * sizeof(float);
  }
  return pl;
}

template <typename T, int MAXS>
static void launch_scan_s(const ScanParams& p, const PrefillPlan& pl, const ScanSegments& sg, cudaStream_t stream) {
  switch (pl.lanes) {
    case 4: launch_prefill<T, MAXS, MAXS / 4>(p, sg, stream); break;
    case 8: launch_prefill<T, MAXS, MAXS / 8>(p, sg, stream); break;
    default: launch_prefill<T, MAXS, MAXS / 16>(p, sg, stream); break;
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

size_t scan_scratch_bytes(const ScanParams& p, int num_sms) {
  std::string why;
  if (!supports_scan(p, &why) || p.batch == 0 || p.seqlen < 2 || scan_step_applicable(p)) return 0;
  return prefill_plan(p, num_sms).scratch_bytes;
}

void launch_scan(const ScanParams& p, int num_sms, cudaStream_t stream, void* scratch, size_t scratch_bytes) {
  std::string why;
  if (!supports_scan(p, &why)) throw_unsupported("scan", why);
  if (p.batch == 0 || p.seqlen == 0) return;
  const PrefillPlan pl = prefill_plan(p, num_sms);
  ScanSegments sg;
  sg.len = p.seqlen;
  // Without enough scratch (none inside a graph capture, or out of memory) the scan runs in one segment.
  if (pl.segments > 1 && scratch && scratch_bytes >= pl.scratch_bytes) {
    const size_t states = size_t(p.batch) * size_t(p.d_inner) * size_t(p.d_state);
    sg.n = pl.segments;
    sg.len = pl.seg_len;
    sg.h0 = static_cast<float*>(scratch);
    sg.h_end = sg.h0 + states;
    sg.dsum = sg.h_end + size_t(pl.segments - 1) * states;
  }
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "scan",
    if (launch_scan_step<T, false>(p, DtProjArgs{}, stream)) break;
    if (pl.maxs == 16) launch_scan_s<T, 16>(p, pl, sg, stream);
    else if (pl.maxs == 32) launch_scan_s<T, 32>(p, pl, sg, stream);
    else launch_scan_s<T, 64>(p, pl, sg, stream));
}

}  // namespace cuda
}  // namespace mambart
