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

bool supports_conv1d(const Conv1dParams& p, std::string* why);
void launch_conv1d(const Conv1dParams& p, cudaStream_t stream);

bool supports_scan(const ScanParams& p, std::string* why);
void launch_scan(const ScanParams& p, int num_sms, cudaStream_t stream);

bool supports_sample(const SampleParams& p, std::string* why);
// `scratch` (sample_scratch_bytes(rows), zeroed once at allocation; kept zero by the kernels) enables the
// multi-block greedy path; nullptr uses one block per row.
size_t sample_scratch_bytes(int64_t rows);
void launch_sample(const SampleParams& p, void* scratch, cudaStream_t stream);


}  // namespace cuda
}  // namespace mambart
