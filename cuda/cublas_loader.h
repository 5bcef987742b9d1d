// cuBLAS loaded at run time (dlopen of libcublas.so.13 / .12) with hand-declared prototypes: no cuBLAS headers or
// libraries at build time, and no dependency of the package on cuBLAS. When it is absent the backend falls back to
// its own GEMM kernel (matmul.cu).
#pragma once
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "ops.h"

namespace mambart {
namespace cuda {

class Cublas {
 public:
  // Loads the library and creates a handle on the current device, using `workspace` (device memory, kept by the
  // caller) so that calls can be captured in CUDA graphs. Returns nullptr (and the reason in *why) when cuBLAS is
  // not present or disabled by MAMBART_CUBLAS=0. Searches MAMBART_CUBLAS_LIB, then the loader path.
  static std::unique_ptr<Cublas> load(void* workspace, size_t workspace_bytes, std::string* why);
  ~Cublas();
  // y = x w^T (no bias) on `stream`. Throws DeviceError on a cuBLAS failure.
  // y = x w^T (+ beta * y): beta 1 accumulates into y (e.g. an fp32 residual).
  void gemm(const MatmulParams& p, cudaStream_t stream, float beta = 0.f);
  const std::string& library() const { return lib_path_; }

 private:
  Cublas() = default;
  struct Api;
  std::unique_ptr<Api> api_;
  void* handle_ = nullptr;
  void* dl_ = nullptr;
  std::string lib_path_;
};

}  // namespace cuda
}  // namespace mambart
