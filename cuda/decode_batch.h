// The batched decode step of the CUDA backend (9..256 rows): Backend::decode_layers / decode_layer for batch > 8;
// see decode_batch.cpp.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "ops.h"

namespace mambart {
namespace cuda {

class Cublas;

// Whether the batched path serves these layers (else the backend composes the ops); `why` says why not.
bool decode_batch_applicable(const DecodeLayerParams* layers, int64_t n, std::string* why);
// Runs the n layers in order; after it the residual holds the full result (as after n decode_layer calls).
// `cublas` may be nullptr (the built-in GEMM then runs the projections).
void launch_decode_batch(const DecodeLayerParams* layers, int64_t n, Cublas* cublas, cudaStream_t stream);

}  // namespace cuda
}  // namespace mambart
