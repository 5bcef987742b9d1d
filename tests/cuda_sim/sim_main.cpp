// The CPU-simulation checks of the CUDA kernels (tests/test_cuda_sim.py builds and runs this): each prints one line
// per case; exits 1 if any case is off.
#include <cstdio>

#include "sim_util.h"

int main() {
  const int failed = run_scan_cases() + run_conv_cases();
  std::printf("%d failed\n", failed);
  return failed ? 1 : 0;
}
