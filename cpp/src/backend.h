// A Backend owns a memory space and implements the ops of ops.h in it. The layer orchestration
// (session.cpp) is written once against this interface; backends differ only in their kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ops.h"

namespace mambart {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "ref", "cpu", "cuda:0"
  // True when backend memory is ordinary host memory (then mmapped weights are used in place).
  virtual bool host_addressable() const = 0;
  // Activation dtype used with projections stored as `weight_dtype`.
  virtual DType act_dtype(DType weight_dtype) const = 0;

  // Memory. alloc throws OutOfMemory (naming the size) on failure; free accepts nullptr.
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p) noexcept = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // within the backend
  virtual void fill_zero(void* p, size_t bytes) = 0;
  // Waits for queued work (no-op on synchronous backends).
  virtual void synchronize() {}
  // Tokens (over all rows) processed per prefill chunk: bounds the workspace whatever the prompt length.
  virtual int64_t chunk_tokens() const { return 1024; }

  // Ops (ops.h). Each validates what it supports and throws InvalidArgument otherwise.
  virtual void embed(const EmbedParams& p) = 0;
  virtual void add_norm(const AddNormParams& p) = 0;
  virtual void matmul(const MatmulParams& p) = 0;
  virtual void conv1d(const Conv1dParams& p) = 0;
  virtual void scan(const ScanParams& p) = 0;
  virtual void sample(const SampleParams& p) = 0;

  // Fused decode entry points (ops.h). The defaults compose the ops above, so every backend supports them and
  // the reference stays the oracle; a backend overrides them with fused kernels.
  virtual void decode_layer(const DecodeLayerParams& p);
  // Every layer of one decode step in order (layers[i] feeds layers[i + 1] through the shared residual); the
  // default runs decode_layer on each. A backend may run them as one persistent kernel.
  virtual void decode_layers(const DecodeLayerParams* layers, int64_t n) {
    for (int64_t i = 0; i < n; ++i) decode_layer(layers[i]);
  }
  // sample() with step = *p.step_counter, then ++*p.step_counter, both in backend memory (may be recorded).
  virtual void sample_step(const SampleParams& p);

  // Runs `issue`, which enqueues ops whose pointers stay valid until forget_recorded(owner). A backend
  // may record the launches once per (owner, key) and replay them (CUDA graphs); the default just runs it.
  virtual void run_recorded(const void* owner, uint64_t key, const std::function<void()>& issue) {
    (void)owner;
    (void)key;
    issue();
  }
  virtual void forget_recorded(const void* owner) { (void)owner; }

 protected:
  // decode_layer's composition up to y (p.y) = scan(...): add_norm, in_proj, conv1d, x_proj, dt_proj, scan. For
  // overrides that only change how out_proj updates the residual.
  void decode_layer_mixer(const DecodeLayerParams& p);
};

inline void Backend::decode_layer_mixer(const DecodeLayerParams& p) {
  const int64_t B = p.batch, d = p.d_model, di = p.d_inner, ds = p.d_state, r = p.dt_rank, nx = r + 2 * ds;
  const int64_t a = int64_t(dtype_size(p.act_dtype));
  auto at = [a](void* base, int64_t elems) { return static_cast<char*>(base) + elems * a; };
  AddNormParams np;
  np.n_rows = B; np.dim = d; np.residual = p.residual; np.delta = nullptr;
  np.weight = p.norm_w; np.bias = p.norm_b; np.rms = p.rms; np.eps = p.eps;
  np.out = p.normed; np.act_dtype = p.act_dtype;
  add_norm(np);
  auto mm = [&](const void* x, const void* w, const float* bias, void* y, int64_t N, int64_t K, int64_t ldx) {
    MatmulParams m;
    m.M = B; m.N = N; m.K = K; m.x = x; m.ldx = ldx; m.w = w; m.w_dtype = p.w_dtype; m.bias = bias;
    m.y = y; m.ldy = N; m.act_dtype = p.act_dtype; m.y_dtype = p.act_dtype;
    matmul(m);
  };
  mm(p.normed, p.in_proj_w, p.in_proj_b, p.xz, 2 * di, d, d);   // (B, 2 * d_inner)
  Conv1dParams cp;
  cp.batch = B; cp.seqlen = 1; cp.d_inner = di; cp.d_conv = p.d_conv;
  cp.x = p.xz; cp.x_batch_stride = 2 * di; cp.x_token_stride = 2 * di;
  cp.conv_state = p.conv_state; cp.weight = p.conv_w; cp.bias = p.conv_b;
  cp.out = p.xc; cp.out_batch_stride = di; cp.out_token_stride = di; cp.act_dtype = p.act_dtype;
  conv1d(cp);
  mm(p.xc, p.x_proj_w, nullptr, p.xdbl, nx, di, di);             // (B, dt_rank + 2 * d_state)
  mm(p.xdbl, p.dt_proj_w, nullptr, p.dt, di, r, nx);             // (B, d_inner), bias added in the scan
  ScanParams sp;
  sp.batch = B; sp.seqlen = 1; sp.d_inner = di; sp.d_state = ds;
  sp.x = p.xc; sp.x_batch_stride = di; sp.x_token_stride = di;
  sp.dt = p.dt; sp.dt_batch_stride = di; sp.dt_token_stride = di;
  sp.B = at(p.xdbl, r); sp.B_batch_stride = nx; sp.B_token_stride = nx;
  sp.C = at(p.xdbl, r + ds); sp.C_batch_stride = nx; sp.C_token_stride = nx;
  sp.z = at(p.xz, di); sp.z_batch_stride = 2 * di; sp.z_token_stride = 2 * di;
  sp.A = p.A; sp.D = p.D; sp.dt_bias = p.dt_bias; sp.ssm_state = p.ssm_state;
  sp.y = p.y; sp.y_batch_stride = di; sp.y_token_stride = di; sp.act_dtype = p.act_dtype;
  scan(sp);
}

// The default decode_layer: the mixer above, out_proj, then residual += delta (through add_norm, whose normalized
// output lands in the scratch `normed` and is discarded).
inline void Backend::decode_layer(const DecodeLayerParams& p) {
  decode_layer_mixer(p);
  MatmulParams m;
  m.M = p.batch; m.N = p.d_model; m.K = p.d_inner; m.x = p.y; m.ldx = p.d_inner; m.w = p.out_proj_w;
  m.w_dtype = p.w_dtype; m.bias = p.out_proj_b; m.y = p.delta; m.ldy = p.d_model; m.act_dtype = p.act_dtype;
  m.y_dtype = p.act_dtype;
  matmul(m);                                                     // delta = out_proj(y)   (B, d_model)
  AddNormParams np;
  np.n_rows = p.batch; np.dim = p.d_model; np.residual = p.residual; np.delta = p.delta;
  np.weight = p.norm_w; np.bias = p.norm_b; np.rms = p.rms; np.eps = p.eps;
  np.out = p.normed; np.act_dtype = p.act_dtype;
  add_norm(np);                                                  // residual += delta
}

// The default sample_step reads the counter to the host (not recordable on asynchronous backends).
inline void Backend::sample_step(const SampleParams& p) {
  uint64_t step = 0;
  copy_to_host(&step, p.step_counter, sizeof(step));
  SampleParams q = p;
  q.step = step;
  q.step_counter = nullptr;
  sample(q);
  ++step;
  copy_from_host(p.step_counter, &step, sizeof(step));
}

// RAII buffer in a backend's memory.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* be, size_t bytes) : be_(be), bytes_(bytes) { ptr_ = bytes ? be->alloc(bytes) : nullptr; }
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept : be_(o.be_), ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_; ptr_ = o.ptr_; bytes_ = o.bytes_;
      o.ptr_ = nullptr; o.bytes_ = 0;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void reset() {
    if (ptr_) be_->free(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* get() const { return ptr_; }
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  Backend* be_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct BackendOptions {
  int threads = 0;     // CPU threads; 0: physical cores
  int device_index = 0;
  std::string isa;     // CPU ISA override for tests: "generic", "avx2", "avx512"; empty: best available
};

// Creates a backend by name: "ref" (the scalar reference, single thread), "cpu", "cuda" / "cuda:N".
// Throws InvalidArgument for an unknown name and DeviceError when the device is unavailable
// (e.g. "CUDA backend not built" or "no CUDA device").
std::shared_ptr<Backend> make_backend(const std::string& device, const BackendOptions& opt);
// Whether a usable CUDA device is present (false when not built or no driver/device).
bool cuda_available();

}  // namespace mambart
