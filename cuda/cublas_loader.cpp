#include "cublas_loader.h"

#include <dlfcn.h>

#include <cstdlib>

#include "cuda_check.h"
#include "error.h"

namespace mambart {
namespace cuda {

namespace {
// The few cuBLAS declarations used, with the values of cublas_api.h / library_types.h.
using cublasStatus_t = int;
using cublasHandle_t = void*;
constexpr int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;
constexpr int CUDA_R_32F_ = 0, CUDA_R_16F_ = 2, CUDA_R_16BF_ = 14;
constexpr int CUBLAS_COMPUTE_32F = 68;
constexpr int CUBLAS_GEMM_DEFAULT = -1;
using fn_create = cublasStatus_t (*)(cublasHandle_t*);
using fn_destroy = cublasStatus_t (*)(cublasHandle_t);
using fn_set_stream = cublasStatus_t (*)(cublasHandle_t, cudaStream_t);
using fn_set_workspace = cublasStatus_t (*)(cublasHandle_t, void*, size_t);
using fn_gemm_ex = cublasStatus_t (*)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int,
                                      const void*, int, int, const void*, void*, int, int, int, int);

int cuda_type(DType t) {
  switch (t) {
    case DType::F16: return CUDA_R_16F_;
    case DType::BF16: return CUDA_R_16BF_;
    default: return CUDA_R_32F_;
  }
}
}  // namespace

struct Cublas::Api {
  fn_create create = nullptr;
  fn_destroy destroy = nullptr;
  fn_set_stream set_stream = nullptr;
  fn_set_workspace set_workspace = nullptr;
  fn_gemm_ex gemm_ex = nullptr;
};

std::unique_ptr<Cublas> Cublas::load(void* workspace, size_t workspace_bytes, std::string* why) {
  const char* off = std::getenv("MAMBART_CUBLAS");
  if (off && std::string(off) == "0") {
    *why = "disabled by MAMBART_CUBLAS=0";
    return nullptr;
  }
  std::string candidates[4];
  int n = 0;
  if (const char* env = std::getenv("MAMBART_CUBLAS_LIB")) candidates[n++] = env;
  candidates[n++] = "libcublas.so.13";
  candidates[n++] = "libcublas.so.12";
  void* dl = nullptr;
  std::string path;
  for (int i = 0; i < n && !dl; ++i) {
    dl = dlopen(candidates[i].c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl) path = candidates[i];
  }
  if (!dl) {
    *why = "libcublas.so.13/.12 not found on the loader path (set MAMBART_CUBLAS_LIB)";
    return nullptr;
  }
  std::unique_ptr<Cublas> c(new Cublas());
  c->dl_ = dl;
  c->lib_path_ = path;
  c->api_.reset(new Api());
  Api& a = *c->api_;
  a.create = reinterpret_cast<fn_create>(dlsym(dl, "cublasCreate_v2"));
  a.destroy = reinterpret_cast<fn_destroy>(dlsym(dl, "cublasDestroy_v2"));
  a.set_stream = reinterpret_cast<fn_set_stream>(dlsym(dl, "cublasSetStream_v2"));
  a.set_workspace = reinterpret_cast<fn_set_workspace>(dlsym(dl, "cublasSetWorkspace_v2"));
  a.gemm_ex = reinterpret_cast<fn_gemm_ex>(dlsym(dl, "cublasGemmEx"));
  if (!a.create || !a.destroy || !a.set_stream || !a.set_workspace || !a.gemm_ex) {
    *why = "a cuBLAS symbol is missing in " + path;
    return nullptr;  // the destructor closes the library
  }
  cublasHandle_t h = nullptr;
  if (a.create(&h) != 0 || !h) {
    *why = "cublasCreate failed";
    return nullptr;
  }
  c->handle_ = h;
  if (a.set_workspace(h, workspace, workspace_bytes) != 0) {
    *why = "cublasSetWorkspace failed";
    return nullptr;
  }
  return c;
}

Cublas::~Cublas() {
  if (handle_ && api_ && api_->destroy) api_->destroy(handle_);
  if (dl_) dlclose(dl_);
}

void Cublas::gemm(const MatmulParams& p, cudaStream_t stream, float beta) {
  // Row-major y (M, N) = x (M, K) w (N, K)^T is column-major y^T (N, M) = w^T x^T with w seen as (K, N).
  const float one = 1.f;
  if (api_->set_stream(handle_, stream) != 0) throw DeviceError("cublasSetStream failed");
  const int st = api_->gemm_ex(handle_, CUBLAS_OP_T, CUBLAS_OP_N, int(p.N), int(p.M), int(p.K), &one, p.w,
                               cuda_type(p.w_dtype), int(p.K), p.x, cuda_type(p.act_dtype), int(p.ldx), &beta, p.y,
                               cuda_type(p.y_dtype), int(p.ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != 0)
    throw DeviceError(cuda::str("cublasGemmEx failed with status ", st, " (M=", p.M, " N=", p.N, " K=", p.K, ")"));
}

}  // namespace cuda
}  // namespace mambart
