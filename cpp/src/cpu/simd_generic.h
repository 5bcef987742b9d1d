// Portable vector primitives for kernels_impl.h: a fixed array of 8 fp32 lanes written as plain loops,
// which the compiler auto-vectorizes for the baseline ISA (SSE2 on x86-64, NEON on aarch64).
// This path is always built and is the fallback on any CPU.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "dtype.h"

namespace mambart {
namespace cpu {
namespace generic {

#define MAMBART_VINLINE static inline __attribute__((always_inline))
#define MAMBART_VLOOP for (int l = 0; l < W; l++)

constexpr int W = 8;
struct vf {
  float v[W];
};

MAMBART_VINLINE vf vzero() { vf r; MAMBART_VLOOP r.v[l] = 0.f; return r; }
MAMBART_VINLINE vf vset1(float f) { vf r; MAMBART_VLOOP r.v[l] = f; return r; }
MAMBART_VINLINE vf vload(const float* p) { vf r; MAMBART_VLOOP r.v[l] = p[l]; return r; }
MAMBART_VINLINE void vstore(float* p, vf a) { MAMBART_VLOOP p[l] = a.v[l]; }
MAMBART_VINLINE vf vload_n(const float* p, int64_t n) { vf r; MAMBART_VLOOP r.v[l] = l < n ? p[l] : 0.f; return r; }
MAMBART_VINLINE void vstore_n(float* p, vf a, int64_t n) { for (int64_t l = 0; l < n; l++) p[l] = a.v[l]; }
MAMBART_VINLINE float bf16_1(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
MAMBART_VINLINE vf vload_f16(const uint16_t* p) { vf r; MAMBART_VLOOP r.v[l] = f16_to_f32(p[l]); return r; }
MAMBART_VINLINE vf vload_f16_n(const uint16_t* p, int64_t n) { vf r; MAMBART_VLOOP r.v[l] = l < n ? f16_to_f32(p[l]) : 0.f; return r; }
MAMBART_VINLINE vf vload_bf16(const uint16_t* p) { vf r; MAMBART_VLOOP r.v[l] = bf16_1(p[l]); return r; }
MAMBART_VINLINE vf vload_bf16_n(const uint16_t* p, int64_t n) { vf r; MAMBART_VLOOP r.v[l] = l < n ? bf16_1(p[l]) : 0.f; return r; }
MAMBART_VINLINE vf vadd(vf a, vf b) { MAMBART_VLOOP a.v[l] += b.v[l]; return a; }
MAMBART_VINLINE vf vsub(vf a, vf b) { MAMBART_VLOOP a.v[l] -= b.v[l]; return a; }
MAMBART_VINLINE vf vmul(vf a, vf b) { MAMBART_VLOOP a.v[l] *= b.v[l]; return a; }
MAMBART_VINLINE vf vdiv(vf a, vf b) { MAMBART_VLOOP a.v[l] /= b.v[l]; return a; }
MAMBART_VINLINE vf vfma(vf a, vf b, vf c) { MAMBART_VLOOP c.v[l] = a.v[l] * b.v[l] + c.v[l]; return c; }
MAMBART_VINLINE vf vmax(vf a, vf b) { MAMBART_VLOOP a.v[l] = a.v[l] > b.v[l] ? a.v[l] : b.v[l]; return a; }
MAMBART_VINLINE vf vmin(vf a, vf b) { MAMBART_VLOOP a.v[l] = a.v[l] < b.v[l] ? a.v[l] : b.v[l]; return a; }
MAMBART_VINLINE float vhsum(vf a) {
  // pairwise, like the SIMD paths
  for (int w = W / 2; w > 0; w /= 2)
    for (int l = 0; l < w; l++) a.v[l] += a.v[l + w];
  return a.v[0];
}
MAMBART_VINLINE float vhmax(vf a) { float m = a.v[0]; MAMBART_VLOOP m = a.v[l] > m ? a.v[l] : m; return m; }
MAMBART_VINLINE vf vround(vf a) { MAMBART_VLOOP a.v[l] = std::nearbyint(a.v[l]); return a; }
MAMBART_VINLINE vf vpow2i(vf n) {
  vf r;
  MAMBART_VLOOP {
    uint32_t u = uint32_t(int32_t(n.v[l]) + 127) << 23;
    std::memcpy(&r.v[l], &u, 4);
  }
  return r;
}
// p * 2^n for integral-valued n in [-126, 127].
MAMBART_VINLINE vf vscale2(vf p, vf n) { return vmul(p, vpow2i(n)); }
MAMBART_VINLINE vf vfrexp(vf x, vf* e) {
  vf m;
  MAMBART_VLOOP {
    uint32_t u;
    std::memcpy(&u, &x.v[l], 4);
    e->v[l] = float(int32_t(u >> 23) - 126);
    u = (u & 0x007fffffu) | 0x3f000000u;
    std::memcpy(&m.v[l], &u, 4);
  }
  return m;
}
MAMBART_VINLINE vf vsel_gt(vf a, vf b, vf x, vf y) { MAMBART_VLOOP x.v[l] = a.v[l] > b.v[l] ? x.v[l] : y.v[l]; return x; }
MAMBART_VINLINE vf vsel_eq(vf a, vf b, vf x, vf y) { MAMBART_VLOOP x.v[l] = a.v[l] == b.v[l] ? x.v[l] : y.v[l]; return x; }
MAMBART_VINLINE vf vsel_lt(vf a, vf b, vf x, vf y) { MAMBART_VLOOP x.v[l] = a.v[l] < b.v[l] ? x.v[l] : y.v[l]; return x; }

#undef MAMBART_VLOOP

}  // namespace generic
}  // namespace cpu
}  // namespace mambart
