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
// launch_add_norm that also sets zero[0, n_zero) to 0 (fp32; the batched decode's x_proj sums).
void launch_add_norm_zero(const AddNormParams& p, float* zero, int64_t n_zero, cudaStream_t stream);

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
// Scratch (bytes) the prefill scan would use for p: its time segments' states (scan_prefill.cuh), 0 for one segment.
size_t scan_scratch_bytes(const ScanParams& p, int num_sms);
// With less scratch than scan_scratch_bytes (nullptr: none), the prefill scan runs in one segment.
void launch_scan(const ScanParams& p, int num_sms, cudaStream_t stream, void* scratch = nullptr,
                 size_t scratch_bytes = 0);

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

// Batched decode (decode_batch.cpp, 9..256 rows): the conv step + x_proj in one kernel, dt_proj + the scan step in
// another. xdbl = x_proj(xc) (batch, nx), nx = dt_rank + 2 d_state, is summed in fp32 by atomics into a buffer that
// must be zero before conv_xproj (launch_add_norm_zero); the scan kernel rounds it to the act dtype as the composed
// ops store it. The launchers check nothing: decode_batch_applicable() does, for the whole step.
struct ConvXprojArgs {
  int batch = 0, d_inner = 0, d_conv = 0, nx = 0;  // d_conv <= 4
  const void* x = nullptr;         // (batch, d_inner) act dtype, row stride x_stride: in_proj's x half
  int64_t x_stride = 0;
  float* conv_state = nullptr;     // (batch, d_inner, d_conv), in/out
  const float* conv_w = nullptr;   // (d_inner, d_conv)
  const float* conv_b = nullptr;   // (d_inner,) or nullptr
  void* xc = nullptr;              // (batch, d_inner) out: silu(conv_step(x))
  const void* w = nullptr;         // x_proj (nx, d_inner)
  float* xdbl = nullptr;           // (batch, nx) fp32, zeroed before: += xc w^T
};
size_t conv_xproj_smem_bytes(int64_t nx, DType act);
void launch_conv_xproj(const ConvXprojArgs& a, DType act, cudaStream_t stream);

struct ScanBatchArgs {
  int batch = 0, d_inner = 0, d_state = 0, dt_rank = 0;  // d_state 16, 32, 48 or 64
  const float* xdbl = nullptr;     // (batch, dt_rank + 2 d_state) fp32 (conv_xproj's sums): dt | B | C
  const void* x = nullptr;         // xc (batch, d_inner) act dtype
  const void* z = nullptr;         // (batch, d_inner) act dtype, row stride z_stride
  int64_t z_stride = 0;
  const void* dt_w = nullptr;      // dt_proj (d_inner, dt_rank)
  const float* dt_bias = nullptr;  // (d_inner,) or nullptr
  const float* A = nullptr;        // (d_inner, d_state), 16-byte aligned
  const float* D = nullptr;        // (d_inner,) or nullptr
  float* ssm_state = nullptr;      // (batch, d_inner, d_state), 16-byte aligned, in/out
  void* y = nullptr;               // (batch, d_inner) act dtype out
};
size_t scan_batch_smem_bytes(int64_t dt_rank, int64_t d_state, DType act);
void launch_scan_batch(const ScanBatchArgs& a, DType act, cudaStream_t stream);

bool supports_sample(const SampleParams& p, std::string* why);
// `scratch` (sample_scratch_bytes(rows), zeroed once at allocation; kept zero by the kernels) enables the
// multi-block greedy path; nullptr uses one block per row. With p.step_counter set, the draw reads the step from it
// and a one-thread kernel increments it afterwards (sample_step).
size_t sample_scratch_bytes(int64_t rows);
void launch_sample(const SampleParams& p, void* scratch, cudaStream_t stream);


}  // namespace cuda
}  // namespace mambart
