// Error helpers of the CUDA backend, compiled by the C++ compiler (they use iostream-based detail::cat).
#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "error.h"

namespace mambart {
namespace cuda {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  (void)cudaGetLastError();
  throw DeviceError(str("CUDA error in ", call, ": ", cudaGetErrorString(err), " (", file, ":", line, ")"));
}

void throw_unsupported(const char* op, const std::string& why) {
  throw InvalidArgument(str("cuda ", op, ": ", why));
}

}  // namespace cuda
}  // namespace mambart
