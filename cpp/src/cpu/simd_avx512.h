// AVX-512 (F/BW/VL/DQ + F16C) vector primitives for kernels_impl.h: 16 fp32 lanes.
// Included only by kernels_avx512.cpp, which is compiled with the matching -m flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mambart {
namespace cpu {
namespace avx512 {

#define MAMBART_VINLINE static inline __attribute__((always_inline))

constexpr int W = 16;
using vf = __m512;

MAMBART_VINLINE vf vzero() { return _mm512_setzero_ps(); }
MAMBART_VINLINE vf vset1(float f) { return _mm512_set1_ps(f); }
MAMBART_VINLINE vf vload(const float* p) { return _mm512_loadu_ps(p); }
MAMBART_VINLINE void vstore(float* p, vf v) { _mm512_storeu_ps(p, v); }
MAMBART_VINLINE __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1u); }
MAMBART_VINLINE vf vload_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
MAMBART_VINLINE void vstore_n(float* p, vf v, int64_t n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
// fp16 / bf16 -> fp32 (W elements, or the first n).
MAMBART_VINLINE vf vload_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
MAMBART_VINLINE vf vload_f16_n(const uint16_t* p, int64_t n) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail_mask(n), p));
}
MAMBART_VINLINE vf vload_bf16(const uint16_t* p) {
  __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
MAMBART_VINLINE vf vload_bf16_n(const uint16_t* p, int64_t n) {
  __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(tail_mask(n), p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
MAMBART_VINLINE vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
MAMBART_VINLINE vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
MAMBART_VINLINE vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
MAMBART_VINLINE vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
MAMBART_VINLINE vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }  // a*b + c
MAMBART_VINLINE vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
MAMBART_VINLINE vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
MAMBART_VINLINE float vhsum(vf a) { return _mm512_reduce_add_ps(a); }
MAMBART_VINLINE float vhmax(vf a) { return _mm512_reduce_max_ps(a); }
MAMBART_VINLINE vf vround(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 2^n for integral-valued n in [-126, 127].
MAMBART_VINLINE vf vpow2i(vf n) {
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
// p * 2^n for integral-valued n.
MAMBART_VINLINE vf vscale2(vf p, vf n) { return _mm512_scalef_ps(p, n); }
// x = m * 2^e with m in [0.5, 1) for positive normal x.
MAMBART_VINLINE vf vfrexp(vf x, vf* e) {
  __m512i u = _mm512_castps_si512(x);
  __m512i ex = _mm512_sub_epi32(_mm512_srli_epi32(u, 23), _mm512_set1_epi32(126));
  *e = _mm512_cvtepi32_ps(ex);
  __m512i m = _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f000000));
  return _mm512_castsi512_ps(m);
}
// a > b ? x : y ;  a == b ? x : y ;  a < b ? x : y
MAMBART_VINLINE vf vsel_gt(vf a, vf b, vf x, vf y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x); }
MAMBART_VINLINE vf vsel_eq(vf a, vf b, vf x, vf y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), y, x); }
MAMBART_VINLINE vf vsel_lt(vf a, vf b, vf x, vf y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x); }

}  // namespace avx512
}  // namespace cpu
}  // namespace mambart
