// Reads of CUDA memory owned by other libraries (token ids from torch/CuPy/JAX/Numba). A plain header: no CUDA
// includes (cpp/src/device_io.cpp calls it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mambart {
namespace cuda {

// See mambart::copy_from_cuda (device_io.h): strided array in CUDA memory -> C-contiguous host copy.
void copy_strided_to_host(void* dst, const void* src, size_t itemsize, const std::vector<int64_t>& shape,
                          const std::vector<int64_t>& strides, uintptr_t stream);

}  // namespace cuda
}  // namespace mambart
