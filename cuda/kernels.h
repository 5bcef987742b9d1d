// Launchers of the CUDA kernels (one .cu per op family). Each launcher validates its parameters with the
// `supports_*` check declared next to it (throwing InvalidArgument with the reason) and enqueues on `stream`.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "cuda_check.h"
#include "ops.h"

namespace mambart {
namespace cuda {

class Cublas;  // cublas_loader.h

bool supports_embed(const EmbedParams& p, std::string* why);
void launch_embed(const EmbedParams& p, cudaStream_t stream);

bool supports_add_norm(const AddNormParams& p, std::string* why);
void launch_add_norm(const AddNormParams& p, cudaStream_t stream);

bool supports_matmul(const MatmulParams& p, std::string* why);
// Picks the GEMV path for few rows, cuBLAS (when loaded) or the built-in tiled kernel otherwise.
void launch_matmul(const MatmulParams& p, Cublas* cublas, cudaStream_t stream);
// The individual paths, exposed for tests and benchmarks.
bool gemv_applicable(const MatmulParams& p);
void launch_gemv(const MatmulParams& p, cudaStream_t stream);
void launch_gemm_fallback(const MatmulParams& p, cudaStream_t stream);
void launch_add_bias(const MatmulParams& p, cudaStream_t stream);

// Fused GEMV variants of the decode layer (M <= 8 rows; callers check the conditions, see decode_layer.cpp).
enum GemvMode { kFusePlain = 0, kFuseNormConv = 1, kFuseResidual = 2 };
struct GemvFusion {
  // kFuseNormConv prologue: x = norm(residual) * norm_w (+ norm_b); residual (M, K) fp32 contiguous.
  const float* residual = nullptr;
  const float* norm_w = nullptr;
  const float* norm_b = nullptr;
  int rms = 1;
  float eps = 1e-5f;
  // kFuseNormConv epilogue: columns n < d_inner go through the conv step into xc, the others into y.
  int d_inner = 0, d_conv = 0;
  float* conv_state = nullptr;    // (M, d_inner, d_conv)
  const float* conv_w = nullptr;  // (d_inner, d_conv)
  const float* conv_b = nullptr;  // (d_inner,) or nullptr
  void* xc = nullptr;             // (M, d_inner) act dtype
};
// Shared memory of the norm prologue (the normalized rows, padded to 16 bytes).
size_t gemv_norm_smem_bytes(int64_t M, int64_t K, DType act);
// y = in_proj(norm(residual)) with the conv step fused for the x half (p.x unused).
void launch_gemv_norm_conv(const MatmulParams& p, const GemvFusion& f, cudaStream_t stream);
// residual (p.y, fp32, row stride p.ldy) += x w^T (+ bias), the product rounded to the act dtype first.
void launch_gemv_residual(const MatmulParams& p, cudaStream_t stream);

bool supports_conv1d(const Conv1dParams& p, std::string* why);
void launch_conv1d(const Conv1dParams& p, cudaStream_t stream);

bool supports_scan(const ScanParams& p, std::string* why);
void launch_scan(const ScanParams& p, int num_sms, cudaStream_t stream);

// Decode scan step with dt_proj fused: dt (batch, d_inner) = x (batch, dt_rank; row stride x_batch_stride) w^T,
// w (d_inner, dt_rank); p.dt is unused. Needs seqlen 1, d_state % 16 == 0 (<= 64), 16-byte aligned A and state.
struct DtProjArgs {
  const void* w = nullptr;
  int dt_rank = 0;
  const void* x = nullptr;
  int64_t x_batch_stride = 0;
  int vec = 0;    // set by the launcher
  int early = 0;  // set by the launcher: pdl_early()
};
bool scan_step_applicable(const ScanParams& p);
void launch_scan_step_dtproj(const ScanParams& p, DtProjArgs d, cudaStream_t stream);

bool supports_sample(const SampleParams& p, std::string* why);
// `scratch` (sample_scratch_bytes(rows), zeroed once at allocation; kept zero by the kernels) enables the
// multi-block greedy path; nullptr uses one block per row. With p.step_counter set, the draw reads the step from it
// and a one-thread kernel increments it afterwards (sample_step).
size_t sample_scratch_bytes(int64_t rows);
void launch_sample(const SampleParams& p, void* scratch, cudaStream_t stream);


}  // namespace cuda
}  // namespace mambart
