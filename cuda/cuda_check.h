// MAMBART_CUDA_CHECK for host code compiled by nvcc or by the C++ compiler. The message is built in a C++
// translation unit (errors.cpp): nvcc-compiled code stays free of iostreams (see README.md, "Build notes").
#pragma once
#include <cuda_runtime_api.h>

#include <string>

namespace mambart {
namespace cuda {

// Throws DeviceError("CUDA error in <call>: <error string> (<file>:<line>)"). Clears the sticky last error.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
// Throws InvalidArgument("cuda <op>: <why>").
[[noreturn]] void throw_unsupported(const char* op, const std::string& why);

// Whether launches use programmatic dependent launch (set by the backend: compute capability >= 9 and
// MAMBART_CUDA_PDL != 0).
inline bool& pdl_enabled() {
  static bool on = false;
  return on;
}

// Whether the decode-layer kernels (GEMV, fused scan step) prefetch their weights into L2 before waiting on the
// previous kernel and let the next kernel launch early (set by the backend: PDL on and MAMBART_CUDA_PDL_EARLY != 0).
inline bool& pdl_early() {
  static bool on = false;
  return on;
}

// Message building without iostreams: str("d_state ", 65, " not supported").
inline void str_append(std::string& s, const char* v) { s += v; }
inline void str_append(std::string& s, const std::string& v) { s += v; }
inline void str_append(std::string& s, char v) { s += v; }
template <typename T>
inline void str_append(std::string& s, T v) { s += std::to_string(v); }
template <typename... Args>
std::string str(const Args&... args) {
  std::string s;
  (str_append(s, args), ...);
  return s;
}

}  // namespace cuda
}  // namespace mambart

#define MAMBART_CUDA_CHECK(call)                                                            \
  do {                                                                                      \
    cudaError_t mambart_err_ = (call);                                                      \
    if (mambart_err_ != cudaSuccess) ::mambart::cuda::throw_cuda_error(mambart_err_, #call, __FILE__, __LINE__); \
  } while (0)

// Checks the launch that was just issued.
#define MAMBART_CUDA_CHECK_LAUNCH(name) MAMBART_CUDA_CHECK(cudaPeekAtLastError())
