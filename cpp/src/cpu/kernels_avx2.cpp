// The CPU kernels built for the "avx2" ISA (compiler flags in cmake/cpu_backend.cmake).
#include "cpu/simd_avx2.h"
#define MAMBART_CPU_ISA avx2
#define MAMBART_CPU_ISA_NAME "avx2"
#define MAMBART_GEMM_MR 6  // register tile: 6 x rows by 2 vectors of weight rows
#include "cpu/kernels_impl.h"

namespace mambart {
namespace cpu {
const KernelTable* kernels_avx2() { return &avx2::kTable; }
}  // namespace cpu
}  // namespace mambart
