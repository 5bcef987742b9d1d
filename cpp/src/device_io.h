// Memory shared with other libraries (DLPack, __cuda_array_interface__): backend buffers handed out to them, and
// reads of CUDA memory they own. Plain C++: no CUDA headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "backend.h"

namespace mambart {

// A buffer in a backend's memory that keeps the backend alive, so it can outlive the Model and State it came from
// (e.g. logits handed to torch/CuPy/JAX through DLPack). It does not keep the weights alive.
class SharedBuffer {
 public:
  SharedBuffer(std::shared_ptr<Backend> backend, size_t bytes)
      : backend_(std::move(backend)), buf_(backend_.get(), bytes) {}
  void* get() const { return buf_.get(); }
  template <typename T> T* as() const { return buf_.as<T>(); }
  size_t bytes() const { return buf_.bytes(); }
  const Backend& backend() const { return *backend_; }

 private:
  std::shared_ptr<Backend> backend_;  // declared first: destroyed after buf_
  Buffer buf_;
};

// The CUDA device ordinal of a backend named "cuda:N"; -1 for the host backends ("cpu", "ref").
int cuda_device_of(const Backend& be);

// Copies an array in CUDA memory (device, managed or pinned host memory, on any device: e.g. a torch, CuPy or JAX
// array) into C-contiguous host memory `dst` of prod(shape) * itemsize bytes. `strides` are in bytes and may be
// zero or negative. `stream` is the producer's stream (a cudaStream_t as an integer; 1: legacy default stream,
// 2: per-thread default stream; 0: none), synchronized before the copy. Throws DeviceError when this build has no
// CUDA backend or no device is usable, InvalidArgument when `src` is not CUDA memory.
void copy_from_cuda(void* dst, const void* src, size_t itemsize, const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& strides, uintptr_t stream);

}  // namespace mambart
