// The CPU kernels built for the "avx512" ISA (compiler flags in cmake/cpu_backend.cmake).
#include "cpu/simd_avx512.h"
#define MAMBART_CPU_ISA avx512
#define MAMBART_CPU_ISA_NAME "avx512"
#define MAMBART_GEMM_MR 12  // register tile: 12 x rows by 2 vectors of weight rows
#include "cpu/kernels_impl.h"

namespace mambart {
namespace cpu {
const KernelTable* kernels_avx512() { return &avx512::kTable; }
}  // namespace cpu
}  // namespace mambart
