// The persistent decode step of the CUDA backend: all layers of one decode step in one cooperative kernel
// (decode_step.cu). Backs Backend::decode_layers.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "ops.h"

namespace mambart {
namespace cuda {

// Whether the persistent kernel serves these layers on `device` (else the backend runs them one by one);
// `why` says why not.
bool decode_step_applicable(const DecodeLayerParams* layers, int64_t n, int device, std::string* why);
// Runs the layers in order (one launch per 128 layers). `barrier`: one zeroed word of device memory owned by
// the stream's backend (the kernels leave it as they found it).
// `timing`: nullptr, or room for (n, 8, num_sms) clock64 stamps (diagnostics, see decode_step_timing_report).
// `prefetch_state`: ask L2 for the state rows and small per-row weights of a stage ahead of it.
void launch_decode_step(const DecodeLayerParams* layers, int64_t n, unsigned* barrier, long long* timing,
                        int num_sms, bool prefetch_state, cudaStream_t stream);
// Per-stage times (mean and slowest block, us per layer) from the host copy of the stamps of one step.
std::string decode_step_timing_report(const long long* stamps, int n_layers, int nblocks, int clock_khz);

}  // namespace cuda
}  // namespace mambart
