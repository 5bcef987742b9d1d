// Batched decode (9..256 rows, decode_batch.cpp): dt_proj and the scan step in one kernel.
//   dt = dt_proj(xdbl[:, :dt_rank]) rounded to T;  delta = softplus(dt + dt_bias)          (batch, d_inner)
//   h = exp(delta A) h + delta x B;  y = (h . C + D x) silu(z)                              (batch, d_inner)
// with xdbl the fp32 sums of conv_xproj (rounded to T here, where the composed ops store them). A block owns CH = 32
// channels x RB = 16 batch rows, 128 threads: 4 lanes a channel holding float4 pieces of its state
// (scan_update_4lanes), a warp = 8 channels, so a row's states of a warp are 512 contiguous bytes.
//  - dt_proj: the block's dt tile (RB x CH) = xdbl[rows, :dt_rank] (RB x dt_rank) dt_proj[channels]^T is one
//    m16n8k16 tile product per warp (its own 8 channels) over dt_rank. The weight rows (CH x dt_rank, 10 KB at 2.8b)
//    are read once per block into shared memory (cp.async, before pdl_wait) instead of once per (row, channel) pair
//    as in scan_step_kernel: 4 row blocks x 1.6 MB of L2 traffic at batch 64 instead of 64 x 1.6 MB.
//  - The state (the traffic: 2 x 21 MB at 2.8b, batch 64) is read U rows at a time, all loads of a chunk in flight
//    together; the first chunk is issued before the xdbl staging and the dt product, so they hide behind it.
#include "common.cuh"
#include "kernels.h"
#include "step_ops.cuh"
#include "tile_ops.cuh"

namespace mambart {
namespace cuda {

namespace {

constexpr int kSbThreads = 128;
constexpr int kSbCh = kSbThreads / 4;  // CH: channels of a block
constexpr int kSbRows = 16;            // RB: batch rows of a block (one mma m-tile)

// Shared memory of a block (byte offsets; every part 16-byte aligned): the dt_proj rows of the channels
// (CH, ld) T and the dt part of the rows' xdbl (RB, ld) T, ld = tile_ld(dt_rank rounded up to 16), zero-padded: the
// product's b and a; B | C of the rows (RB, 2 d_state) fp32; dt (RB, CH) fp32.
struct SbLayout {
  int r16, ld;
  size_t wdt, xdt, bc, dt, bytes;
};
__host__ __device__ inline SbLayout sb_layout(int dt_rank, int d_state, int es) {
  SbLayout L;
  L.r16 = (dt_rank + 15) / 16 * 16;
  L.ld = tile_ld(L.r16);
  L.wdt = 0;
  L.xdt = L.wdt + size_t(kSbCh) * L.ld * es;
  L.bc = L.xdt + size_t(kSbRows) * L.ld * es;
  L.dt = L.bc + size_t(kSbRows) * 2 * d_state * sizeof(float);
  L.bytes = L.dt + size_t(kSbRows) * kSbCh * sizeof(float);
  return L;
}

// grid (ceil(d_inner / CH), ceil(batch / RB)); d_state = 16 NQ. vec_w: dt_proj rows 16-byte aligned.
template <typename T, int NQ>
__global__ void __launch_bounds__(kSbThreads, 4) scan_batch_kernel(ScanBatchArgs a, int vec_w, int early) {
  constexpr int CH = kSbCh, RB = kSbRows, DS = 16 * NQ;
  constexpr int U = NQ == 1 ? 8 : NQ == 2 ? 4 : 2;  // rows of a chunk: 8 float4 of state in flight per thread
  MAMBART_DYNAMIC_SMEM(unsigned char, sb_smem);
  const int r = a.dt_rank, nx = r + 2 * DS, di = a.d_inner;
  const SbLayout L = sb_layout(r, DS, int(sizeof(T)));
  const int ld = L.ld;
  T* wdt = reinterpret_cast<T*>(sb_smem + L.wdt);
  T* xdt = reinterpret_cast<T*>(sb_smem + L.xdt);
  float* bc = reinterpret_cast<float*>(sb_smem + L.bc);
  float* dts = reinterpret_cast<float*>(sb_smem + L.dt);
  const int tid = int(threadIdx.x);
  const int c0 = int(blockIdx.x) * CH, m0 = int(blockIdx.y) * RB;
  const int nch = min(CH, di - c0), nrows = min(RB, a.batch - m0);

  // Weights before the PDL wait: dt_proj rows in flight to shared memory; A, dt_bias, D of this lane's channel.
  stage_tile(wdt, ld, static_cast<const T*>(a.dt_w) + int64_t(c0) * r, r, nch, r, CH, L.r16, vec_w != 0);
  const int cl = tid / 4, q = tid % 4;
  const bool active = cl < nch;
  const int64_t c = c0 + (active ? cl : nch - 1);  // inactive lanes compute on a valid channel, store nothing
  float4 Ar[NQ];
  const float4* A4 = reinterpret_cast<const float4*>(a.A + c * DS);
#pragma unroll
  for (int j = 0; j < NQ; ++j) Ar[j] = __ldg(A4 + j * 4 + q);
  const float bias = a.dt_bias ? __ldg(a.dt_bias + c) : 0.f;
  const float Dv = a.D ? __ldg(a.D + c) : 0.f;
  pdl_wait();
  if (early) pdl_trigger();

  // State, x and z of rows i0 .. i0 + U - 1 (all loads issued together).
  const T* xg = static_cast<const T*>(a.x);
  const T* zg = static_cast<const T*>(a.z);
  float4 h[U][NQ];
  float xv[U], zv[U];
  auto load_rows = [&](int i0) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int i = i0 + u;
      const bool ok = active && i < nrows;
      const int64_t row = m0 + i;
      const float4* st = reinterpret_cast<const float4*>(a.ssm_state + (row * di + c) * DS);
#pragma unroll
      for (int j = 0; j < NQ; ++j) h[u][j] = ok ? st[j * 4 + q] : make_float4(0.f, 0.f, 0.f, 0.f);
      xv[u] = ok ? to_f(xg[row * di + c]) : 0.f;
      zv[u] = ok ? to_f(zg[row * a.z_stride + c]) : 0.f;
    }
  };
  load_rows(0);

  // xdbl of the rows into shared memory, rounded to T (zeros outside): the dt part as the product's a, B | C as fp32.
  // Loads in groups of 8 per thread, all in flight before their stores.
  const float* xd = a.xdbl + int64_t(m0) * nx;
  auto stage = [&](int total, auto&& load, auto&& store) {
    for (int base = tid; base < total; base += 8 * kSbThreads) {
      float v[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = base + e * kSbThreads < total ? load(base + e * kSbThreads) : 0.f;
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (base + e * kSbThreads < total) store(base + e * kSbThreads, v[e]);
    }
  };
  stage(RB * L.r16,
        [&](int i) { const int m = i / L.r16, k = i % L.r16; return m < nrows && k < r ? __ldcg(xd + m * nx + k) : 0.f; },
        [&](int i, float v) { xdt[(i / L.r16) * ld + i % L.r16] = from_f<T>(v); });
  stage(RB * 2 * DS,
        [&](int i) { const int m = i / (2 * DS); return m < nrows ? __ldcg(xd + m * nx + r + i % (2 * DS)) : 0.f; },
        [&](int i, float v) { bc[i] = to_f(from_f<T>(v)); });
  cp_async_wait_all();
  __syncthreads();

  // dt (RB x CH): warp w computes the tile of channels [8 w, 8 w + 8), the ones its lanes scan.
  {
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    mma_16x8<T>(d, xdt, ld, wdt + warp * 8 * ld, ld, L.r16);
    float* o = dts + warp * 8 + 2 * t;
    o[g * CH] = to_f(from_f<T>(d[0]));
    o[g * CH + 1] = to_f(from_f<T>(d[1]));
    o[(g + 8) * CH] = to_f(from_f<T>(d[2]));
    o[(g + 8) * CH + 1] = to_f(from_f<T>(d[3]));
  }
  __syncwarp();  // the dt tile of a warp is read by the same warp only

  T* yg = static_cast<T*>(a.y);
  for (int i0 = 0; i0 < nrows; i0 += U) {  // nrows is uniform over the block: the 4-lane shuffles see every lane
    if (i0 > 0) load_rows(i0);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int i = i0 + u;
      if (i < nrows) {
        const float delta = softplus(dts[i * CH + cl] + bias);
        const float* Bt = bc + i * 2 * DS;
        const float acc = scan_update_4lanes(delta, delta * xv[u], Ar, h[u], Bt, Bt + DS, q);
        if (active) {
          const int64_t row = m0 + i;
          float4* st = reinterpret_cast<float4*>(a.ssm_state + (row * di + c) * DS);
#pragma unroll
          for (int j = 0; j < NQ; ++j) st[j * 4 + q] = h[u][j];
          if (q == 0) yg[row * di + c] = from_f<T>((acc + Dv * xv[u]) * silu(zv[u]));
        }
      }
    }
  }
}

template <typename T, int NQ>
void launch_sb(const ScanBatchArgs& a, cudaStream_t stream) {
  const size_t smem = sb_layout(a.dt_rank, a.d_state, int(sizeof(T))).bytes;
  auto kernel = scan_batch_kernel<T, NQ>;
  if (smem > (size_t(48) << 10))  // beyond the default 48 KB per block (dt_rank > ~560 in fp16): opt in
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int vec_w = (int64_t(a.dt_rank) * int64_t(sizeof(T))) % 16 == 0 && reinterpret_cast<uintptr_t>(a.dt_w) % 16 == 0;
  const dim3 grid(unsigned((a.d_inner + kSbCh - 1) / kSbCh), unsigned((a.batch + kSbRows - 1) / kSbRows));
  launch(kernel, grid, dim3(kSbThreads), smem, stream, a, vec_w, pdl_early() ? 1 : 0);
  MAMBART_CUDA_CHECK_LAUNCH("scan_batch");
}

template <typename T>
void launch_sb_ds(const ScanBatchArgs& a, cudaStream_t stream) {
  switch (a.d_state / 16) {
    case 1: launch_sb<T, 1>(a, stream); break;
    case 2: launch_sb<T, 2>(a, stream); break;
    case 3: launch_sb<T, 3>(a, stream); break;
    case 4: launch_sb<T, 4>(a, stream); break;
    default: throw_unsupported("scan_batch", str("d_state ", a.d_state, " not 16, 32, 48 or 64"));
  }
}

}  // namespace

size_t scan_batch_smem_bytes(int64_t dt_rank, int64_t d_state, DType act) {
  return sb_layout(int(dt_rank), int(d_state), int(dtype_size(act))).bytes;
}

void launch_scan_batch(const ScanBatchArgs& a, DType act, cudaStream_t stream) {
  if (a.batch == 0) return;
  MAMBART_DISPATCH_FLOAT(act, T, "scan_batch", launch_sb_ds<T>(a, stream));
}

}  // namespace cuda
}  // namespace mambart
