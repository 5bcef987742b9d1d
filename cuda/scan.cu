// Selective scan (prefill and decode), continuing from and updating ssm_state (batch, d_inner, d_state):
//   delta = softplus(dt + dt_bias);  h = exp(delta * A) * h + delta * B_t * x_t;  y_t = (h . C_t + D x_t) * silu(z_t)
// One thread per (batch, channel, sub-chunk of time) with the d_state loop in registers. With TY > 1 sub-chunks
// per channel the sequence is scanned in parallel over time:
//   pass 1: each sub-chunk scans from h = 0 and keeps its end state h_loc and sum(delta) in shared memory;
//   combine: sub-chunk j starts from h_j = exp(A * sum_delta_{j-1}) * h_{j-1} + h_loc_{j-1} (the decay over a
//            sub-chunk is exp(A * sum delta) since A is constant in time);
//   pass 2: each sub-chunk rescans from its true start state and writes y; the last one writes the state.
// MAXS (>= d_state) is a template parameter: 16, 32 or 64.
#include "common.cuh"
#include "kernels.h"

namespace mambart {
namespace cuda {

template <typename T, int MAXS>
__global__ void scan_kernel(ScanParams p, int sub_len) {
  extern __shared__ float sm[];  // TY > 1: h_loc (TY, MAXS, CB), sum_delta (TY, CB)
  const int tx = threadIdx.x, ty = threadIdx.y, CB = blockDim.x, TY = blockDim.y;
  const int64_t c = int64_t(blockIdx.x) * CB + tx;
  const int64_t b = blockIdx.y;
  const bool active = c < p.d_inner;
  const int ds = int(p.d_state);
  float* h_loc = sm;
  float* sum_delta = sm + size_t(TY) * MAXS * CB;

  float A[MAXS], h[MAXS];
#pragma unroll
  for (int s = 0; s < MAXS; ++s) A[s] = (active && s < ds) ? p.A[c * ds + s] : 0.f;
  const float bias = (active && p.dt_bias) ? p.dt_bias[c] : 0.f;
  const float Dv = (active && p.D) ? p.D[c] : 0.f;
  const int64_t t0 = int64_t(ty) * sub_len;
  const int64_t t1 = min(p.seqlen, t0 + sub_len);
  const T* x = static_cast<const T*>(p.x) + b * p.x_batch_stride + c;
  const T* dt = static_cast<const T*>(p.dt) + b * p.dt_batch_stride + c;
  const T* Bm = static_cast<const T*>(p.B) + b * p.B_batch_stride;
  const T* Cm = static_cast<const T*>(p.C) + b * p.C_batch_stride;
  const T* z = p.z ? static_cast<const T*>(p.z) + b * p.z_batch_stride + c : nullptr;
  T* y = static_cast<T*>(p.y) + b * p.y_batch_stride + c;

  if (TY > 1) {  // pass 1
#pragma unroll
    for (int s = 0; s < MAXS; ++s) h[s] = 0.f;
    float sd = 0.f;
    if (active) {
      for (int64_t t = t0; t < t1; ++t) {
        const float delta = softplus(to_f(dt[t * p.dt_token_stride]) + bias);
        const float dx = delta * to_f(x[t * p.x_token_stride]);
        const T* Bt = Bm + t * p.B_token_stride;
        sd += delta;
#pragma unroll
        for (int s = 0; s < MAXS; ++s)
          if (s < ds) h[s] = __expf(delta * A[s]) * h[s] + dx * to_f(Bt[s]);
      }
    }
#pragma unroll
    for (int s = 0; s < MAXS; ++s) h_loc[(ty * MAXS + s) * CB + tx] = h[s];
    sum_delta[ty * CB + tx] = sd;
  }
  float* st = p.ssm_state + (b * p.d_inner + c) * ds;
#pragma unroll
  for (int s = 0; s < MAXS; ++s) h[s] = (active && s < ds) ? st[s] : 0.f;
  __syncthreads();  // every sub-chunk has read the state (and h_loc is complete) before the last one writes it
  if (!active) return;
  for (int j = 0; j < ty; ++j) {
    const float sdj = sum_delta[j * CB + tx];
#pragma unroll
    for (int s = 0; s < MAXS; ++s)
      if (s < ds) h[s] = __expf(A[s] * sdj) * h[s] + h_loc[(j * MAXS + s) * CB + tx];
  }
  for (int64_t t = t0; t < t1; ++t) {  // pass 2
    const float delta = softplus(to_f(dt[t * p.dt_token_stride]) + bias);
    const float xv = to_f(x[t * p.x_token_stride]);
    const float dx = delta * xv;
    const T* Bt = Bm + t * p.B_token_stride;
    const T* Ct = Cm + t * p.C_token_stride;
    float acc = 0.f;
#pragma unroll
    for (int s = 0; s < MAXS; ++s) {
      if (s < ds) {
        h[s] = __expf(delta * A[s]) * h[s] + dx * to_f(Bt[s]);
        acc += h[s] * to_f(Ct[s]);
      }
    }
    float out = acc + Dv * xv;
    if (z) out *= silu(to_f(z[t * p.z_token_stride]));
    y[t * p.y_token_stride] = from_f<T>(out);
  }
  if (ty == TY - 1) {
#pragma unroll
    for (int s = 0; s < MAXS; ++s)
      if (s < ds) st[s] = h[s];
  }
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
  const int max_ty = 256 / MAXS;  // keeps h_loc within ~34 KB of shared memory
  int ty = 1;
  while (ty < max_ty && p.seqlen / (2 * ty) >= 16) ty *= 2;
  // Enough threads already without splitting time: keep sub-chunks long (pass 1 costs a second scan).
  const int64_t resident = int64_t(num_sms) * 2048;
  while (ty > 1 && p.batch * p.d_inner * (ty / 2) >= 2 * resident) ty /= 2;
  const int cb = ty == 1 ? 128 : 32;
  const int sub_len = int((p.seqlen + ty - 1) / ty);
  const size_t smem = ty > 1 ? size_t(ty) * (MAXS + 1) * cb * sizeof(float) : 0;
  dim3 grid(unsigned((p.d_inner + cb - 1) / cb), unsigned(p.batch));
  scan_kernel<T, MAXS><<<grid, dim3(cb, ty), smem, stream>>>(p, sub_len);
  MAMBART_CUDA_CHECK_LAUNCH("scan");
}

void launch_scan(const ScanParams& p, int num_sms, cudaStream_t stream) {
  std::string why;
  if (!supports_scan(p, &why)) throw_unsupported("scan", why);
  if (p.batch == 0 || p.seqlen == 0) return;
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "scan",
    if (p.d_state <= 16) launch_scan_s<T, 16>(p, num_sms, stream);
    else if (p.d_state <= 32) launch_scan_s<T, 32>(p, num_sms, stream);
    else launch_scan_s<T, 64>(p, num_sms, stream));
}

}  // namespace cuda
}  // namespace mambart
