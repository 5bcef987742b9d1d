#include "device_io.h"

#include <string>

#include "error.h"
#ifdef MAMBART_WITH_CUDA
#include "cuda_interop.h"
#endif

namespace mambart {

int cuda_device_of(const Backend& be) {
  const std::string n = be.name();
  if (n.rfind("cuda:", 0) != 0) return -1;
  return std::stoi(n.substr(5));
}

void copy_from_cuda(void* dst, const void* src, size_t itemsize, const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& strides, uintptr_t stream) {
  MAMBART_CHECK(shape.size() == strides.size(), InvalidArgument, "copy_from_cuda: shape has ", shape.size(),
                " dimensions but strides has ", strides.size());
  for (int64_t s : shape) MAMBART_CHECK(s >= 0, InvalidArgument, "copy_from_cuda: negative dimension ", s);
#ifdef MAMBART_WITH_CUDA
  cuda::copy_strided_to_host(dst, src, itemsize, shape, strides, stream);
#else
  (void)dst, (void)src, (void)itemsize, (void)stream;
  throw DeviceError(
      "cannot read an array in CUDA memory: this mambart build has no CUDA backend (build it with MAMBART_CUDA=ON, "
      "or pass a host array)");
#endif
}

}  // namespace mambart
