// Embedding gather: out[t, :] = table[ids[t], :] as fp32 (the residual stream).
#include "common.cuh"
#include "kernels.h"

namespace mambart {
namespace cuda {

template <typename T>
__global__ void embed_kernel(const int32_t* __restrict__ ids, const T* __restrict__ table, float* __restrict__ out,
                             int64_t d_model) {
  pdl_wait();
  const int64_t t = blockIdx.y;
  const T* row = table + int64_t(ids[t]) * d_model;  // ids validated by the caller
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < d_model; i += int64_t(gridDim.x) * blockDim.x)
    out[t * d_model + i] = to_f(row[i]);
}

bool supports_embed(const EmbedParams& p, std::string* why) {
  if (!is_float_compute(p.table_dtype)) { *why = "table dtype must be float32/float16/bfloat16"; return false; }
  if (p.n_tokens < 0 || p.d_model <= 0) { *why = "bad sizes"; return false; }
  if (p.n_tokens > 65535) { *why = "more than 65535 tokens in one call"; return false; }
  return true;
}

void launch_embed(const EmbedParams& p, cudaStream_t stream) {
  std::string why;
  if (!supports_embed(p, &why)) throw_unsupported("embed", why);
  if (p.n_tokens == 0) return;
  const int threads = 256;
  dim3 grid(unsigned((p.d_model + threads - 1) / threads), unsigned(p.n_tokens));
  MAMBART_DISPATCH_FLOAT(p.table_dtype, T, "embed",
    launch(embed_kernel<T>, grid, threads, 0, stream, p.ids, static_cast<const T*>(p.table), p.out, p.d_model));
  MAMBART_CUDA_CHECK_LAUNCH("embed");
}

}  // namespace cuda
}  // namespace mambart
