// Batched decode (9..256 rows, decode_batch.cpp): the conv step + SiLU and x_proj in one kernel.
//   xc = silu(conv_step(x, conv_state))   (batch, d_inner), conv_state updated
//   xdbl += xc x_proj^T                   (batch, nx) fp32, nx = dt_rank + 2 d_state, zeroed before
// A block owns KC channels x MR batch rows: it runs the conv step of its (row, channel) pairs (each pair has one
// owner: no race on conv_state), writes xc (the scan reads it) and keeps its tile, rounded to T as the composed ops
// store it, in shared memory; then the tile's partial x_proj product (MR x nx over its K slice of KC channels) on
// the tensor cores, added into xdbl by fp32 atomics. Why so (2.8b at batch 64: d_inner 5120, nx 192):
//  - The conv state (5 MB read + 5 MB written) is the bulk of the traffic; KC 64 x MR 16 gives 80 x 4 = 320 blocks.
//  - The reduction over the K slices: d_inner / KC * batch * nx = 983K fp32 adds (491K 8-byte atomics on sm_90),
//    absorbed by the L2 while other blocks still stream state; no second kernel and no partials buffer to reread.
//    A larger KC halves the atomics but also the blocks; a smaller MR does not reduce them (they scale with batch).
//    The price: the order of the fp32 sums varies from run to run (not bit-reproducible; the rounding to T that
//    follows hides it almost always).
//  - The x_proj slice of a block (nx x KC, 24 KB in fp16) is copied to shared memory by cp.async before pdl_wait
//    (weights: independent of the previous kernel), so it arrives during the previous kernel's tail and the conv step.
//  - The product (MR x nx x KC, 96 m16n8k16 mma per block) is negligible; fp32 runs it on the FP32 units.
#include "common.cuh"
#include "kernels.h"
#include "step_ops.cuh"
#include "tile_ops.cuh"

namespace mambart {
namespace cuda {

namespace {

template <typename T>
struct CxCfg {
  static constexpr int kThreads = 128;
  static constexpr int kRows = 16;                         // MR: one mma m-tile
  static constexpr int kCh = sizeof(T) == 2 ? 64 : 32;     // KC (fp32: half, the same shared memory)
  static constexpr int kLd = tile_ld(kCh);                 // shared row stride of both tiles
  static constexpr int kRowStep = kThreads / kCh;          // a thread's rows: r0, r0 + kRowStep, ...
  static constexpr int kRowsPerThread = kRows / kRowStep;
  static constexpr int kMaxConv = 4;                       // d_conv <= 4 (the state of a pair is one float4)
  static size_t smem_bytes(int64_t nx) { return size_t(kRows + (nx + 7) / 8 * 8) * kLd * sizeof(T); }
};

// xdbl[j], xdbl[j + 1] (the pointer is at j) += v0, v1 for columns j < nx. `pair` (sm_90: nx even, 8-byte aligned):
// one 8-byte atomic.
__device__ __forceinline__ void add_pair(float* p, int j, int nx, float v0, float v1, int pair) {
  if (j >= nx) return;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (pair) {
    atomicAdd(reinterpret_cast<float2*>(p), make_float2(v0, v1));
    return;
  }
#endif
  atomicAdd(p, v0);
  if (j + 1 < nx) atomicAdd(p + 1, v1);
}

// grid (ceil(d_inner / KC), ceil(batch / MR)). Thread tid: channel tid % KC of the rows r0 + i * kRowStep (a warp
// covers 32 consecutive channels of a row: coalesced x, xc and conv_state). vec_w: x_proj rows 16-byte aligned;
// vec_state: d_conv == 4 with an aligned state (one float4 a pair).
template <typename T>
__global__ void __launch_bounds__(CxCfg<T>::kThreads) conv_xproj_kernel(ConvXprojArgs a, int vec_w, int vec_state,
                                                                         int pair, int early) {
  using Cfg = CxCfg<T>;
  constexpr int KC = Cfg::kCh, MR = Cfg::kRows, LD = Cfg::kLd, NC = Cfg::kMaxConv, RPT = Cfg::kRowsPerThread;
  MAMBART_DYNAMIC_SMEM(unsigned char, cx_smem);
  T* xs = reinterpret_cast<T*>(cx_smem);  // (MR, LD): xc of the tile, the mma's a
  T* ws = xs + MR * LD;                   // (nx8, LD): x_proj[:, c0 : c0 + KC], the mma's b
  const int tid = int(threadIdx.x);
  const int c0 = int(blockIdx.x) * KC, m0 = int(blockIdx.y) * MR;
  const int di = a.d_inner, dc = a.d_conv, nx = a.nx, nx8 = (nx + 7) / 8 * 8;
  const int ncols = min(KC, di - c0), nrows = min(MR, a.batch - m0);

  // Weights (never written by an earlier kernel) before the PDL wait: the x_proj slice in flight to shared memory,
  // the conv taps of this thread's channel in registers.
  stage_tile(ws, LD, static_cast<const T*>(a.w) + c0, di, nx, ncols, nx8, KC, vec_w != 0);
  const int cl = tid % KC, r0 = tid / KC;
  const bool cok = cl < ncols;
  const int64_t c = c0 + cl;
  float wk[NC];
#pragma unroll
  for (int k = 0; k < NC; ++k) wk[k] = cok && k < dc ? __ldg(a.conv_w + c * dc + k) : 0.f;
  const float cb = cok && a.conv_b ? __ldg(a.conv_b + c) : 0.f;
  pdl_wait();
  if (early) pdl_trigger();

  // Conv step + SiLU of this thread's pairs: every load first (one memory round trip), then compute and store.
  const T* x = static_cast<const T*>(a.x);
  float st[RPT][NC], xv[RPT];
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    const int m = r0 + i * Cfg::kRowStep;
    const bool ok = cok && m < nrows;
    const float* sp = a.conv_state + ((m0 + m) * int64_t(di) + c) * dc;
    if (ok && vec_state) {
      const float4 v = *reinterpret_cast<const float4*>(sp);
      st[i][0] = v.x; st[i][1] = v.y; st[i][2] = v.z; st[i][3] = v.w;
    } else {
#pragma unroll
      for (int k = 0; k < NC; ++k) st[i][k] = ok && k < dc ? sp[k] : 0.f;
    }
    xv[i] = ok ? to_f(x[(m0 + m) * a.x_stride + c]) : 0.f;
  }
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    const int m = r0 + i * Cfg::kRowStep;
    T v = from_f<T>(0.f);  // rows and channels outside the tile: zeros in the product
    if (cok && m < nrows) {
      v = from_f<T>(conv_step_regs<T>(st[i], wk, cb, dc, xv[i]));
      float* sp = a.conv_state + ((m0 + m) * int64_t(di) + c) * dc;
      if (vec_state) {
        *reinterpret_cast<float4*>(sp) = make_float4(st[i][0], st[i][1], st[i][2], st[i][3]);
      } else {
#pragma unroll
        for (int k = 0; k < NC; ++k)
          if (k < dc) sp[k] = st[i][k];
      }
      static_cast<T*>(a.xc)[(m0 + m) * int64_t(di) + c] = v;
    }
    xs[m * LD + cl] = v;
  }
  cp_async_wait_all();
  __syncthreads();

  // Partial x_proj of the slice: warp w takes the 8-column tiles w, w + 4, ... of xdbl.
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  for (int n0 = warp * 8; n0 < nx8; n0 += Cfg::kThreads / 32 * 8) {
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    mma_16x8<T>(acc, xs, LD, ws + n0 * LD, LD, KC);
    const int j = n0 + 2 * t;
    if (g < nrows) add_pair(a.xdbl + (m0 + g) * int64_t(nx) + j, j, nx, acc[0], acc[1], pair);
    if (g + 8 < nrows) add_pair(a.xdbl + (m0 + g + 8) * int64_t(nx) + j, j, nx, acc[2], acc[3], pair);
  }
}

template <typename T>
void launch_cx(const ConvXprojArgs& a, cudaStream_t stream) {
  using Cfg = CxCfg<T>;
  const size_t smem = Cfg::smem_bytes(a.nx);
  auto kernel = conv_xproj_kernel<T>;
  if (smem > (size_t(48) << 10))  // beyond the default 48 KB per block (nx > ~330 in fp16): opt in
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  auto aligned = [](const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; };
  const int vec_w = (int64_t(a.d_inner) * int64_t(sizeof(T))) % 16 == 0 && aligned(a.w, 16);
  const int vec_state = a.d_conv == 4 && aligned(a.conv_state, 16);
  const int pair = a.nx % 2 == 0 && aligned(a.xdbl, 8);
  const dim3 grid(unsigned((a.d_inner + Cfg::kCh - 1) / Cfg::kCh), unsigned((a.batch + Cfg::kRows - 1) / Cfg::kRows));
  launch(kernel, grid, dim3(Cfg::kThreads), smem, stream, a, vec_w, vec_state, pair, pdl_early() ? 1 : 0);
  MAMBART_CUDA_CHECK_LAUNCH("conv_xproj");
}

}  // namespace

size_t conv_xproj_smem_bytes(int64_t nx, DType act) {
  size_t bytes = 0;
  MAMBART_DISPATCH_FLOAT(act, T, "conv_xproj", bytes = CxCfg<T>::smem_bytes(nx));
  return bytes;
}

void launch_conv_xproj(const ConvXprojArgs& a, DType act, cudaStream_t stream) {
  if (a.batch == 0) return;
  MAMBART_DISPATCH_FLOAT(act, T, "conv_xproj", launch_cx<T>(a, stream));
}

}  // namespace cuda
}  // namespace mambart
