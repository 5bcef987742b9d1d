// Element types. F32/F16/BF16 are the compute types; the others exist so the safetensors parser can
// describe (and the model loader can reject by name) every dtype the format defines.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace mambart {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    default: return 1;
  }
}

// The safetensors spelling ("F32", "BF16", ...).
const char* dtype_name(DType t);
// Parses a safetensors dtype string; returns false for an unknown one.
bool parse_dtype(const std::string& s, DType* out);
inline bool is_float_compute(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Scalar conversions (round-to-nearest-even for narrowing), used by the reference ops and the loader.
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of `src` (F32/F16/BF16) to float.
void to_f32(DType src_type, const void* src, float* dst, size_t n);
// Converts n floats to `dst_type` (F32/F16/BF16).
void from_f32(const float* src, DType dst_type, void* dst, size_t n);

}  // namespace mambart
