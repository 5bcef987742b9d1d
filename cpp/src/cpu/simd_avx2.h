// AVX2 + FMA + F16C vector primitives for kernels_impl.h: 8 fp32 lanes.
// Included only by kernels_avx2.cpp, which is compiled with the matching -m flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mambart {
namespace cpu {
namespace avx2 {

#define MAMBART_VINLINE static inline __attribute__((always_inline))

constexpr int W = 8;
using vf = __m256;

MAMBART_VINLINE vf vzero() { return _mm256_setzero_ps(); }
MAMBART_VINLINE vf vset1(float f) { return _mm256_set1_ps(f); }
MAMBART_VINLINE vf vload(const float* p) { return _mm256_loadu_ps(p); }
MAMBART_VINLINE void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
MAMBART_VINLINE __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
MAMBART_VINLINE vf vload_n(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail_mask(n)); }
MAMBART_VINLINE void vstore_n(float* p, vf v, int64_t n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
MAMBART_VINLINE __m128i load8_u16_n(const uint16_t* p, int64_t n) {
  alignas(16) uint16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; i++) t[i] = p[i];
  return _mm_load_si128(reinterpret_cast<const __m128i*>(t));
}
MAMBART_VINLINE vf vload_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
MAMBART_VINLINE vf vload_f16_n(const uint16_t* p, int64_t n) { return _mm256_cvtph_ps(load8_u16_n(p, n)); }
MAMBART_VINLINE vf bf16_widen(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }
MAMBART_VINLINE vf vload_bf16(const uint16_t* p) { return bf16_widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
MAMBART_VINLINE vf vload_bf16_n(const uint16_t* p, int64_t n) { return bf16_widen(load8_u16_n(p, n)); }
MAMBART_VINLINE vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
MAMBART_VINLINE vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
MAMBART_VINLINE vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
MAMBART_VINLINE vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
MAMBART_VINLINE vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
MAMBART_VINLINE vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
MAMBART_VINLINE vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
MAMBART_VINLINE float vhsum(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
MAMBART_VINLINE float vhmax(vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
MAMBART_VINLINE vf vround(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
MAMBART_VINLINE vf vpow2i(vf n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
// p * 2^n for integral-valued n in [-126, 127].
MAMBART_VINLINE vf vscale2(vf p, vf n) { return _mm256_mul_ps(p, vpow2i(n)); }
MAMBART_VINLINE vf vfrexp(vf x, vf* e) {
  __m256i u = _mm256_castps_si256(x);
  *e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(u, 23), _mm256_set1_epi32(126)));
  __m256i m = _mm256_or_si256(_mm256_and_si256(u, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f000000));
  return _mm256_castsi256_ps(m);
}
MAMBART_VINLINE vf vsel_gt(vf a, vf b, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
MAMBART_VINLINE vf vsel_eq(vf a, vf b, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_EQ_OQ)); }
MAMBART_VINLINE vf vsel_lt(vf a, vf b, vf x, vf y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }

}  // namespace avx2
}  // namespace cpu
}  // namespace mambart
