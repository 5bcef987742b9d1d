// Selective scan (prefill and decode), continuing from and updating ssm_state (batch, d_inner, d_state):
//   delta = softplus(dt + dt_bias);  h = exp(delta * A) * h + delta * B_t * x_t;  y_t = (h . C_t + D x_t) * silu(z_t)
// One thread per (batch, channel, sub-chunk of time) with the d_state loop in registers. With TY > 1 sub-chunks
// per channel the sequence is scanned in parallel over time:
//   pass 1: each sub-chunk scans from h = 0 and keeps its end state h_loc and sum(delta) in shared memory;
//   combine: sub-chunk j starts from h_j = exp(A * sum_delta_{j-1}) * h_{j-1} + h_loc_{j-1} (the decay over a
//            sub-chunk is exp(A * sum delta) since A is constant in time);
//   pass 2: each sub-chunk rescans from its true start state and writes y; the last one writes the state.
// MAXS (>= d_state) is a template parameter: 16, 32 or 64.
#include <algorithm>

#include "common.cuh"
#include "kernels.h"

namespace mambart {
namespace cuda {

// Loads B_t or C_t (d_state values) as floats: 16-byte loads when VEC (row 16-byte aligned, d_state a multiple
// of 16 / sizeof(T)), else scalar loads.
template <typename T, int MAXS, bool VEC>
__device__ __forceinline__ void load_row(const T* __restrict__ p, int ds, float (&out)[MAXS]) {
  if constexpr (VEC) {
    constexpr int PER = 16 / sizeof(T);
#pragma unroll
    for (int s0 = 0; s0 < MAXS; s0 += PER) {
      if (s0 < ds) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(p + s0));
        const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
        for (int i = 0; i < PER; ++i) out[s0 + i] = to_f(e[i]);
      } else {
#pragma unroll
        for (int i = 0; i < PER; ++i) out[s0 + i] = 0.f;
      }
    }
  } else {
#pragma unroll
    for (int s = 0; s < MAXS; ++s) out[s] = s < ds ? to_f(p[s]) : 0.f;
  }
}

// One token's inputs, loaded one step ahead of their use (software pipelining of the time loop).
template <int MAXS>
struct TokenIn {
  float x, dt, z;
  float B[MAXS], C[MAXS];
};

// Threads per block (channels x sub-chunks): 512 for d_state <= 16 (128 registers), fewer for larger states.
template <int MAXS>
constexpr int scan_threads() { return MAXS <= 16 ? 512 : MAXS <= 32 ? 256 : 128; }

template <typename T, int MAXS, bool VEC>
__global__ void __launch_bounds__(scan_threads<MAXS>(), 1) scan_kernel(ScanParams p, int sub_len) {
  pdl_wait();
  extern __shared__ float sm[];  // TY > 1: h_loc (TY, MAXS, CB), sum_delta (TY, CB)
  const int tx = threadIdx.x, ty = threadIdx.y, CB = blockDim.x, TY = blockDim.y;
  const int64_t c = int64_t(blockIdx.x) * CB + tx;
  const int64_t b = blockIdx.y;
  const bool active = c < p.d_inner;
  const int64_t cc = active ? c : 0;  // inactive threads load channel 0 and write nothing
  const int ds = int(p.d_state);
  float* h_loc = sm;
  float* sum_delta = sm + size_t(TY) * MAXS * CB;

  float A[MAXS], h[MAXS];
#pragma unroll
  for (int s = 0; s < MAXS; ++s) A[s] = s < ds ? p.A[cc * ds + s] : 0.f;
  const float bias = p.dt_bias ? p.dt_bias[cc] : 0.f;
  const float Dv = p.D ? p.D[cc] : 0.f;
  const int64_t t0 = int64_t(ty) * sub_len;
  const int64_t t1 = min(p.seqlen, t0 + sub_len);
  const T* x = static_cast<const T*>(p.x) + b * p.x_batch_stride + cc;
  const T* dt = static_cast<const T*>(p.dt) + b * p.dt_batch_stride + cc;
  const T* Bm = static_cast<const T*>(p.B) + b * p.B_batch_stride;
  const T* Cm = static_cast<const T*>(p.C) + b * p.C_batch_stride;
  const T* z = p.z ? static_cast<const T*>(p.z) + b * p.z_batch_stride + cc : nullptr;
  T* y = static_cast<T*>(p.y) + b * p.y_batch_stride + c;

  TokenIn<MAXS> in;
  auto load = [&](int64_t t, bool with_c) {
    in.x = to_f(x[t * p.x_token_stride]);
    in.dt = to_f(dt[t * p.dt_token_stride]);
    load_row<T, MAXS, VEC>(Bm + t * p.B_token_stride, ds, in.B);
    if (with_c) {
      load_row<T, MAXS, VEC>(Cm + t * p.C_token_stride, ds, in.C);
      in.z = z ? to_f(z[t * p.z_token_stride]) : 0.f;
    }
  };

  if (TY > 1) {  // pass 1: local scan from h = 0
#pragma unroll
    for (int s = 0; s < MAXS; ++s) h[s] = 0.f;
    float sd = 0.f;
    if (t0 < t1) load(t0, false);
    for (int64_t t = t0; t < t1; ++t) {
      const float delta = softplus(in.dt + bias);
      const float dx = delta * in.x;
      float Bt[MAXS];
#pragma unroll
      for (int s = 0; s < MAXS; ++s) Bt[s] = in.B[s];
      if (t + 1 < t1) load(t + 1, false);
      sd += delta;
#pragma unroll
      for (int s = 0; s < MAXS; ++s) h[s] = __expf(delta * A[s]) * h[s] + dx * Bt[s];
    }
#pragma unroll
    for (int s = 0; s < MAXS; ++s) h_loc[(ty * MAXS + s) * CB + tx] = h[s];
    sum_delta[ty * CB + tx] = sd;
  }
  float* st = p.ssm_state + (b * p.d_inner + cc) * ds;
#pragma unroll
  for (int s = 0; s < MAXS; ++s) h[s] = s < ds ? st[s] : 0.f;
  __syncthreads();  // every sub-chunk has read the state (and h_loc is complete) before the last one writes it
  if (!active) return;
  for (int j = 0; j < ty; ++j) {
    const float sdj = sum_delta[j * CB + tx];
#pragma unroll
    for (int s = 0; s < MAXS; ++s)
      if (s < ds) h[s] = __expf(A[s] * sdj) * h[s] + h_loc[(j * MAXS + s) * CB + tx];
  }
  if (t0 < t1) load(t0, true);
  for (int64_t t = t0; t < t1; ++t) {  // pass 2
    const TokenIn<MAXS> cur = in;
    if (t + 1 < t1) load(t + 1, true);
    const float delta = softplus(cur.dt + bias);
    const float dx = delta * cur.x;
    float acc = 0.f;
#pragma unroll
    for (int s = 0; s < MAXS; ++s) {
      h[s] = __expf(delta * A[s]) * h[s] + dx * cur.B[s];  // padded states stay 0 (A = B = 0)
      acc += h[s] * cur.C[s];
    }
    float out = acc + Dv * cur.x;
    if (z) out *= silu(cur.z);
    y[t * p.y_token_stride] = from_f<T>(out);
  }
  if (ty == TY - 1) {
#pragma unroll
    for (int s = 0; s < MAXS; ++s)
      if (s < ds) st[s] = h[s];
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
  float4* st = reinterpret_cast<float4*>(p.ssm_state + (b * p.d_inner + cc) * DS);
  const float4* A4 = reinterpret_cast<const float4*>(p.A + cc * DS);
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < NQ; ++j) {
    const int i4 = j * 4 + q, s = i4 * 4;
    float4 h = st[i4];
    const float4 a = __ldg(A4 + i4);
    h.x = __expf(delta * a.x) * h.x + dx * to_f(Bt[s + 0]);
    h.y = __expf(delta * a.y) * h.y + dx * to_f(Bt[s + 1]);
    h.z = __expf(delta * a.z) * h.z + dx * to_f(Bt[s + 2]);
    h.w = __expf(delta * a.w) * h.w + dx * to_f(Bt[s + 3]);
    acc += h.x * to_f(Ct[s + 0]) + h.y * to_f(Ct[s + 1]) + h.z * to_f(Ct[s + 2]) + h.w * to_f(Ct[s + 3]);
    if (active) st[i4] = h;
  }
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
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

template <typename T, int MAXS>
static void launch_scan_s(const ScanParams& p, int num_sms, cudaStream_t stream) {
  // Sub-chunks per channel (time parallelism): up to 32, each at least 16 tokens long, fewer when the batch
  // already gives enough threads. Shared memory: threads * (MAXS + 1) floats (<= 35 KB).
  constexpr int threads = scan_threads<MAXS>();
  int ty = 1;
  while (ty < 32 && threads / (2 * ty) >= 16 && p.seqlen / (2 * ty) >= 16) ty *= 2;
  const int64_t resident = int64_t(num_sms) * 1024;
  while (ty > 1 && p.batch * p.d_inner * (ty / 2) >= 2 * resident) ty /= 2;
  const int cb = ty == 1 ? 128 : threads / ty;
  const int sub_len = int((p.seqlen + ty - 1) / ty);
  const size_t smem = ty > 1 ? size_t(ty) * (MAXS + 1) * cb * sizeof(float) : 0;
  dim3 grid(unsigned((p.d_inner + cb - 1) / cb), unsigned(p.batch));
  constexpr int per = 16 / sizeof(T);
  auto al = [](const void* q, int64_t stride) {
    return reinterpret_cast<uintptr_t>(q) % 16 == 0 && (stride * int64_t(sizeof(T))) % 16 == 0;
  };
  const bool vec = p.d_state % per == 0 && al(p.B, p.B_token_stride) && al(p.C, p.C_token_stride) &&
                   al(p.B, p.B_batch_stride) && al(p.C, p.C_batch_stride);
  if (vec) launch(scan_kernel<T, MAXS, true>, grid, dim3(cb, ty), smem, stream, p, sub_len);
  else launch(scan_kernel<T, MAXS, false>, grid, dim3(cb, ty), smem, stream, p, sub_len);
  MAMBART_CUDA_CHECK_LAUNCH("scan");
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
