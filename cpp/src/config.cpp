// config.json in three layouts -> ModelConfig. Every error names the label (file) and the field.
// Unknown keys are ignored (configs carry many fields that do not affect inference).
#include "config.h"

#include <filesystem>

#include "error.h"
#include "json.h"

namespace mambart {

namespace {

constexpr int64_t kMaxDim = int64_t(1) << 20;
constexpr int64_t kMaxTokenId = INT32_MAX;
constexpr int kFormatVersion = 1;  // the newest mambart layout this build reads
constexpr size_t kMaxConfigBytes = size_t(16) << 20;

// Short description of a JSON value for "got X" in messages.
std::string describe(const Json& v) {
  switch (v.type()) {
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return v.as_bool() ? "true" : "false";
    case Json::Type::Number: return printable(v.raw_number(), 40);
    case Json::Type::String: return "\"" + printable(v.as_string(), 40) + "\"";
    case Json::Type::Array: return "an array";
    case Json::Type::Object: return "an object";
  }
  return "?";
}

// Reads fields of one JSON object; `prefix` names the enclosing object in messages ("ssm_cfg.").
class Fields {
 public:
  Fields(const Json& obj, const std::string& label, const std::string& prefix)
      : obj_(obj), label_(label), prefix_(prefix) {}

  const Json* find(const char* key) const {
    const Json* v = obj_.get(key);
    return v;
  }
  std::string name(const char* key) const { return "'" + prefix_ + key + "'"; }
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(label_ + ": " + what); }
  [[noreturn]] void bad(const char* key, const std::string& expected, const Json& v) const {
    fail(detail::cat(name(key), " must be ", expected, ", got ", describe(v)));
  }

  const Json& required(const char* key) const {
    const Json* v = find(key);
    if (!v) fail(detail::cat("missing required field ", name(key)));
    return *v;
  }

  int64_t to_int(const char* key, const Json& v, int64_t lo, int64_t hi) const {
    std::string expected = detail::cat("an integer in [", lo, ", ", hi, "]");
    if (!v.is_number()) bad(key, expected, v);
    try {
      return v.as_int(lo, hi);
    } catch (const FormatError&) {
      bad(key, expected, v);
    }
  }
  int64_t int_required(const char* key, int64_t lo, int64_t hi) const {
    return to_int(key, required(key), lo, hi);
  }
  int64_t int_or(const char* key, int64_t lo, int64_t hi, int64_t dflt) const {
    const Json* v = find(key);
    return v ? to_int(key, *v, lo, hi) : dflt;
  }
  bool bool_or(const char* key, bool dflt) const {
    const Json* v = find(key);
    if (!v) return dflt;
    if (!v->is_bool()) bad(key, "true or false", *v);
    return v->as_bool();
  }
  std::string string_or(const char* key, const std::string& dflt) const {
    const Json* v = find(key);
    if (!v) return dflt;
    if (!v->is_string()) bad(key, "a string", *v);
    return v->as_string();
  }
  // A small positive float such as a norm epsilon.
  double eps_or(const char* key, double dflt) const {
    const Json* v = find(key);
    if (!v) return dflt;
    if (!v->is_number() || !(v->as_number() > 0 && v->as_number() < 1)) bad(key, "a number in (0, 1)", *v);
    return v->as_number();
  }
  // dt_rank / time_step_rank: an integer or "auto" (ceil(d_model / 16)).
  int64_t rank_or_auto(const char* key, int64_t d_model) const {
    const Json* v = find(key);
    if (!v || (v->is_string() && v->as_string() == "auto")) return (d_model + 15) / 16;
    if (!v->is_number()) bad(key, detail::cat("\"auto\" or an integer in [1, ", kMaxDim, "]"), *v);
    return to_int(key, *v, 1, kMaxDim);
  }
  // Token id: absent, null or -1 -> -1; a list (HF allows several eos ids) -> its first entry.
  int64_t token_id(const char* key) const {
    const Json* v = find(key);
    if (!v || v->is_null()) return -1;
    if (v->is_array()) {
      if (v->as_array().empty()) return -1;
      v = &v->as_array()[0];
    }
    return to_int(key, *v, -1, kMaxTokenId);
  }
  // An optional nested object; returns nullptr when absent.
  const Json* object_or_null(const char* key) const {
    const Json* v = find(key);
    if (v && !v->is_object()) bad(key, "an object", *v);
    return v;
  }

 private:
  const Json& obj_;
  const std::string& label_;
  std::string prefix_;
};

// expand * d_model; the names are the fields as quoted in messages.
int64_t checked_d_inner(const Fields& f, int64_t expand, int64_t d_model, const std::string& expand_name,
                        const std::string& model_name) {
  int64_t d_inner = expand * d_model;  // both <= 2^20: no overflow
  if (d_inner > kMaxDim)
    f.fail(detail::cat(expand_name, " * ", model_name, " = ", d_inner, " is out of range [1, ", kMaxDim, "]"));
  return d_inner;
}

void parse_hf(const Json& root, const std::string& label, ModelConfig& c) {
  Fields f(root, label, "");
  c.layout = Layout::HF;
  c.d_model = f.int_required("hidden_size", 1, kMaxDim);
  c.n_layer = f.int_required("num_hidden_layers", 1, kMaxDim);
  c.vocab_size = f.int_required("vocab_size", 1, kMaxDim);
  c.vocab_size_unpadded = c.vocab_size;
  c.d_state = f.int_or("state_size", 1, 256, 16);
  c.d_conv = f.int_or("conv_kernel", 1, 64, 4);
  c.expand = f.int_or("expand", 1, kMaxDim, 2);
  if (f.find("intermediate_size"))
    c.d_inner = f.int_required("intermediate_size", 1, kMaxDim);
  else
    c.d_inner = checked_d_inner(f, c.expand, c.d_model, f.name("expand"), f.name("hidden_size"));
  c.dt_rank = f.rank_or_auto("time_step_rank", c.d_model);
  c.in_proj_bias = f.bool_or("use_bias", false);
  c.conv_bias = f.bool_or("use_conv_bias", true);
  c.norm_eps = f.eps_or("layer_norm_epsilon", 1e-5);
  c.residual_in_fp32 = f.bool_or("residual_in_fp32", true);
  c.tie_embeddings = f.bool_or("tie_word_embeddings", true);
  std::string act = f.string_or("hidden_act", "silu");
  if (act != "silu" && act != "swish")  // transformers maps both names to SiLU
    f.fail(detail::cat("'hidden_act' \"", printable(act), "\" is not supported (only \"silu\")"));
  c.rms_norm = true;
  c.bos_token_id = f.token_id("bos_token_id");
  c.eos_token_id = f.token_id("eos_token_id");
  c.pad_token_id = f.token_id("pad_token_id");

  if (const Json* m = f.object_or_null("mambart")) {
    Fields mf(*m, label, "mambart.");
    c.layout = Layout::Mambart;
    int64_t version = mf.int_required("format_version", 1, INT32_MAX);
    if (version > kFormatVersion)
      f.fail(detail::cat("written by a newer mambart ('mambart.format_version' ", version, ", this build reads up to ",
                         kFormatVersion, ")"));
    c.format_version = int(version);
    c.source = mf.string_or("source", "");
    c.rms_norm = mf.bool_or("rms_norm", true);
    c.vocab_size_unpadded = mf.int_or("vocab_size_unpadded", 1, c.vocab_size, c.vocab_size);
  }
}

void parse_state_spaces(const Json& root, const std::string& label, ModelConfig& c) {
  Fields f(root, label, "");
  c.layout = Layout::StateSpaces;
  c.d_model = f.int_required("d_model", 1, kMaxDim);
  c.n_layer = f.int_required("n_layer", 1, kMaxDim);
  c.vocab_size_unpadded = f.int_required("vocab_size", 1, kMaxDim);
  int64_t multiple = f.int_or("pad_vocab_size_multiple", 1, kMaxDim, 8);
  c.vocab_size = (c.vocab_size_unpadded + multiple - 1) / multiple * multiple;
  if (c.vocab_size > kMaxDim)
    f.fail(detail::cat("'vocab_size' ", c.vocab_size_unpadded, " padded to a multiple of ", multiple, " is ",
                       c.vocab_size, ", out of range [1, ", kMaxDim, "]"));
  if (f.int_or("d_intermediate", 0, INT64_MAX, 0) > 0)
    f.fail("MLP layers (d_intermediate > 0) are not supported");
  if (const Json* attn = f.find("attn_layer_idx")) {
    if (!attn->is_array()) f.bad("attn_layer_idx", "an array", *attn);
    if (!attn->as_array().empty()) f.fail("hybrid attention layers are not supported ('attn_layer_idx' is not empty)");
  }
  c.rms_norm = f.bool_or("rms_norm", true);
  c.residual_in_fp32 = f.bool_or("residual_in_fp32", true);
  c.tie_embeddings = f.bool_or("tie_embeddings", true);
  c.norm_eps = f.eps_or("norm_epsilon", 1e-5);
  c.bos_token_id = f.token_id("bos_token_id");
  c.eos_token_id = f.token_id("eos_token_id");
  c.pad_token_id = f.token_id("pad_token_id");

  static const Json empty_object = Json::parse("{}", "");
  const Json* ssm = f.object_or_null("ssm_cfg");
  Fields s(ssm ? *ssm : empty_object, label, "ssm_cfg.");
  std::string layer = s.string_or("layer", "Mamba1");
  if (layer == "Mamba2") s.fail("Mamba-2 models are not supported yet ('ssm_cfg.layer' is \"Mamba2\")");
  if (layer != "Mamba1") s.fail(detail::cat("unknown 'ssm_cfg.layer' \"", printable(layer), "\" (expected \"Mamba1\")"));
  c.d_state = s.int_or("d_state", 1, 256, 16);
  c.d_conv = s.int_or("d_conv", 1, 64, 4);
  c.expand = s.int_or("expand", 1, kMaxDim, 2);
  c.d_inner = checked_d_inner(s, c.expand, c.d_model, s.name("expand"), f.name("d_model"));
  c.dt_rank = s.rank_or_auto("dt_rank", c.d_model);
  c.in_proj_bias = s.bool_or("bias", false);
  c.conv_bias = s.bool_or("conv_bias", true);
}

}  // namespace

ModelConfig parse_config(const std::string& json_text, const std::string& label) {
  size_t skip = 0;  // tolerate a UTF-8 byte order mark (editors on Windows write one)
  if (json_text.compare(0, 3, "\xEF\xBB\xBF") == 0) skip = 3;
  Json::Options opt;
  opt.reject_duplicate_keys = true;
  Json root = Json::parse(json_text.data() + skip, json_text.size() - skip, label, opt);
  if (!root.is_object()) throw FormatError(label + ": config is not a JSON object");

  ModelConfig c;
  if (const Json* mt = root.get("model_type")) {
    if (!mt->is_string()) throw FormatError(detail::cat(label, ": 'model_type' must be a string, got ", describe(*mt)));
    const std::string& t = mt->as_string();
    if (t == "mamba2") throw FormatError(label + ": Mamba-2 models are not supported yet (model_type 'mamba2')");
    if (t == "falcon_mamba") throw FormatError(label + ": falcon_mamba is not supported yet");
    if (t != "mamba")
      throw FormatError(detail::cat(label, ": unknown model_type '", printable(t), "' (expected 'mamba')"));
    parse_hf(root, label, c);
  } else if (root.get("d_model") || root.get("n_layer")) {
    parse_state_spaces(root, label, c);
  } else {
    throw FormatError(label + ": not a Mamba config: no 'model_type' (Hugging Face layout) and no 'd_model' "
                              "(state-spaces layout)");
  }
  return c;
}

ModelConfig load_config(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(dir);
  fs::path file;
  if (fs::is_directory(p, ec))
    file = p / "config.json";
  else if (p.extension() == ".json")
    file = p;  // the config file itself
  else
    file = (p.has_parent_path() ? p.parent_path() : fs::path(".")) / "config.json";  // e.g. a .safetensors path
  if (!fs::exists(file, ec))
    throw FileError(detail::cat("no config.json in ", file.parent_path().empty() ? "." : file.parent_path().string()));
  std::string text = read_text_file(file.string(), kMaxConfigBytes);
  return parse_config(text, file.string());
}

}  // namespace mambart
