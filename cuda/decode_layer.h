// The fused decode layer of the CUDA backend (DecodeLayerParams, ops.h); see decode_layer.cpp.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "ops.h"

namespace mambart {
namespace cuda {

// Whether the fused path serves these parameters (else the backend composes the ops); `why` says why not.
bool decode_layer_fusable(const DecodeLayerParams& p, std::string* why);
void launch_decode_layer(const DecodeLayerParams& p, cudaStream_t stream);

}  // namespace cuda
}  // namespace mambart
