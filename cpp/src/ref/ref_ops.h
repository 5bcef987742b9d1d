// The scalar reference for every op of ops.h, on host memory: the source of truth in tests.
// Plain loops in the order the math is written (fp32 accumulation, fp64 where noted); never optimized.
#pragma once
#include <cmath>

#include "ops.h"

namespace mambart {
namespace ref {

void embed(const EmbedParams& p);
void add_norm(const AddNormParams& p);
void matmul(const MatmulParams& p);
void conv1d(const Conv1dParams& p);
void scan(const ScanParams& p);
void sample(const SampleParams& p);

// Reads element i of a buffer of dtype t (F32/F16/BF16) as float; writes likewise.
float load(const void* p, DType t, int64_t i);
void store(void* p, DType t, int64_t i, float v);

inline float silu(float v) { return v / (1.f + std::exp(-v)); }
inline float softplus(float v) { return v > 20.f ? v : std::log1p(std::exp(v)); }

}  // namespace ref
}  // namespace mambart
