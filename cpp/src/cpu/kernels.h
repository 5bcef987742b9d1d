// The CPU kernel table: one instance per ISA (generic, avx2, avx512; neon can be added the same way),
// each built from kernels_impl.h in its own translation unit with its own compiler flags. The backend picks
// one table at creation (runtime CPU detection) and calls through it; it splits the work among threads and
// hands each kernel a range: output columns for matmul, channels (d_inner) for conv/scan, rows otherwise.
// Kernels assume validated params (cpu_backend.cpp checks them): fp32 activations, F32/F16/BF16 weights.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops.h"

namespace mambart {
namespace cpu {

// GEMM blocking shared by every ISA (sizes in elements); the pack buffer holds one (KC x NC) weight block.
constexpr int64_t kGemmKC = 256;
constexpr int64_t kGemmNC = 256;
constexpr int64_t kGemmMC = 192;
constexpr size_t kGemmScratchFloats = size_t(kGemmKC * kGemmNC + kGemmKC);

struct KernelTable {
  const char* isa;
  int64_t lanes;    // fp32 lanes of one vector: channel ranges given to conv/scan are multiples of it
  int64_t gemm_nr;  // GEMM register-tile width: column ranges given to gemm are multiples of it
  void (*embed)(const EmbedParams& p, int64_t t0, int64_t t1);            // tokens [t0, t1)
  void (*add_norm)(const AddNormParams& p, int64_t r0, int64_t r1);       // rows [r0, r1)
  // y[:, n0:n1] for all M rows. gemv streams each weight row once for all M (small M, decode);
  // gemm is the cache-blocked kernel for large M (prefill); scratch holds kGemmScratchFloats.
  void (*gemv)(const MatmulParams& p, int64_t n0, int64_t n1);
  void (*gemm)(const MatmulParams& p, int64_t n0, int64_t n1, float* scratch);
  void (*conv1d)(const Conv1dParams& p, int64_t c0, int64_t c1);          // channels [c0, c1)
  void (*scan)(const ScanParams& p, int64_t c0, int64_t c1);              // channels [c0, c1)
  // Index of the largest of x[0:n) (lowest index on ties), reading x from memory once.
  int64_t (*argmax)(const float* x, int64_t n);
};

// Largest supported small dims of the conv and scan kernels (local tiles live on the stack).
constexpr int64_t kMaxDConv = 16;
constexpr int64_t kMaxDState = 256;

const KernelTable* kernels_generic();
#if defined(MAMBART_CPU_X86)
const KernelTable* kernels_avx2();
const KernelTable* kernels_avx512();
#endif

}  // namespace cpu
}  // namespace mambart
