// Where does a batch-1 GEMV's bandwidth go on this GPU? The persistent decode step's in_proj stage streams at
// ~3.1 TB/s of a 4.27 TB/s read ceiling, and more loads in flight did not help (docs/BENCHMARKS.md, session 5).
// This probe times the same bytes (64 distinct fp16 matrices of 2.8b's in_proj, 10240 x 2560, 3.4 GB: nothing
// stays in L2) read in several layouts, each a single launch that walks all 64 matrices with no barrier between:
//   read        every thread sums 16-byte loads of a contiguous 1/grid of each matrix (the read ceiling)
//   slice R D   the step's layout: block b owns a contiguous slice of rows, warp w its rows w, w + 16, ...; lanes
//               walk K in 16-byte chunks, R rows x D chunks of loads in flight per lane (the step: R 5, D 2)
//   strided R D the same, block b owning rows b, b + grid, ... (its rows spread over the whole matrix)
//   warp-row    one warp per row over a grid of 4 blocks of 256 threads per SM (a conventional GEMV)
// Standalone: nvcc -O3 -arch=sm_90 bench/gemv_probe.cu -o /tmp/gemv_probe && /tmp/gemv_probe
// (bash tools/gpu_check.sh probe). Prints GB/s per variant (median of 5) and writes nothing else.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                       \
    }                                                                                     \
  } while (0)

constexpr int kLayers = 64, kN = 10240, kK = 2560, kC = kK / 8;  // kC 16-byte chunks per row

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  const __half2* a = reinterpret_cast<const __half2*>(&w);
  const __half2* b = reinterpret_cast<const __half2*>(&x);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fa = __half22float2(a[i]), fb = __half22float2(b[i]);
    s += fa.x * fb.x + fa.y * fb.y;
  }
  return s;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The read ceiling: each thread sums a strided share of every matrix, 4 loads in flight.
__global__ void read_kernel(const uint4* w, float* out) {
  const int64_t per = int64_t(kN) * kC, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  unsigned s = 0;
  for (int l = 0; l < kLayers; ++l) {
    const uint4* m = w + l * per;
    for (int64_t i = tid; i < per; i += 4 * step) {
      uint4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) v[u] = i + u * step < per ? __ldg(m + i + u * step) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int u = 0; u < 4; ++u) s ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
  }
  if (s == 0x12345u) out[0] = float(s);  // keeps the loads
}

// Rows of block b: contiguous slice (STRIDED false) or b, b + grid, ... (STRIDED true). 16 warps of 32 lanes;
// warp w takes its block's rows w + 16 j, R at a time, D chunks deep.
template <int R, int D, bool STRIDED>
__global__ void __launch_bounds__(512, 1) slice_kernel(const uint4* w, const uint4* x, float* out) {
  const int nb = gridDim.x, b = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // rows of this block: local index j -> row r0 + j (slice), or b + j * nb (strided)
  const int r0 = STRIDED ? 0 : int(int64_t(kN) * b / nb);
  const int nr = STRIDED ? (kN - b + nb - 1) / nb : int(int64_t(kN) * (b + 1) / nb) - r0;
  for (int l = 0; l < kLayers; ++l) {
    const uint4* m = w + int64_t(l) * kN * kC;
    for (int base = warp; base < nr; base += 16 * R) {
      const uint4* rp[R];
      bool ok[R];
#pragma unroll
      for (int j = 0; j < R; ++j) {
        const int lj = base + 16 * j;
        ok[j] = lj < nr;
        const int row = STRIDED ? b + lj * nb : r0 + lj;
        rp[j] = m + int64_t(ok[j] ? row : 0) * kC;
      }
      float acc[R] = {};
      for (int i = lane; i < kC; i += 32 * D) {
        uint4 v[D][R];
#pragma unroll
        for (int h = 0; h < D; ++h)
#pragma unroll
          for (int j = 0; j < R; ++j)
            if (ok[j] && i + 32 * h < kC) v[h][j] = __ldg(rp[j] + i + 32 * h);
#pragma unroll
        for (int h = 0; h < D; ++h)
          if (i + 32 * h < kC) {
            const uint4 xv = x[i + 32 * h];
#pragma unroll
            for (int j = 0; j < R; ++j)
              if (ok[j]) acc[j] += dot8(v[h][j], xv);
          }
      }
#pragma unroll
      for (int j = 0; j < R; ++j) {
        const float s = warp_sum(acc[j]);
        if (ok[j] && lane == 0) out[STRIDED ? b + (base + 16 * j) * nb : r0 + base + 16 * j] = s;
      }
    }
  }
}

// One warp per row, grid-stride over rows, 4 loads in flight per lane.
__global__ void warp_row_kernel(const uint4* w, const uint4* x, float* out) {
  const int lane = threadIdx.x & 31, gw = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int nw = (gridDim.x * blockDim.x) >> 5;
  for (int l = 0; l < kLayers; ++l) {
    const uint4* m = w + int64_t(l) * kN * kC;
    for (int row = gw; row < kN; row += nw) {
      const uint4* rp = m + int64_t(row) * kC;
      float acc = 0.f;
#pragma unroll 4
      for (int i = lane; i < kC; i += 32) acc += dot8(__ldg(rp + i), x[i]);
      acc = warp_sum(acc);
      if (lane == 0) out[row] = acc;
    }
  }
}

template <class F>
float median_ms(F&& launch) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  launch();
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  std::vector<float> ts;
  for (int r = 0; r < 5; ++r) {
    CHECK(cudaEventRecord(a));
    launch();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

int main() {
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  const size_t elems = size_t(kLayers) * kN * kK;
  __half* w = nullptr;
  __half* x = nullptr;
  float* out = nullptr;
  CHECK(cudaMalloc(&w, elems * sizeof(__half)));
  CHECK(cudaMalloc(&x, kK * sizeof(__half)));
  CHECK(cudaMalloc(&out, kN * sizeof(float)));
  // Random-ish bits everywhere (not zeros): a cheap hash per 16-bit word, kept inside the fp16 normal range.
  std::vector<__half> hx(kK);
  for (int i = 0; i < kK; ++i) hx[i] = __float2half(float((i * 7919) % 1000) / 1000.f - 0.5f);
  CHECK(cudaMemcpy(x, hx.data(), kK * sizeof(__half), cudaMemcpyHostToDevice));
  {
    std::vector<__half> chunk(size_t(kN) * kK);
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = __float2half(float((i * 2654435761u) % 2000) / 2000.f - 0.5f);
    for (int l = 0; l < kLayers; ++l)
      CHECK(cudaMemcpy(w + size_t(l) * kN * kK, chunk.data(), chunk.size() * sizeof(__half), cudaMemcpyHostToDevice));
  }
  const double bytes = double(elems) * sizeof(__half);
  const uint4* W = reinterpret_cast<const uint4*>(w);
  const uint4* X = reinterpret_cast<const uint4*>(x);
  auto report = [&](const char* name, float ms) {
    std::printf("%-22s %8.1f GB/s  %7.2f us per matrix\n", name, bytes / (ms * 1e-3) / 1e9, ms * 1e3 / kLayers);
  };
  std::printf("%s, %d SMs; %d matrices of %d x %d fp16 (%.2f GB)\n", prop.name, sms, kLayers, kN, kK, bytes / 1e9);
  report("read", median_ms([&] { read_kernel<<<sms * 4, 512>>>(W, out); }));
  report("slice R5 D2 (step)", median_ms([&] { slice_kernel<5, 2, false><<<sms, 512>>>(W, X, out); }));
  report("slice R8 D1", median_ms([&] { slice_kernel<8, 1, false><<<sms, 512>>>(W, X, out); }));
  report("slice R2 D4", median_ms([&] { slice_kernel<2, 4, false><<<sms, 512>>>(W, X, out); }));
  report("strided R5 D2", median_ms([&] { slice_kernel<5, 2, true><<<sms, 512>>>(W, X, out); }));
  report("warp-row", median_ms([&] { warp_row_kernel<<<sms * 4, 256>>>(W, X, out); }));
  CHECK(cudaFree(w));
  CHECK(cudaFree(x));
  CHECK(cudaFree(out));
  return 0;
}
