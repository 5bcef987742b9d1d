// Model configuration: the Hugging Face "mamba" layout, the state-spaces (mamba_ssm) layout and
// mambart's converted layout, normalized into one struct.
#pragma once
#include <cstdint>
#include <string>

namespace mambart {

enum class Layout { HF, StateSpaces, Mambart };

struct ModelConfig {
  Layout layout = Layout::HF;
  int64_t d_model = 0;
  int64_t n_layer = 0;
  int64_t vocab_size = 0;           // rows of the embedding (padded for state-spaces), logits width
  int64_t vocab_size_unpadded = 0;  // the tokenizer's vocab (== vocab_size when not padded)
  int64_t d_state = 16;
  int64_t d_conv = 4;
  int64_t expand = 2;
  int64_t d_inner = 0;              // expand * d_model unless intermediate_size says otherwise
  int64_t dt_rank = 0;              // "auto" -> ceil(d_model / 16)
  bool in_proj_bias = false;        // HF use_bias / ssm_cfg.bias: in_proj and out_proj biases
  bool conv_bias = true;            // HF use_conv_bias / ssm_cfg.conv_bias
  bool rms_norm = true;             // false: LayerNorm with bias (state-spaces only)
  bool residual_in_fp32 = true;
  bool tie_embeddings = true;
  double norm_eps = 1e-5;
  int64_t bos_token_id = -1;        // -1: none
  int64_t eos_token_id = -1;
  int64_t pad_token_id = -1;
  int format_version = 0;           // mambart layout only
  std::string source;               // mambart layout: where it was converted from

  // Bytes of recurrent state per sequence (fp32 conv + ssm for all layers).
  int64_t state_bytes_per_sequence() const { return n_layer * d_inner * (d_conv + d_state) * 4; }
};

// Parses a config.json text. Detects the layout: "model_type": "mamba" -> HF (or Mambart when a
// "mambart" object is present), a "d_model" + "n_layer" object -> StateSpaces. Raises FormatError naming
// the field for a missing/invalid field, an unsupported model type (e.g. "mamba2": "Mamba-2 is not supported
// yet"), hidden_act other than silu, or out-of-range sizes (each dim in [1, 2^20], d_conv in [1, 64],
// d_state in [1, 256]).
ModelConfig parse_config(const std::string& json_text, const std::string& label);
// Reads <dir>/config.json.
ModelConfig load_config(const std::string& dir);

}  // namespace mambart
