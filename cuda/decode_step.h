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
// Device scratch of the kernel: the grid barrier word (zeroed; the kernels leave it as they found it) and room for
// the x_proj partial sums (2 MB). The backend allocates it once.
size_t decode_step_scratch_bytes();
// Runs the layers in order (one launch per 128 layers). `scratch`: decode_step_scratch_bytes() of zeroed device
// memory owned by the stream's backend.
// `timing`: nullptr, or room for (n, 8, num_sms) clock64 stamps (diagnostics, see decode_step_timing_report).
void launch_decode_step(const DecodeLayerParams* layers, int64_t n, void* scratch, long long* timing,
                        int num_sms, cudaStream_t stream);
// Per-stage times (mean and slowest block, us per layer) from the host copy of the stamps of one step.
std::string decode_step_timing_report(const long long* stamps, int n_layers, int nblocks, int clock_khz);

}  // namespace cuda
}  // namespace mambart
