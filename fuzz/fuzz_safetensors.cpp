// libFuzzer target: the safetensors header parser on arbitrary bytes (SafetensorsFile::from_buffer).
// Any mambart::Error is an accepted outcome; a crash, a sanitizer report, another exception type or a
// violated invariant (tensors must lie inside the buffer and tile the data region) is a finding.
#include <cstddef>
#include <cstdint>

#include "error.h"
#include "safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto file = mambart::SafetensorsFile::from_buffer(data, size, "fuzz.safetensors");
    volatile uint8_t sink = 0;
    size_t covered = 0;
    for (const auto& t : file->tensors()) {
      (void)t.shape_str();
      if (size_t(t.numel()) * mambart::dtype_size(t.dtype) != t.nbytes) __builtin_trap();
      const uint8_t* p = static_cast<const uint8_t*>(t.data);
      if (p < data + 8 || p + t.nbytes > data + size) __builtin_trap();
      if (t.nbytes > 0) sink = sink ^ p[0] ^ p[t.nbytes - 1];  // ASan catches an overread here
      if (file->find(t.name) != &t) __builtin_trap();
      covered += t.nbytes;
    }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = header_len << 8 | data[i];
    if (covered != size - 8 - header_len) __builtin_trap();
  } catch (const mambart::Error&) {
  }
  return 0;
}
