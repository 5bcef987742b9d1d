// The CPU kernels built for the "generic" ISA (compiler flags in cmake/cpu_backend.cmake).
#include "cpu/simd_generic.h"
#define MAMBART_CPU_ISA generic
#define MAMBART_CPU_ISA_NAME "generic"
#define MAMBART_GEMM_MR 4  // register tile: 4 x rows by 2 vectors of weight rows
#include "cpu/kernels_impl.h"

namespace mambart {
namespace cpu {
const KernelTable* kernels_generic() { return &generic::kTable; }
}  // namespace cpu
}  // namespace mambart
