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

  // Runs `issue`, which enqueues ops whose pointers stay valid until forget_recorded(owner). A backend
  // may record the launches once per (owner, key) and replay them (CUDA graphs); the default just runs it.
  virtual void run_recorded(const void* owner, uint64_t key, const std::function<void()>& issue) {
    (void)owner;
    (void)key;
    issue();
  }
  virtual void forget_recorded(const void* owner) { (void)owner; }
};

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
