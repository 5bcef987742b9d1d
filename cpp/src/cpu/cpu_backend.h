// The fast CPU backend ("cpu"): SIMD kernels chosen at run time (generic / avx2 / avx512), a thread pool,
// fp32 activations, projection weights used as stored (F32 / F16 / BF16) with fp32 accumulation.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend.h"

namespace mambart {

// opt.threads: 0 = physical cores. opt.isa: "" = best available; "generic" / "avx2" / "avx512" force a path
// (InvalidArgument when this CPU or build lacks it).
std::shared_ptr<Backend> make_cpu_backend(const BackendOptions& opt);
// ISAs usable on this CPU with this build, from the most portable: e.g. {"generic", "avx2", "avx512"}.
std::vector<std::string> cpu_isas_available();

}  // namespace mambart
