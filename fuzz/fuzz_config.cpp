// libFuzzer target: config.json parsing (parse_config) and the JSON parser under other options.
// Any mambart::Error is an accepted outcome; anything else (crash, sanitizer report, other exception,
// an accepted config with out-of-range sizes) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config.h"
#include "error.h"
#include "json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    mambart::ModelConfig c = mambart::parse_config(text, "fuzz/config.json");
    const int64_t max_dim = int64_t(1) << 20;
    bool ok = c.d_model >= 1 && c.d_model <= max_dim && c.n_layer >= 1 && c.n_layer <= max_dim &&
              c.vocab_size >= 1 && c.vocab_size <= max_dim && c.vocab_size_unpadded >= 1 &&
              c.vocab_size_unpadded <= c.vocab_size && c.d_inner >= 1 && c.d_inner <= max_dim && c.dt_rank >= 1 &&
              c.dt_rank <= max_dim && c.d_state >= 1 && c.d_state <= 256 && c.d_conv >= 1 && c.d_conv <= 64 &&
              c.norm_eps > 0 && c.norm_eps < 1;
    if (!ok) __builtin_trap();
    (void)c.state_bytes_per_sequence();
  } catch (const mambart::Error&) {
  }
  try {  // the JSON layer alone, with duplicates allowed and a tiny depth limit
    mambart::Json::Options opt;
    opt.max_depth = 4;
    opt.reject_duplicate_keys = false;
    mambart::Json j = mambart::Json::parse(text.data(), text.size(), "fuzz", opt);
    if (j.is_number()) (void)j.as_int(-5, 5);
    if (j.is_object())
      for (const auto& kv : j.as_object()) (void)mambart::printable(kv.first, 8);
  } catch (const mambart::Error&) {
  }
  return 0;
}
