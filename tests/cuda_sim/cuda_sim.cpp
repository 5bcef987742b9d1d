// The CPU simulation's dynamic shared memory and the CUDA runtime calls that host launch code makes (cuda_sim.h).
#include <limits>

#include "cuda_sim.h"

namespace {
alignas(16) float g_smem[cuda_sim::kSmemFloats];  // MAMBART_DYNAMIC_SMEM's buffer (one block runs at a time)
}  // namespace

void* cuda_sim::dynamic_smem() { return g_smem; }

void cuda_sim::fill_smem_nan() {
  for (float& v : g_smem) v = std::numeric_limits<float>::quiet_NaN();
}

// Launch configuration calls of the host code: nothing to configure on the simulator.
cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {  // an H100/H200's SM count
  *v = attr == cudaDevAttrMultiProcessorCount ? 132 : attr == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 232448 : 0;
  return cudaSuccess;
}
const char* cudaGetErrorString(cudaError_t) { return "CUDA error (simulator)"; }
