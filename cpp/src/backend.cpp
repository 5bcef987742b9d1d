#include "backend.h"

#include <cstdlib>

#include "error.h"
#include "ref/ref_backend.h"

#if __has_include("cpu/cpu_backend.h")
#include "cpu/cpu_backend.h"
#define MAMBART_HAVE_CPU_BACKEND 1
#endif
#ifdef MAMBART_WITH_CUDA
#include "cuda_backend.h"
#endif

namespace mambart {

bool cuda_available() {
#ifdef MAMBART_WITH_CUDA
  return cuda_device_available();
#else
  return false;
#endif
}

static int parse_cuda_index(const std::string& device) {
  if (device == "cuda") return 0;
  const std::string idx = device.substr(5);
  MAMBART_CHECK(!idx.empty() && idx.size() < 4 && idx.find_first_not_of("0123456789") == std::string::npos,
                InvalidArgument, "invalid device '", device, "' (expected 'cuda' or 'cuda:N')");
  return std::atoi(idx.c_str());
}

std::shared_ptr<Backend> make_backend(const std::string& device, const BackendOptions& opt) {
  if (device == "ref") return make_ref_backend();
  if (device == "cpu") {
#ifdef MAMBART_HAVE_CPU_BACKEND
    return make_cpu_backend(opt);
#else
    return make_ref_backend();
#endif
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    BackendOptions o = opt;
    o.device_index = parse_cuda_index(device);
#ifdef MAMBART_WITH_CUDA
    if (!cuda_device_available())
      throw DeviceError("device='" + device + "' requested but no usable CUDA device/driver was found");
    return make_cuda_backend(o);
#else
    throw DeviceError("device='" + device + "' requested but this mambart build has no CUDA backend");
#endif
  }
  if (device == "auto") return cuda_available() ? make_backend("cuda", opt) : make_backend("cpu", opt);
  throw InvalidArgument("unknown device '" + device + "' (expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'ref')");
}

}  // namespace mambart
