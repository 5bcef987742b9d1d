// The persistent decode step of the CUDA backend: all layers of one decode step in one cooperative kernel
// (decode_step.cu). Backs Backend::decode_layers.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "ops.h"

namespace mambart {
namespace cuda {

// Knobs of the persistent step, read from the environment once, when the backend is created.
struct StepConfig {
  // MAMBART_STEP_RING: unset: the weight ring where it applies (decode_step_ring); 0: off; 1: required (the backend
  // throws InvalidArgument where it does not apply: tests prove the path ran).
  int ring_mode = -1;
  // MAMBART_STEP_RING_KB: shared memory (KB) for the weight ring that streams the in_proj and out_proj rows
  // through shared memory (smem_ring.cuh; sm_90+, the rest of the shared memory caps it); 0: the register GEMV.
  int ring_kb = 256;
  // MAMBART_STEP_RING_EARLY: 0 a ring stream opens at its stage; 1 out_proj after stage C and the next layer's
  // in_proj after stage D (before the barriers); 2 as 1, out_proj already after stage A.
  int ring_early = 0;
  // MAMBART_STEP_RING_COPY: who fills the ring: cp.async per warp (default) or "bulk" (the bulk copy engine).
  int ring_bulk = 0;
  // MAMBART_STEP_PREFETCH_IN_KB / _OUT_KB: bytes of the register GEMV's weights asked of L2 ahead of their stage.
  int prefetch_in_kb = 64, prefetch_out_kb = 128;
  static StepConfig from_env();
};

// Whether the persistent kernel serves these layers on `device` with num_sms blocks (else the backend runs them
// one by one); `why` says why not.
bool decode_step_applicable(const DecodeLayerParams* layers, int64_t n, int device, int num_sms,
                            const StepConfig& cfg, std::string* why);
// Whether the step streams in_proj / out_proj through the weight ring for these layers; `why` says why not.
bool decode_step_ring(const DecodeLayerParams& p, int device, int num_sms, const StepConfig& cfg, std::string* why);
// Runs the layers in order (one launch per 128 layers). `barrier`: one zeroed word of device memory owned by
// the stream's backend (the kernels leave it as they found it).
// `timing`: nullptr, or room for (n, 8, num_sms) clock64 stamps (diagnostics, see decode_step_timing_report).
void launch_decode_step(const DecodeLayerParams* layers, int64_t n, unsigned* barrier, long long* timing,
                        int device, int num_sms, const StepConfig& cfg, cudaStream_t stream);
// Per-stage times (mean and slowest block, us per layer) from the host copy of the stamps of one step.
std::string decode_step_timing_report(const long long* stamps, int n_layers, int nblocks, int clock_khz);

}  // namespace cuda
}  // namespace mambart
