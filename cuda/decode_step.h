// The persistent decode step of the CUDA backend: all layers of one decode step in one cooperative kernel
// (decode_step.cu). Backs Backend::decode_layers.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "ops.h"

namespace mambart {
namespace cuda {

// Whether the persistent kernel serves these layers on `device` with `num_sms` blocks (else the backend runs them
// one by one); `why` says why not. smem_w: out_proj rows through shared memory, 0 off, 1 copy issued after stage
// A, 2 at the layer's start, 3 after barrier 1 (sm_90+; see decode_step.cu).
bool decode_step_applicable(const DecodeLayerParams* layers, int64_t n, int device, int num_sms, int smem_w,
                            std::string* why);
// Runs the layers in order (one launch per 128 layers). `barrier`: one zeroed word of device memory owned by
// the stream's backend (the kernels leave it as they found it).
// `timing`: nullptr, or room for (n, 8, num_sms) clock64 stamps (diagnostics, see decode_step_timing_report).
void launch_decode_step(const DecodeLayerParams* layers, int64_t n, unsigned* barrier, long long* timing,
                        int num_sms, int device, int smem_w, cudaStream_t stream);
// Per-stage times (mean and slowest block, us per layer) from the host copy of the stamps of one step.
std::string decode_step_timing_report(const long long* stamps, int n_layers, int nblocks, int clock_khz);

}  // namespace cuda
}  // namespace mambart
