// Prefill selective scan, parallel in time inside a chunk (the default prefill scan; scan.cu has the one-pass
// kernel it replaced and the decode step):
//   delta = softplus(dt + dt_bias);  h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t;  y_t = (h_t . C_t + D x_t) silu(z_t)
//
// Why: the one-pass kernel (scan.cu) has parallelism batch * d_inner * lanes only. For one 2.8b sequence that is
// ~10 warps per SM, too few to hide its latencies: ncu measured 400 us per 4096-token layer, 3.2 state updates per
// clock per SM against the ~16 of the MUFU unit (one ex2 per update). Here 16 lanes share one channel and each owns
// ITEMS consecutive tokens of the chunk; per state n:
//   pass 1  a_i = exp(delta_i A_n), b_i = delta_i x_i B_i[n]; the lane's composite (al, bl) over its items:
//           bl = a_i bl + b_i sequentially, al = exp(A_n * sum_i delta_i) (one ex2 instead of a product chain);
//   scan    inclusive scan of (al, bl) over the 16 lanes (4 shuffle steps, (a, b) o (a', b') = (a a', a' b + b'));
//   pass 2  h = state entering the lane's items (the previous lane's prefix applied to the chunk's start state);
//           h = a_i h + b_i, y_i += C_i[n] h over the items (a_i, b_i kept in registers: one ex2 per update).
// The last lane's inclusive value is the state after the chunk. Same exp count as the sequential scan; the extra
// cost is the lane scan, ~4 instructions per update at ITEMS = 8 (vs ~6 for the update itself).
//
// Block: 128 threads = CB (8) channels x 16 lanes; chunk = 16 * ITEMS = 128 tokens. Shared memory per chunk:
//   dl  (CB, R): delta per token (the lanes write y over it after the scan);   dx (CB, R): delta * x
//   Bs, Cs (d_state, R): B and C as fp32, shared by the block's channels;       A2 (CB, d_state) = A log2(e);
//   hc  2 x (CB, d_state): state entering the chunk / after it (double-buffered: the last lane writes one while
//   the others read the other).
// Rows are token-major with 4 floats of padding after each lane's ITEMS tokens (pad(t)), so a lane's items are
// float4-aligned and the 8 lanes of a shared-memory phase hit distinct banks; R = pad(TOK) + 4 keeps the
// transposing stores (8 channels or d_state states at one token) at most 2-way conflicted.
// Roles per chunk: stage (thread = channel tid % CB x tokens tid / CB + 16 k, so global loads and the y stores run
// over 8 adjacent channels) | barrier | scan (half-warps) | barrier | output y = (y + D x) silu(z). The output
// thread reads dl only at the slots it staged itself, so the next chunk's staging needs no barrier before it.
// Grid (ceil(d_inner / CB), batch). CB = 8 keeps blocks small enough that 2.8b (640 blocks, ~38 KB of shared
// memory each, 5 per SM) runs in one balanced wave on 132 SMs.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "common.cuh"
#include "kernels.h"

namespace mambart {
namespace cuda {

namespace {

// MAXS >= d_state; LANES lanes per channel, ITEMS consecutive tokens per lane (the default 16 x 8; 32 x 4 and
// 8 x 16 are variants for measurements, MAMBART_SCAN_CHUNK=32x4|8x16, d_state <= 16 only).
template <int MAXS, int LANES = 16, int IT = 8>
struct ChunkCfg {
  static constexpr int kThreads = 128;
  static constexpr int kLanes = LANES;                         // lanes per channel
  static constexpr int CB = kThreads / kLanes;                 // channels per block
  static constexpr int ITEMS = IT;                             // consecutive tokens per lane
  static constexpr int TOK = kLanes * ITEMS;                   // tokens per chunk
  static constexpr int R = TOK + TOK / ITEMS * 4 + 4;          // floats per shared-memory row
  static constexpr int PER = TOK * CB / kThreads;              // (token, channel) pairs per thread: stage, output
  static constexpr int BCPER = TOK * MAXS / kThreads;          // (token, state) pairs of B and C per thread
  __device__ static int pad(int t) { return t + t / ITEMS * 4; }
  static_assert(R % 32 == 4 && ITEMS % 4 == 0, "row padding");
  // floats: A2 | hc[2] | dl | dx | Bs | Cs
  static size_t smem_bytes(int ds) { return size_t(3 * CB * ds + 2 * CB * R + 2 * ds * R) * sizeof(float); }
};

template <typename T, int MAXS, int LANES, int ITEMS>
__global__ void __launch_bounds__(128, ITEMS >= 16 ? 4 : 5) scan_chunked_kernel(ScanParams p) {
  using Cfg = ChunkCfg<MAXS, LANES, ITEMS>;
  constexpr int NT = Cfg::kThreads, LN = Cfg::kLanes, CB = Cfg::CB, IT = Cfg::ITEMS, TOK = Cfg::TOK, R = Cfg::R;
  constexpr int PER = Cfg::PER, BCPER = Cfg::BCPER, ROWS = NT / CB;  // ROWS: token rows per staging pass
  extern __shared__ __align__(16) float sm[];
  const int ds = int(p.d_state);
  float* A2s = sm;                 // (CB, ds)
  float* hcb = A2s + CB * ds;      // 2 x (CB, ds)
  float* dl = hcb + 2 * CB * ds;   // (CB, R)   16-byte aligned: 3 * CB * ds floats is a multiple of 4
  float* dxs = dl + CB * R;        // (CB, R)
  float* Bs = dxs + CB * R;        // (ds, R)
  float* Cs = Bs + ds * R;         // (ds, R)

  const int tid = threadIdx.x;
  const int64_t b = blockIdx.y, c0 = int64_t(blockIdx.x) * CB, di = p.d_inner, L = p.seqlen;
  const int nch = int(std::min<int64_t>(CB, di - c0));  // channels of this block that exist
  // stage / output role
  const int io_c = tid % CB, io_t = tid / CB;
  const bool io_ok = io_c < nch;
  const int64_t cio = c0 + io_c;
  // scan role: channel sc of the block, lane j with tokens j * IT .. j * IT + IT - 1 of the chunk
  const int sc = tid / LN, j = tid % LN;
  const int lane_off = j * (IT + 4);  // pad(j * IT)

  // Weights (never written by an earlier kernel) before the PDL wait.
  for (int i = tid; i < CB * ds; i += NT) A2s[i] = i / ds < nch ? p.A[c0 * ds + i] * kLog2e : 0.f;
  const float bias = io_ok && p.dt_bias ? p.dt_bias[cio] : 0.f;
  const float Dv = io_ok && p.D ? p.D[cio] : 0.f;
  pdl_wait();
  float* state = p.ssm_state + (b * di + c0) * ds;  // (nch, ds): this block's rows, contiguous
  for (int i = tid; i < CB * ds; i += NT) hcb[i] = i / ds < nch ? state[i] : 0.f;

  const T* xb = static_cast<const T*>(p.x) + b * p.x_batch_stride + cio;
  const T* dtb = static_cast<const T*>(p.dt) + b * p.dt_batch_stride + cio;
  const T* zb = p.z ? static_cast<const T*>(p.z) + b * p.z_batch_stride + cio : nullptr;
  T* yb = static_cast<T*>(p.y) + b * p.y_batch_stride + cio;
  const T* Bb = static_cast<const T*>(p.B) + b * p.B_batch_stride;
  const T* Cb = static_cast<const T*>(p.C) + b * p.C_batch_stride;
  const T zero = from_f<T>(0.f);
  const int bc_t0 = tid / ds, bc_n0 = tid % ds, bc_dt = NT / ds, bc_dn = NT % ds;  // B/C staging steps

  int par = 0;  // hc buffer holding the state entering the chunk
  for (int64_t t0 = 0; t0 < L; t0 += TOK, par ^= 1) {
    const int nv = int(std::min<int64_t>(TOK, L - t0));  // tokens of the chunk that exist
    {  // stage: delta, delta * x per (token, channel); B, C per (token, state). Padding: delta = B = C = 0.
      T rx[PER], rdt[PER];
#pragma unroll
      for (int k = 0; k < PER; ++k) {
        const int t = io_t + k * ROWS;
        const bool ok = io_ok && t < nv;
        rx[k] = ok ? xb[(t0 + t) * p.x_token_stride] : zero;
        rdt[k] = ok ? dtb[(t0 + t) * p.dt_token_stride] : zero;
      }
#pragma unroll
      for (int k = 0; k < PER; ++k) {
        const int t = io_t + k * ROWS;
        const float delta = io_ok && t < nv ? softplus(to_f(rdt[k]) + bias) : 0.f;
        dl[io_c * R + Cfg::pad(t)] = delta;
        dxs[io_c * R + Cfg::pad(t)] = delta * to_f(rx[k]);
      }
      // B, C in groups of BCG pairs per thread (registers: the loads of a group are in flight together). Pair
      // i = tid + k * NT is (token i / ds, state i % ds), stepped without divisions.
      constexpr int BCG = BCPER < 8 ? BCPER : 8;
      int bt = bc_t0, bn = bc_n0;
#pragma unroll 1
      for (int k0 = 0; k0 < BCPER; k0 += BCG) {
        T rB[BCG], rC[BCG];
        int tt = bt, nn = bn;
#pragma unroll
        for (int k = 0; k < BCG; ++k) {
          const bool ok = tt < nv;  // also false past the chunk (tt >= TOK), i.e. for i >= TOK * ds
          rB[k] = ok ? Bb[(t0 + tt) * p.B_token_stride + nn] : zero;
          rC[k] = ok ? Cb[(t0 + tt) * p.C_token_stride + nn] : zero;
          tt += bc_dt; nn += bc_dn;
          if (nn >= ds) { nn -= ds; ++tt; }
        }
#pragma unroll
        for (int k = 0; k < BCG; ++k) {
          if (bt < TOK) {
            Bs[bn * R + Cfg::pad(bt)] = to_f(rB[k]);
            Cs[bn * R + Cfg::pad(bt)] = to_f(rC[k]);
          }
          bt += bc_dt; bn += bc_dn;
          if (bn >= ds) { bn -= ds; ++bt; }
        }
      }
    }
    __syncthreads();
    {  // scan: lane j of channel sc over its IT tokens, every state
      const float* hin = hcb + par * CB * ds + sc * ds;
      float* hout = hcb + (par ^ 1) * CB * ds + sc * ds;
      float dlt[IT], dx[IT], y[IT];
      float* drow = dl + sc * R + lane_off;
#pragma unroll
      for (int i = 0; i < IT; i += 4) {
        const float4 u = *reinterpret_cast<const float4*>(drow + i);
        const float4 v = *reinterpret_cast<const float4*>(dxs + sc * R + lane_off + i);
        dlt[i] = u.x; dlt[i + 1] = u.y; dlt[i + 2] = u.z; dlt[i + 3] = u.w;
        dx[i] = v.x; dx[i + 1] = v.y; dx[i + 2] = v.z; dx[i + 3] = v.w;
      }
      float sumd = 0.f;
#pragma unroll
      for (int i = 0; i < IT; ++i) { sumd += dlt[i]; y[i] = 0.f; }
      for (int n = 0; n < ds; ++n) {
        const float A2 = A2s[sc * ds + n], h0 = hin[n];
        const float* brow = Bs + n * R + lane_off;
        const float* crow = Cs + n * R + lane_off;
        float a[IT], bb[IT];
        float bl = 0.f;
#pragma unroll
        for (int i = 0; i < IT; i += 4) {  // pass 1
          const float4 B4 = *reinterpret_cast<const float4*>(brow + i);
          const float Bv[4] = {B4.x, B4.y, B4.z, B4.w};
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            a[i + u] = ex2_fast(dlt[i + u] * A2);
            bb[i + u] = dx[i + u] * Bv[u];
            bl = fmaf(a[i + u], bl, bb[i + u]);
          }
        }
        float al = ex2_fast(sumd * A2);
#pragma unroll
        for (int off = 1; off < LN; off <<= 1) {  // inclusive scan over the channel's 16 lanes
          const float ap = __shfl_up_sync(0xffffffffu, al, off, LN);
          const float bp = __shfl_up_sync(0xffffffffu, bl, off, LN);
          if (j >= off) {
            bl = fmaf(al, bp, bl);
            al *= ap;
          }
        }
        const float ap = __shfl_up_sync(0xffffffffu, al, 1, LN);
        const float bp = __shfl_up_sync(0xffffffffu, bl, 1, LN);
        float h = j == 0 ? h0 : fmaf(ap, h0, bp);  // state entering this lane's first token
        if (j == LN - 1) hout[n] = fmaf(al, h0, bl);
#pragma unroll
        for (int i = 0; i < IT; i += 4) {  // pass 2
          const float4 C4 = *reinterpret_cast<const float4*>(crow + i);
          const float Cv[4] = {C4.x, C4.y, C4.z, C4.w};
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            h = fmaf(a[i + u], h, bb[i + u]);
            y[i + u] = fmaf(Cv[u], h, y[i + u]);
          }
        }
      }
#pragma unroll
      for (int i = 0; i < IT; i += 4) *reinterpret_cast<float4*>(drow + i) = make_float4(y[i], y[i + 1], y[i + 2], y[i + 3]);
    }
    __syncthreads();
    {  // output: y = (h . C + D x) * silu(z), over adjacent channels
      T rx[PER], rz[PER];
#pragma unroll
      for (int k = 0; k < PER; ++k) {
        const int t = io_t + k * ROWS;
        const bool ok = io_ok && t < nv;
        rx[k] = ok ? xb[(t0 + t) * p.x_token_stride] : zero;
        rz[k] = ok && zb ? zb[(t0 + t) * p.z_token_stride] : zero;
      }
#pragma unroll
      for (int k = 0; k < PER; ++k) {
        const int t = io_t + k * ROWS;
        if (io_ok && t < nv) {
          const float yv = dl[io_c * R + Cfg::pad(t)] + Dv * to_f(rx[k]);
          yb[(t0 + t) * p.y_token_stride] = from_f<T>(zb ? yv * silu_fast(to_f(rz[k])) : yv);
        }
      }
    }
  }
  // The state after the last chunk (written by the last lanes before the final barrier of the loop).
  const float* hfin = hcb + par * CB * ds;
  for (int i = tid; i < nch * ds; i += NT) state[i] = hfin[i];
}

template <typename T, int MAXS, int LANES = 16, int IT = 8>
void launch_chunked(const ScanParams& p, cudaStream_t stream) {
  using Cfg = ChunkCfg<MAXS, LANES, IT>;
  auto kernel = scan_chunked_kernel<T, MAXS, LANES, IT>;
  const size_t smem = Cfg::smem_bytes(int(p.d_state));
  if (smem > (size_t(48) << 10))  // beyond the default 48 KB per block: opt in
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  // All of the unified L1 / shared memory as shared memory: the occupancy (5 blocks of ~38 KB per SM at d_state 16)
  // depends on it, and the kernel reads no global data twice.
  MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                          int(cudaSharedmemCarveoutMaxShared)));
  dim3 grid(unsigned((p.d_inner + Cfg::CB - 1) / Cfg::CB), unsigned(p.batch));
  launch(kernel, grid, dim3(Cfg::kThreads), smem, stream, p);
  MAMBART_CUDA_CHECK_LAUNCH("scan_chunked");
}

// MAMBART_SCAN_CHUNK=32x4 or 8x16 (lanes x tokens per lane): a measurement variant for d_state <= 16.
int chunk_variant() {
  const char* e = std::getenv("MAMBART_SCAN_CHUNK");
  if (!e) return 0;
  const std::string v = e;
  return v == "32x4" ? 1 : v == "8x16" ? 2 : 0;
}

}  // namespace

// Prefill (seqlen >= 1) through the chunked kernel; the caller has validated p (supports_scan).
void launch_scan_chunked(const ScanParams& p, cudaStream_t stream) {
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "scan",
    if (p.d_state <= 16 && chunk_variant() == 1) launch_chunked<T, 16, 32, 4>(p, stream);
    else if (p.d_state <= 16 && chunk_variant() == 2) launch_chunked<T, 16, 8, 16>(p, stream);
    else if (p.d_state <= 16) launch_chunked<T, 16>(p, stream);
    else if (p.d_state <= 32) launch_chunked<T, 32>(p, stream);
    else launch_chunked<T, 64>(p, stream));
}

}  // namespace cuda
}  // namespace mambart
