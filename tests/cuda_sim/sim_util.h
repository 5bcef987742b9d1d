// Helpers shared by the CPU-simulation checks (tests/cuda_sim/*_sim.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"

namespace sim {

inline const char* name(mambart::DType t) {
  return t == mambart::DType::F32 ? "F32" : t == mambart::DType::F16 ? "F16" : "BF16";
}
inline size_t esize(mambart::DType t) { return t == mambart::DType::F32 ? 4 : 2; }

// max |a - b| / max |b| (infinite if a has a non-finite value)
inline double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

}  // namespace sim

int run_scan_cases();  // scan_sim.cpp
int run_conv_cases();  // conv_sim.cpp
int run_op_cases();    // ops_sim.cpp
