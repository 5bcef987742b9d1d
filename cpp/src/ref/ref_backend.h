// The reference backend: host memory, the scalar ops of ref_ops.h, one thread. Used as the oracle in tests
// (device="ref") and never for speed.
#pragma once
#include <memory>

#include "host_backend.h"

namespace mambart {
std::shared_ptr<Backend> make_ref_backend();
}
