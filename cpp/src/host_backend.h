// Memory operations shared by the backends whose memory is ordinary host memory (ref, cpu).
#pragma once
#include <cstdlib>
#include <cstring>
#include <new>

#include "backend.h"
#include "error.h"

namespace mambart {

class HostBackend : public Backend {
 public:
  bool host_addressable() const override { return true; }
  DType act_dtype(DType) const override { return DType::F32; }
  void* alloc(size_t bytes) override {
    // 64-byte alignment for SIMD; aligned_alloc needs a multiple of the alignment.
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = rounded >= bytes ? std::aligned_alloc(64, rounded ? rounded : 64) : nullptr;
    if (!p) throw OutOfMemory(detail::cat("out of host memory allocating ", bytes, " bytes"), bytes);
    return p;
  }
  void free(void* p) noexcept override { std::free(p); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void fill_zero(void* p, size_t bytes) override { std::memset(p, 0, bytes); }
};

}  // namespace mambart
