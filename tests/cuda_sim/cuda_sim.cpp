// The CPU simulation's shared memory and the CUDA runtime calls that host launch code makes (cuda_sim.h).
#include <limits>

#include "cuda_sim.h"

namespace mambart {
namespace cuda {
// The kernels' `extern __shared__ float sm[]` (declared inside mambart::cuda) resolves here.
alignas(16) float sm[cuda_sim::kSmemFloats];
}  // namespace cuda
}  // namespace mambart

void cuda_sim::fill_smem_nan() {
  for (float& v : mambart::cuda::sm) v = std::numeric_limits<float>::quiet_NaN();
}

// Launch configuration calls of the host code: nothing to configure on the simulator.
cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t) { return "CUDA error (simulator)"; }
