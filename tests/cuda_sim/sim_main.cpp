// The CPU-simulation checks of the CUDA kernels (tests/test_cuda_sim.py builds and runs this): each prints one line
// per case; exits 1 if any case is off. Arguments pick groups (scan, conv1d, ops, batch); none runs all.
#include <cstdio>
#include <cstring>

#include "sim_util.h"

int main(int argc, char** argv) {
  auto want = [&](const char* group) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; ++i)
      if (std::strcmp(argv[i], group) == 0) return true;
    return false;
  };
  int failed = 0;
  if (want("scan")) failed += run_scan_cases();
  if (want("conv1d")) failed += run_conv_cases();
  if (want("ops")) failed += run_op_cases();
  if (want("batch")) failed += run_batch_cases();
  std::printf("%d failed\n", failed);
  return failed ? 1 : 0;
}
