// Model loading: config + checkpoint -> validated weights in a backend. Fix-ups happen once here:
// A = -exp(A_log) (unless the checkpoint stores A), conv weight viewed as (d_inner, d_conv), SSM parameters
// in fp32, the tied head resolved, projections in the requested dtype.
#include "model.h"

#include <cmath>
#include <sys/stat.h>

#include "error.h"

namespace mambart {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

bool parse_dtype_option(const std::string& s, DType* out) {
  if (s == "float32" || s == "f32" || s == "fp32") *out = DType::F32;
  else if (s == "float16" || s == "f16" || s == "fp16" || s == "half") *out = DType::F16;
  else if (s == "bfloat16" || s == "bf16") *out = DType::BF16;
  else return false;
  return true;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

// Resolves tensor names of the three layouts and checks each against its expected shape and dtype.
class ModelLoader {
 public:
  ModelLoader(Model& m, DType want_proj) : m_(m), proj_(want_proj) {}

  const TensorInfo* find(const std::string& name) const { return m_.ckpt_->find(name); }

  const TensorInfo& require(const std::string& name, const std::vector<std::vector<int64_t>>& shapes) const {
    const TensorInfo* t = find(name);
    MAMBART_CHECK(t, FormatError, "missing tensor '", name, "' (expected shape ", shape_str(shapes[0]), ") in ",
                  m_.ckpt_->dir());
    bool ok = false;
    for (const auto& s : shapes) ok = ok || t->shape == s;
    MAMBART_CHECK(ok, FormatError, "tensor '", name, "': expected ", shape_str(shapes[0]), " ",
                  dtype_name(t->dtype), ", got ", shape_str(t->shape), " ", dtype_name(t->dtype));
    MAMBART_CHECK(is_float_compute(t->dtype), FormatError, "tensor '", name, "': dtype ", dtype_name(t->dtype),
                  " is not supported (expected F32, F16 or BF16)");
    return *t;
  }

  // A projection weight, kept in the projection dtype.
  Weight proj(const std::string& name, std::vector<int64_t> shape) {
    return place(require(name, {shape}), proj_, shape);
  }
  // A small parameter, always fp32. `alt_shapes` lists equivalent layouts of the same data.
  Weight param(const std::string& name, std::vector<int64_t> shape, std::vector<std::vector<int64_t>> alt = {}) {
    alt.insert(alt.begin(), shape);
    return place(require(name, alt), DType::F32, shape);
  }
  Weight optional_param(const std::string& name, std::vector<int64_t> shape) {
    return find(name) ? param(name, shape) : Weight{};
  }

  // A = -exp(A_log), or A as stored by the converter.
  Weight A(const std::string& prefix, int64_t d_inner, int64_t d_state) {
    if (find(prefix + "A")) return param(prefix + "A", {d_inner, d_state});
    const TensorInfo& t = require(prefix + "A_log", {{d_inner, d_state}});
    std::vector<float> a(size_t(t.numel()));
    to_f32(t.dtype, t.data, a.data(), a.size());
    for (float& v : a) v = -std::exp(v);
    return upload(a.data(), DType::F32, {d_inner, d_state});
  }

  Weight place(const TensorInfo& t, DType want, const std::vector<int64_t>& shape) {
    m_.n_params_ += t.numel();
    const size_t n = size_t(t.numel());
    const bool aligned = reinterpret_cast<uintptr_t>(t.data) % dtype_size(want) == 0;
    if (t.dtype == want && aligned && m_.backend_->host_addressable()) {
      m_.weight_bytes_ += t.nbytes;
      return Weight{t.data, want, shape};  // used in place, from the mapping
    }
    if (t.dtype == want) return upload(t.data, want, shape);
    std::vector<float> f(n);
    to_f32(t.dtype, t.data, f.data(), n);
    if (want == DType::F32) return upload(f.data(), want, shape);
    std::vector<uint16_t> h(n);
    from_f32(f.data(), want, h.data(), n);
    return upload(h.data(), want, shape);
  }

  Weight upload(const void* host, DType dtype, const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    const size_t bytes = size_t(n) * dtype_size(dtype);
    m_.owned_.emplace_back(m_.backend_.get(), bytes);
    m_.backend_->copy_from_host(m_.owned_.back().get(), host, bytes);
    m_.weight_bytes_ += bytes;
    return Weight{m_.owned_.back().get(), dtype, shape};
  }

 private:
  Model& m_;
  DType proj_;
};

std::shared_ptr<Model> Model::load(const std::string& path, const LoadOptions& opt) {
  std::shared_ptr<Model> m(new Model());
  m->path_ = path;
  struct stat st;
  MAMBART_CHECK(::stat(path.c_str(), &st) == 0, FileError, "model path '", path, "' does not exist");
  const std::string dir = is_dir(path) ? path : path.substr(0, path.find_last_of('/') == std::string::npos
                                                                      ? 0
                                                                      : path.find_last_of('/'));
  m->cfg_ = load_config(dir.empty() ? "." : dir);
  ModelConfig& c = m->cfg_;
  m->ckpt_ = Checkpoint::open(path);
  m->backend_ = make_backend(opt.device, opt.backend);

  const std::string emb_name = m->ckpt_->find("backbone.embeddings.weight") ? "backbone.embeddings.weight"
                                                                             : "backbone.embedding.weight";
  // The projection dtype: as requested, else as stored (in_proj of layer 0, else the embedding).
  DType proj = DType::F32;
  if (!opt.dtype.empty()) {
    MAMBART_CHECK(parse_dtype_option(opt.dtype, &proj), InvalidArgument, "unknown dtype '", opt.dtype,
                  "' (expected 'float32', 'float16' or 'bfloat16')");
  } else {
    const TensorInfo* t = m->ckpt_->find("backbone.layers.0.mixer.in_proj.weight");
    if (!t) t = m->ckpt_->find(emb_name);
    if (t && is_float_compute(t->dtype)) proj = t->dtype;
  }
  m->weight_dtype_ = proj;
  m->act_dtype_ = m->backend_->act_dtype(proj);

  ModelLoader L(*m, proj);
  const int64_t d = c.d_model, di = c.d_inner, ds = c.d_state, dc = c.d_conv, r = c.dt_rank;
  // The embedding may hold the padded or the unpadded vocabulary.
  {
    const TensorInfo* e = m->ckpt_->find(emb_name);
    if (e && e->shape.size() == 2 && e->shape[0] == c.vocab_size_unpadded && e->shape[1] == d)
      c.vocab_size = c.vocab_size_unpadded;
  }
  m->embedding_ = L.proj(emb_name, {c.vocab_size, d});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string x = p + "mixer.";
    LayerWeights lw;
    lw.norm_w = L.param(p + "norm.weight", {d});
    if (!c.rms_norm) lw.norm_b = L.param(p + "norm.bias", {d});
    lw.in_proj_w = L.proj(x + "in_proj.weight", {2 * di, d});
    if (c.in_proj_bias) lw.in_proj_b = L.param(x + "in_proj.bias", {2 * di});
    lw.conv_w = L.param(x + "conv1d.weight", {di, dc}, {{di, 1, dc}});
    if (c.conv_bias) lw.conv_b = L.param(x + "conv1d.bias", {di});
    lw.x_proj_w = L.proj(x + "x_proj.weight", {r + 2 * ds, di});
    lw.dt_proj_w = L.proj(x + "dt_proj.weight", {di, r});
    lw.dt_proj_b = L.param(x + "dt_proj.bias", {di});
    lw.A = L.A(x, di, ds);
    lw.D = L.param(x + "D", {di});
    lw.out_proj_w = L.proj(x + "out_proj.weight", {d, di});
    if (c.in_proj_bias) lw.out_proj_b = L.param(x + "out_proj.bias", {d});
    m->layers_.push_back(std::move(lw));
  }
  m->norm_f_w_ = L.param("backbone.norm_f.weight", {d});
  if (!c.rms_norm) m->norm_f_b_ = L.param("backbone.norm_f.bias", {d});
  if (c.tie_embeddings) {
    m->lm_head_ = m->embedding_;
  } else {
    MAMBART_CHECK(m->ckpt_->find("lm_head.weight"), FormatError,
                  "missing tensor 'lm_head.weight' (expected shape ", shape_str({c.vocab_size, d}),
                  ") in ", m->ckpt_->dir(), ": the config says the embeddings are not tied");
    m->lm_head_ = L.proj("lm_head.weight", {c.vocab_size, d});
  }
  // Weights used in place keep the mapping alive; if everything was copied the files can be closed.
  if (!m->backend_->host_addressable()) m->ckpt_.reset();
  return m;
}

Model::~Model() = default;

}  // namespace mambart
