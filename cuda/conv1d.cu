// Causal depthwise conv1d + SiLU over (batch, seqlen, d_inner), continuing from and updating conv_state
// (batch, d_inner, d_conv), newest input at index d_conv-1. Input position p < 0 of a sequence is
// conv_state[d_conv + p]. d_conv is a template parameter (1..8).
#include <cstdlib>
#include <string>

#include "common.cuh"
#include "kernels.h"

namespace mambart {
namespace cuda {

constexpr int kConvTokensPerThread = 16;

// Prefill: one thread per (batch, channel, run of kConvTokensPerThread tokens). Reads conv_state, never writes it.
template <typename T, int W>
__global__ void conv1d_prefill_kernel(Conv1dParams p) {
  pdl_wait();
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t b = blockIdx.z;
  const int64_t t0 = int64_t(blockIdx.y) * kConvTokensPerThread;
  if (c >= p.d_inner) return;
  const T* x = static_cast<const T*>(p.x) + b * p.x_batch_stride + c;
  T* out = static_cast<T*>(p.out) + b * p.out_batch_stride + c;
  const float* st = p.conv_state + (b * p.d_inner + c) * W;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = p.weight[c * W + k];
  const float bias = p.bias ? p.bias[c] : 0.f;
  float win[W];  // win[W-1] is the current token
#pragma unroll
  for (int k = 0; k < W - 1; ++k) {
    const int64_t pos = t0 - (W - 1) + k;
    win[k + 1] = pos >= 0 ? to_f(x[pos * p.x_token_stride]) : st[W + pos];
  }
  const int64_t t1 = min(p.seqlen, t0 + kConvTokensPerThread);
  for (int64_t t = t0; t < t1; ++t) {
#pragma unroll
    for (int k = 0; k < W - 1; ++k) win[k] = win[k + 1];
    win[W - 1] = to_f(x[t * p.x_token_stride]);
    float acc = bias;
#pragma unroll
    for (int k = 0; k < W; ++k) acc += w[k] * win[k];
    out[t * p.out_token_stride] = from_f<T>(silu(acc));
  }
}

// Prefill, 16-byte path (conv1d_vec_applicable): one thread per (batch, VE channels, run of kConvVecTokens tokens),
// every row read and written as one 16-byte vector, the run's loads all issued before the first store (the scalar
// kernel above moves 2 bytes per instruction and waits for each token's load). Reads conv_state, never writes it.
constexpr int kConvVecTokens = 8;
template <typename T, int W>
__global__ void conv1d_prefill_vec_kernel(Conv1dParams p) {
  constexpr int VE = Vec<T>::n, R = kConvVecTokens;
  const int64_t c0 = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * VE;  // first of this thread's channels
  const int64_t b = blockIdx.z;
  const int64_t t0 = int64_t(blockIdx.y) * R;
  if (c0 >= p.d_inner) return;
  float w[VE][W], bias[VE];  // weights (never written by an earlier kernel) before the PDL wait
#pragma unroll
  for (int j = 0; j < VE; ++j) {
#pragma unroll
    for (int k = 0; k < W; ++k) w[j][k] = p.weight[(c0 + j) * W + k];
    bias[j] = p.bias ? p.bias[c0 + j] : 0.f;
  }
  pdl_wait();
  const T* __restrict__ x = static_cast<const T*>(p.x) + b * p.x_batch_stride + c0;
  T* __restrict__ out = static_cast<T*>(p.out) + b * p.out_batch_stride + c0;
  const int n = int(min(int64_t(R), p.seqlen - t0));  // tokens of this run
  uint4 hist[W > 1 ? W - 1 : 1], cur[R];              // tokens t0 - (W - 1) .. t0 - 1, t0 .. t0 + n - 1
#pragma unroll
  for (int k = 0; k < W - 1; ++k) {
    const int64_t pos = t0 - (W - 1) + k;
    hist[k] = pos >= 0 ? __ldg(reinterpret_cast<const uint4*>(x + pos * p.x_token_stride)) : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
    cur[r] = r < n ? __ldg(reinterpret_cast<const uint4*>(x + (t0 + r) * p.x_token_stride)) : make_uint4(0, 0, 0, 0);
  float win[VE][W];  // win[j][W - 1]: channel c0 + j at the current token
#pragma unroll
  for (int k = 0; k < W - 1; ++k) {
    const int64_t pos = t0 - (W - 1) + k;
    float v[VE];
    unpack16(hist[k], v, T());
#pragma unroll
    for (int j = 0; j < VE; ++j)  // positions before the sequence come from the state (fp32)
      win[j][k + 1] = pos >= 0 ? v[j] : p.conv_state[(b * p.d_inner + c0 + j) * W + W + pos];
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (r >= n) break;
    float v[VE], o[VE];
    unpack16(cur[r], v, T());
#pragma unroll
    for (int j = 0; j < VE; ++j) {
#pragma unroll
      for (int k = 0; k < W - 1; ++k) win[j][k] = win[j][k + 1];
      win[j][W - 1] = v[j];
      float acc = bias[j];
#pragma unroll
      for (int k = 0; k < W; ++k) acc += w[j][k] * win[j][k];
      o[j] = silu(acc);
    }
    *reinterpret_cast<uint4*>(out + (t0 + r) * p.out_token_stride) = pack16(o, T());
  }
}

// After the prefill kernel: conv_state <- the last W inputs of [old state, x].
template <typename T, int W>
__global__ void conv1d_state_kernel(Conv1dParams p) {
  pdl_wait();
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t b = blockIdx.y;
  if (c >= p.d_inner) return;
  const T* x = static_cast<const T*>(p.x) + b * p.x_batch_stride + c;
  float* st = p.conv_state + (b * p.d_inner + c) * W;
  float nw[W];
#pragma unroll
  for (int j = 0; j < W; ++j) {
    const int64_t pos = p.seqlen - W + j;
    nw[j] = pos >= 0 ? to_f(x[pos * p.x_token_stride]) : st[W + pos];
  }
#pragma unroll
  for (int j = 0; j < W; ++j) st[j] = nw[j];
}

// Decode (seqlen 1): shift the state, append x, convolve. One thread per (batch, channel).
template <typename T, int W>
__global__ void conv1d_step_kernel(Conv1dParams p) {
  pdl_wait();
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t b = blockIdx.y;
  if (c >= p.d_inner) return;
  float* st = p.conv_state + (b * p.d_inner + c) * W;
  float win[W];
#pragma unroll
  for (int k = 0; k < W - 1; ++k) win[k] = st[k + 1];
  win[W - 1] = to_f(static_cast<const T*>(p.x)[b * p.x_batch_stride + c]);
  float acc = p.bias ? p.bias[c] : 0.f;
#pragma unroll
  for (int k = 0; k < W; ++k) {
    acc += p.weight[c * W + k] * win[k];
    st[k] = win[k];
  }
  static_cast<T*>(p.out)[b * p.out_batch_stride + c] = from_f<T>(silu(acc));
}

bool supports_conv1d(const Conv1dParams& p, std::string* why) {
  if (!is_float_compute(p.act_dtype)) { *why = "act dtype must be float32/float16/bfloat16"; return false; }
  if (p.d_conv < 1 || p.d_conv > 8) { *why = str("d_conv ", p.d_conv, " not supported (1..8)"); return false; }
  if (p.batch < 0 || p.seqlen < 0 || p.d_inner <= 0) { *why = "bad sizes"; return false; }
  if (p.batch > 65535 || (p.seqlen + kConvTokensPerThread - 1) / kConvTokensPerThread > 65535) {
    *why = "batch or seqlen too large for one call"; return false;
  }
  return true;
}

// The 16-byte prefill path applies: rows of x and out start 16-byte aligned, d_inner is a whole number of vectors,
// the runs fit the grid. MAMBART_CONV_VEC=0 turns it off (benchmarks; read per launch).
static bool conv1d_vec_applicable(const Conv1dParams& p) {
  if (const char* e = std::getenv("MAMBART_CONV_VEC"); e && std::string(e) == "0") return false;
  const int64_t es = int64_t(dtype_size(p.act_dtype)), ve = 16 / es;
  auto al = [&](const void* q, int64_t token_stride, int64_t batch_stride) {
    return reinterpret_cast<uintptr_t>(q) % 16 == 0 && (token_stride * es) % 16 == 0 && (batch_stride * es) % 16 == 0;
  };
  return p.d_inner % ve == 0 && (p.seqlen + kConvVecTokens - 1) / kConvVecTokens <= 65535 &&
         al(p.x, p.x_token_stride, p.x_batch_stride) && al(p.out, p.out_token_stride, p.out_batch_stride);
}

template <typename T, int W>
static void launch_conv1d_w(const Conv1dParams& p, cudaStream_t stream) {
  const int threads = 128;
  const unsigned cblocks = unsigned((p.d_inner + threads - 1) / threads);
  if (p.seqlen == 1) {
    launch(conv1d_step_kernel<T, W>, dim3(cblocks, unsigned(p.batch)), threads, 0, stream, p);
    MAMBART_CUDA_CHECK_LAUNCH("conv1d_step");
    return;
  }
  if (conv1d_vec_applicable(p)) {
    constexpr int VE = Vec<T>::n;
    const unsigned vblocks = unsigned((p.d_inner / VE + threads - 1) / threads);
    const unsigned tblocks = unsigned((p.seqlen + kConvVecTokens - 1) / kConvVecTokens);
    launch(conv1d_prefill_vec_kernel<T, W>, dim3(vblocks, tblocks, unsigned(p.batch)), threads, 0, stream, p);
  } else {
    const unsigned tblocks = unsigned((p.seqlen + kConvTokensPerThread - 1) / kConvTokensPerThread);
    launch(conv1d_prefill_kernel<T, W>, dim3(cblocks, tblocks, unsigned(p.batch)), threads, 0, stream, p);
  }
  MAMBART_CUDA_CHECK_LAUNCH("conv1d_prefill");
  launch(conv1d_state_kernel<T, W>, dim3(cblocks, unsigned(p.batch)), threads, 0, stream, p);
  MAMBART_CUDA_CHECK_LAUNCH("conv1d_state");
}

void launch_conv1d(const Conv1dParams& p, cudaStream_t stream) {
  std::string why;
  if (!supports_conv1d(p, &why)) throw_unsupported("conv1d", why);
  if (p.batch == 0 || p.seqlen == 0) return;
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "conv1d",
    switch (p.d_conv) {
      case 1: launch_conv1d_w<T, 1>(p, stream); break;
      case 2: launch_conv1d_w<T, 2>(p, stream); break;
      case 3: launch_conv1d_w<T, 3>(p, stream); break;
      case 4: launch_conv1d_w<T, 4>(p, stream); break;
      case 5: launch_conv1d_w<T, 5>(p, stream); break;
      case 6: launch_conv1d_w<T, 6>(p, stream); break;
      case 7: launch_conv1d_w<T, 7>(p, stream); break;
      default: launch_conv1d_w<T, 8>(p, stream); break;
    });
}

}  // namespace cuda
}  // namespace mambart
