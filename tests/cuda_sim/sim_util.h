// Helpers shared by the CPU-simulation checks (tests/cuda_sim/*_sim.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "ops.h"
#include "ref/ref_ops.h"

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

// n values of dtype t (bytes), normal * scale rounded to t.
inline std::vector<unsigned char> rand_buf(std::mt19937& g, mambart::DType t, int64_t n, float scale = 1.f) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<unsigned char> b(static_cast<size_t>(n) * esize(t));
  for (int64_t i = 0; i < n; ++i) mambart::ref::store(b.data(), t, i, scale * nd(g));
  return b;
}
// A buffer of dtype t as floats.
inline std::vector<float> as_f32(const std::vector<unsigned char>& b, mambart::DType t) {
  std::vector<float> o(b.size() / esize(t));
  for (size_t i = 0; i < o.size(); ++i) o[i] = mambart::ref::load(b.data(), t, int64_t(i));
  return o;
}

}  // namespace sim

int run_scan_cases();  // scan_sim.cpp
int run_conv_cases();  // conv_sim.cpp
int run_op_cases();    // ops_sim.cpp
int run_batch_cases(); // batch_sim.cpp
