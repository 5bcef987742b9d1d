// Residual add fused with RMSNorm / LayerNorm: residual (fp32) += delta; out = norm(residual) * w (+ b).
#include "common.cuh"
#include "kernels.h"

namespace mambart {
namespace cuda {

// One block per row. The updated residual row is kept in shared memory between the passes. zero (n_zero floats, or
// nullptr) is cleared on the side, the blocks splitting it (the batched decode's x_proj accumulator).
template <typename T>
__global__ void add_norm_kernel(float* __restrict__ residual, const T* __restrict__ delta,
                                const float* __restrict__ weight, const float* __restrict__ bias, T* __restrict__ out,
                                int64_t dim, int rms, float eps, float* __restrict__ zero, int64_t n_zero) {
  pdl_wait();
  if (zero) {
    const int64_t per = (n_zero + gridDim.x - 1) / gridDim.x;
    const int64_t z1 = min(n_zero, (int64_t(blockIdx.x) + 1) * per);
    for (int64_t i = int64_t(blockIdx.x) * per + threadIdx.x; i < z1; i += blockDim.x) zero[i] = 0.f;
  }
  MAMBART_DYNAMIC_SMEM(float, row);  // (dim,)
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  float* res = residual + r * dim;
  const T* del = delta ? delta + r * dim : nullptr;
  float s = 0.f, sq = 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = res[i];
    if (del) {
      v += to_f(del[i]);
      res[i] = v;
    }
    row[i] = v;
    s += v;
    sq += v * v;
  }
  float var;
  float mean = 0.f;
  if (rms) {
    var = block_sum(sq, red) / float(dim);  // mean of squares
  } else {  // two passes over the row for the variance
    mean = block_sum(s, red) / float(dim);
    float q = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float d = row[i] - mean;
      q += d * d;
    }
    var = block_sum(q, red) / float(dim);
  }
  const float inv = rsqrtf(var + eps);
  T* o = out + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = (row[i] - mean) * inv * weight[i];
    if (bias) v += bias[i];
    o[i] = from_f<T>(v);
  }
}

bool supports_add_norm(const AddNormParams& p, std::string* why) {
  if (!is_float_compute(p.act_dtype)) { *why = "act dtype must be float32/float16/bfloat16"; return false; }
  if (p.dim <= 0 || p.n_rows < 0) { *why = "bad sizes"; return false; }
  if (p.dim > 12288) { *why = str("dim ", p.dim, " > 12288 (the row is kept in shared memory)"); return false; }
  if (p.n_rows > 2147483647) { *why = "too many rows"; return false; }
  return true;
}

void launch_add_norm(const AddNormParams& p, cudaStream_t stream) { launch_add_norm_zero(p, nullptr, 0, stream); }

void launch_add_norm_zero(const AddNormParams& p, float* zero, int64_t n_zero, cudaStream_t stream) {
  std::string why;
  if (!supports_add_norm(p, &why)) throw_unsupported("add_norm", why);
  if (p.n_rows == 0) return;
  int threads = p.dim >= 2048 ? 512 : p.dim >= 512 ? 256 : 128;
  size_t smem = size_t(p.dim) * sizeof(float);
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "add_norm",
    launch(add_norm_kernel<T>, unsigned(p.n_rows), threads, smem, stream,
        p.residual, static_cast<const T*>(p.delta), p.weight, p.bias, static_cast<T*>(p.out), p.dim, p.rms ? 1 : 0,
        p.eps, n_zero > 0 ? zero : nullptr, n_zero));
  MAMBART_CUDA_CHECK_LAUNCH("add_norm");
}

}  // namespace cuda
}  // namespace mambart
