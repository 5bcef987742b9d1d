// Copies strided arrays out of CUDA memory owned by another library (see cuda_interop.h). These arrays are small
// (token ids): the copies are synchronous cudaMemcpy/cudaMemcpy2D on the legacy default stream.
#include "cuda_interop.h"

#include <cstdio>

#include <cuda_runtime.h>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "error.h"

namespace mambart {
namespace cuda {

namespace {

// Makes `dev` current and restores the caller's device on exit (the caller may be another CUDA library's thread).
class ScopedDevice {
 public:
  explicit ScopedDevice(int dev) {
    if (cudaGetDevice(&prev_) != cudaSuccess) prev_ = -1;
    if (prev_ != dev) MAMBART_CUDA_CHECK(cudaSetDevice(dev));
  }
  ~ScopedDevice() {
    if (prev_ >= 0) cudaSetDevice(prev_);
  }

 private:
  int prev_ = -1;
};

// n elements, `stride` bytes apart, from src to contiguous dst.
void copy_line(char* dst, const char* src, size_t itemsize, int64_t n, int64_t stride) {
  if (n <= 0) return;
  if (n == 1 || stride == int64_t(itemsize)) {
    MAMBART_CUDA_CHECK(cudaMemcpy(dst, src, size_t(n) * itemsize, cudaMemcpyDefault));
  } else if (stride >= int64_t(itemsize)) {  // one element per "row" of a 2-D copy
    MAMBART_CUDA_CHECK(cudaMemcpy2D(dst, itemsize, src, size_t(stride), itemsize, size_t(n), cudaMemcpyDefault));
  } else {  // zero, negative or overlapping strides: element by element
    for (int64_t i = 0; i < n; ++i)
      MAMBART_CUDA_CHECK(cudaMemcpy(dst + i * int64_t(itemsize), src + i * stride, itemsize, cudaMemcpyDefault));
  }
}

}  // namespace

void copy_strided_to_host(void* dst, const void* src, size_t itemsize, const std::vector<int64_t>& shape,
                          const std::vector<int64_t>& strides, uintptr_t stream) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (n == 0) return;
  MAMBART_CHECK(itemsize > 0, InvalidArgument, "copy from CUDA memory: item size 0");
  if (!cuda_device_available())
    throw DeviceError("cannot read an array in CUDA memory: no usable CUDA device or driver");
  cudaPointerAttributes attr{};
  const cudaError_t e = cudaPointerGetAttributes(&attr, src);
  if (e != cudaSuccess || attr.type == cudaMemoryTypeUnregistered) {
    (void)cudaGetLastError();
    char addr[32];
    std::snprintf(addr, sizeof(addr), "%p", src);
    throw InvalidArgument(str("address ", addr, " is not CUDA memory (",
                              e != cudaSuccess ? cudaGetErrorString(e) : "not known to the CUDA driver", ")"));
  }
  ScopedDevice guard(attr.device >= 0 ? attr.device : 0);
  if (stream != 0) {
    cudaStream_t s = stream == 1   ? cudaStreamLegacy
                     : stream == 2 ? cudaStreamPerThread
                                   : reinterpret_cast<cudaStream_t>(stream);
    MAMBART_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  const int nd = int(shape.size());
  char* out = static_cast<char*>(dst);
  const char* in = static_cast<const char*>(src);
  if (nd == 0) {
    MAMBART_CUDA_CHECK(cudaMemcpy(out, in, itemsize, cudaMemcpyDefault));
    return;
  }
  // C-contiguous (size-1 dimensions have any stride): one copy.
  bool contiguous = true;
  for (int64_t d = nd - 1, want = int64_t(itemsize); d >= 0; --d) {
    if (shape[size_t(d)] != 1 && strides[size_t(d)] != want) contiguous = false;
    want *= shape[size_t(d)];
  }
  if (contiguous) {
    MAMBART_CUDA_CHECK(cudaMemcpy(out, in, size_t(n) * itemsize, cudaMemcpyDefault));
    return;
  }
  const int64_t inner = shape[size_t(nd - 1)], inner_stride = strides[size_t(nd - 1)];
  const size_t row_bytes = size_t(inner) * itemsize;
  // (rows, inner) with contiguous rows at a positive pitch: one 2-D copy.
  if (nd == 2 && (inner == 1 || inner_stride == int64_t(itemsize)) && strides[0] >= int64_t(row_bytes)) {
    MAMBART_CUDA_CHECK(cudaMemcpy2D(out, row_bytes, in, size_t(strides[0]), row_bytes, size_t(shape[0]),
                                    cudaMemcpyDefault));
    return;
  }
  // Anything else: one line (last dimension) at a time, over all indices of the leading dimensions.
  std::vector<int64_t> idx(size_t(nd - 1), 0);
  for (int64_t row = 0; row < n / inner; ++row) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; ++d) off += idx[size_t(d)] * strides[size_t(d)];
    copy_line(out + row * int64_t(row_bytes), in + off, itemsize, inner, inner_stride);
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[size_t(d)] < shape[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
}

}  // namespace cuda
}  // namespace mambart
