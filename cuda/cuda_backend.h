// Entry points of the CUDA backend. A plain header: no CUDA includes, so the core library (backend.cpp)
// can include it whether or not it is compiled by nvcc.
#pragma once
#include <memory>
#include <string>

#include "backend.h"

namespace mambart {

// Creates the backend for opt.device_index ("cuda:N"). Throws DeviceError when no usable device is present.
std::shared_ptr<Backend> make_cuda_backend(const BackendOptions& opt);
// Whether a CUDA driver and at least one device are usable (never throws).
bool cuda_device_available();

}  // namespace mambart
