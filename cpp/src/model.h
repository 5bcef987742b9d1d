// A loaded model: validated weights in one backend's memory, shareable by many sessions and states.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "config.h"
#include "safetensors.h"

namespace mambart {

struct LoadOptions {
  std::string device = "cpu";  // "ref", "cpu", "cuda", "cuda:N"
  BackendOptions backend;
  // Projection weight dtype: "" keeps the stored dtype (no copy on host backends), else
  // "float32" / "float16" / "bfloat16" converts once at load.
  std::string dtype;
};

// A weight in backend memory: a view into the mapped file, or into a buffer the model owns (converted/uploaded).
struct Weight {
  const void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

struct LayerWeights {
  Weight norm_w, norm_b;              // (d_model,) fp32; norm_b only for LayerNorm
  Weight in_proj_w, in_proj_b;        // (2*d_inner, d_model); bias (2*d_inner,) fp32 optional
  Weight conv_w, conv_b;              // (d_inner, d_conv) fp32; bias (d_inner,) fp32 optional
  Weight x_proj_w;                    // (dt_rank + 2*d_state, d_inner)
  Weight dt_proj_w, dt_proj_b;        // (d_inner, dt_rank); bias (d_inner,) fp32
  Weight A;                           // (d_inner, d_state) fp32, = -exp(A_log)
  Weight D;                           // (d_inner,) fp32
  Weight out_proj_w, out_proj_b;      // (d_model, d_inner); bias (d_model,) fp32 optional
};

class Model {
 public:
  // Loads config.json + safetensors from a folder (or a .safetensors file next to a config.json).
  // Every tensor is checked against the spec; errors name the tensor, the expected and the found value.
  static std::shared_ptr<Model> load(const std::string& path, const LoadOptions& opt);
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() const { return *backend_; }
  std::shared_ptr<Backend> backend_ptr() const { return backend_; }
  DType weight_dtype() const { return weight_dtype_; }  // dtype of the projections
  DType act_dtype() const { return act_dtype_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const Weight& embedding() const { return embedding_; }  // (vocab_size, d_model)
  const Weight& norm_f_w() const { return norm_f_w_; }
  const Weight& norm_f_b() const { return norm_f_b_; }
  const Weight& lm_head() const { return lm_head_; }      // (vocab_size, d_model); == embedding when tied
  const std::string& path() const { return path_; }
  size_t weight_bytes() const { return weight_bytes_; }  // bytes of all weights as used
  int64_t n_params() const { return n_params_; }

 private:
  Model() = default;
  ModelConfig cfg_;
  std::string path_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<Checkpoint> ckpt_;  // keeps the mmaps alive when weights are used in place
  DType weight_dtype_ = DType::F32, act_dtype_ = DType::F32;
  std::vector<LayerWeights> layers_;
  Weight embedding_, norm_f_w_, norm_f_b_, lm_head_;
  std::vector<Buffer> owned_;
  size_t weight_bytes_ = 0;
  int64_t n_params_ = 0;
  friend class ModelLoader;
};

}  // namespace mambart
