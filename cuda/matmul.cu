// Projections y (M, N) = x (M, K) w (N, K)^T (+ bias), fp32 accumulation.
//   M <= 8 (decode): a bandwidth-bound GEMV of our own: 16-byte loads of w, groups of L lanes per row, R rows per
//     group in flight, and split-K across the warps of a block when there are few rows.
//   M > 8 (prefill, large batches): cuBLAS when it was loaded at run time, else a tiled SIMT GEMM (correct, slower).
#include "common.cuh"
#include "cublas_loader.h"
#include "kernels.h"
#include "step_ops.cuh"

namespace mambart {
namespace cuda {

namespace {

constexpr int kGemvWarps = 4;
constexpr int kGemvMaxRows = 8;  // largest M served by the GEMV

struct GemvArgs {
  const void* x; int64_t ldx;
  const void* w;
  const float* bias;
  void* y; int64_t ldy;
  int M, N, K;
  int C;      // 16-byte chunks per row handled by the vector path (0 when unaligned)
  int L;      // lanes per row (power of two, <= 32)
  int S;      // warps of a block splitting K (1, 2, 4)
  int y_f32;  // y is fp32 (else the type of x)
  GemvFusion f;  // used by the kFuseNormConv / kFuseResidual variants only
  int early;     // prefetch the first weight chunks into L2 before pdl_wait(), then let the next kernel launch
};


// Conv-step epilogue (kFuseNormConv), for an x column n < d_inner of in_proj: xc = silu(conv_step(x)).
template <typename T>
__device__ __forceinline__ void gemv_conv_epilogue(const GemvFusion& f, int m, int n, float xv) {
  float* st = f.conv_state + (int64_t(m) * f.d_inner + n) * f.d_conv;
  const float cb = f.conv_b ? __ldg(f.conv_b + n) : 0.f;
  static_cast<T*>(f.xc)[int64_t(m) * f.d_inner + n] =
      from_f<T>(conv_step<T>(st, f.conv_w + int64_t(n) * f.d_conv, cb, f.d_conv, xv));
}

template <typename T, int MT, int R, int MODE>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(GemvArgs a) {
  __shared__ float red[kGemvWarps][32][MT][R];
  constexpr int VEC = Vec<T>::n;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int L = a.L, G = 32 / L, g = lane / L, gl = lane % L;
  const int rowset = warp / a.S, ks = warp % a.S, rowsets = kGemvWarps / a.S;
  const int row0 = ((blockIdx.x * rowsets + rowset) * G + g) * R;
  const T* w = static_cast<const T*>(a.w);
  const T* wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) wr[r] = w + int64_t(min(row0 + r, a.N - 1)) * a.K;  // clamped rows are not written
  const int lo = int(int64_t(a.C) * ks / a.S), hi = int(int64_t(a.C) * (ks + 1) / a.S);
  if (a.early) {  // weights never depend on the previous kernel: start pulling the first two chunks per lane
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int c = lo + gl + i * L;
      if (c < hi) {
#pragma unroll
        for (int r = 0; r < R; ++r) prefetch_l2(reinterpret_cast<const uint4*>(wr[r]) + c);
      }
    }
  }
  pdl_wait();
  if (a.early) pdl_trigger();
  MAMBART_DYNAMIC_SMEM(uint4, gemv_xs);
  if (MODE == kFuseNormConv) {  // x = norm(residual) * w (+ b), rows padded to 16 bytes, in shared memory
    __shared__ float nred[32];
    norm_rows<T, false>(a.f.residual, a.M, a.K, a.f.norm_w, a.f.norm_b, a.f.rms, a.f.eps, reinterpret_cast<T*>(gemv_xs),
                        int(a.ldx), nred);
  }
  const T* x = MODE == kFuseNormConv ? reinterpret_cast<const T*>(gemv_xs) : static_cast<const T*>(a.x);

  float acc[MT][R];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[m][r] = 0.f;
#pragma unroll 2
  for (int c = lo + gl; c < hi; c += L) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = __ldg(reinterpret_cast<const uint4*>(wr[r]) + c);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < a.M) {
        const uint4* xp = reinterpret_cast<const uint4*>(x + m * a.ldx) + c;
        const uint4 xv = MODE == kFuseNormConv ? *xp : __ldg(xp);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[m][r] += dot16(wv[r], xv, T());
      }
    }
  }
  if (ks == a.S - 1) {  // scalar tail (and the whole row when the vector path is off)
    for (int k = a.C * VEC + gl; k < a.K; k += L) {
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m < a.M) {
          const float xv = to_f(x[m * a.ldx + k]);
#pragma unroll
          for (int r = 0; r < R; ++r) acc[m][r] += to_f(wr[r][k]) * xv;
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r)
      for (int o = L / 2; o > 0; o >>= 1) acc[m][r] += __shfl_xor_sync(0xffffffffu, acc[m][r], o);
  if (a.S > 1) {
    if (gl == 0) {
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int r = 0; r < R; ++r) red[warp][g][m][r] = acc[m][r];
    }
    __syncthreads();
    if (ks != 0) return;
    for (int j = 1; j < a.S; ++j) {
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int r = 0; r < R; ++r) acc[m][r] += red[warp + j][g][m][r];
    }
  }
  if (MODE != kFusePlain) {
    // Fused epilogues are read-modify-writes (conv state, residual): one lane per row (lane gl finishes row
    // row0 + gl; every lane of the group holds the sums) so their memory latencies overlap instead of adding up.
    if (gl >= R) return;
    const int n = row0 + gl;
    if (n >= a.N) return;
    const float bv = a.bias ? a.bias[n] : 0.f;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < a.M) {
        float v = acc[m][0];
#pragma unroll
        for (int r = 1; r < R; ++r)
          if (gl == r) v = acc[m][r];  // select with constant indices (no local-memory array)
        v += bv;
        if (MODE == kFuseResidual) {  // residual (fp32) += the projection rounded to T, as add_norm would add it
          static_cast<float*>(a.y)[m * a.ldy + n] += to_f(from_f<T>(v));
        } else if (n < a.f.d_inner) {
          gemv_conv_epilogue<T>(a.f, m, n, v);
        } else {
          static_cast<T*>(a.y)[m * a.ldy + n] = from_f<T>(v);
        }
      }
    }
    return;
  }
  if (gl != 0) return;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int n = row0 + r;
    if (n >= a.N) break;
    const float bv = a.bias ? a.bias[n] : 0.f;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m < a.M) {
        const float v = acc[m][r] + bv;
        if (a.y_f32) static_cast<float*>(a.y)[m * a.ldy + n] = v;
        else static_cast<T*>(a.y)[m * a.ldy + n] = from_f<T>(v);
      }
    }
  }
}

template <typename T, int MT, int MODE = kFusePlain>
void launch_gemv_t(GemvArgs a, int num_sms, cudaStream_t stream, size_t smem = 0) {
  // Fewest rows per block that still gives >= 2 blocks per SM: (R, S) in (4,1), (1,1), (1,2), (1,4).
  const int G = 32 / a.L;
  const int64_t want = 2 * int64_t(num_sms);
  auto blocks = [&](int R, int S) { return (int64_t(a.N) + int64_t(kGemvWarps / S) * G * R - 1) / (int64_t(kGemvWarps / S) * G * R); };
  // Candidates (R, S) in order; splitting K only pays when each warp keeps enough 16-byte chunks.
  const int cand[6][2] = {{4, 1}, {4, 2}, {4, 4}, {1, 1}, {1, 2}, {1, 4}};
  int R = 1, S = 4;
  for (const auto& rs : cand) {
    if (rs[0] == 4 && rs[1] > 1 && a.C < 64 * rs[1]) continue;
    if (blocks(rs[0], rs[1]) >= want) { R = rs[0]; S = rs[1]; break; }
  }
  a.S = S;
  constexpr size_t kStatic = sizeof(float) * kGemvWarps * 32 * MT * 4 + 128;  // red[] (R <= 4), prologue's red
  if (smem + kStatic > (size_t(48) << 10)) {  // beyond the default 48 KB per block: opt in (large batch * d_model only)
    MAMBART_CUDA_CHECK(cudaFuncSetAttribute(R == 4 ? gemv_kernel<T, MT, 4, MODE> : gemv_kernel<T, MT, 1, MODE>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }
  if (R == 4) launch(gemv_kernel<T, MT, 4, MODE>, unsigned(blocks(4, S)), kGemvWarps * 32, smem, stream, a);
  else launch(gemv_kernel<T, MT, 1, MODE>, unsigned(blocks(1, S)), kGemvWarps * 32, smem, stream, a);
  MAMBART_CUDA_CHECK_LAUNCH("gemv");
}

int g_num_sms = 0;
int num_sms() {
  if (g_num_sms == 0) {
    int dev = 0, n = 0;
    MAMBART_CUDA_CHECK(cudaGetDevice(&dev));
    MAMBART_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    g_num_sms = n > 0 ? n : 1;
  }
  return g_num_sms;
}

// Tiled SIMT GEMM (64x64 tile, K step 16, 4x4 per thread), the fallback when cuBLAS is absent.
template <typename T>
__global__ void __launch_bounds__(256) gemm_tiled_kernel(MatmulParams p) {
  pdl_wait();
  __shared__ float xs[16][64 + 1], ws[16][64 + 1];
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w);
  const int64_t m0 = int64_t(blockIdx.y) * 64, n0 = int64_t(blockIdx.x) * 64;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < p.K; k0 += 16) {
    for (int i = threadIdx.x; i < 64 * 16; i += 256) {
      const int r = i / 16, kk = i % 16;
      const int64_t k = k0 + kk;
      xs[kk][r] = (m0 + r < p.M && k < p.K) ? to_f(x[(m0 + r) * p.ldx + k]) : 0.f;
      ws[kk][r] = (n0 + r < p.N && k < p.K) ? to_f(w[(n0 + r) * p.K + k]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) {
      float xv[4], wv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) { xv[i] = xs[kk][ty * 4 + i]; wv[i] = ws[kk][tx * 4 + i]; }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(xv[i], wv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= p.M) break;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n >= p.N) break;
      const float v = acc[i][j] + (p.bias ? p.bias[n] : 0.f);
      if (p.y_dtype == DType::F32) static_cast<float*>(p.y)[m * p.ldy + n] = v;
      else static_cast<T*>(p.y)[m * p.ldy + n] = from_f<T>(v);
    }
  }
}

template <typename T>
__global__ void add_bias_kernel(MatmulParams p) {
  pdl_wait();
  const int64_t m = blockIdx.y;
  for (int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; n < p.N; n += int64_t(gridDim.x) * blockDim.x) {
    if (p.y_dtype == DType::F32) static_cast<float*>(p.y)[m * p.ldy + n] += p.bias[n];
    else {
      T* y = static_cast<T*>(p.y) + m * p.ldy + n;
      *y = from_f<T>(to_f(*y) + p.bias[n]);
    }
  }
}

}  // namespace

bool supports_matmul(const MatmulParams& p, std::string* why) {
  if (!is_float_compute(p.w_dtype) || p.act_dtype != p.w_dtype) {
    *why = str("weights ", dtype_label(p.w_dtype), " with activations ", dtype_label(p.act_dtype),
                       " (the activation dtype must equal the weight dtype)");
    return false;
  }
  if (p.y_dtype != p.act_dtype && p.y_dtype != DType::F32) { *why = "y dtype must be the act dtype or float32"; return false; }
  if (p.M < 0 || p.N <= 0 || p.K <= 0 || p.ldx < p.K || p.ldy < p.N) { *why = "bad sizes or strides"; return false; }
  if (p.N > 2147483647 || p.K > 2147483647 || p.M > 2147483647 || p.ldx > 2147483647 || p.ldy > 2147483647) {
    *why = "sizes beyond 2^31";
    return false;
  }
  return true;
}

bool gemv_applicable(const MatmulParams& p) { return p.M <= kGemvMaxRows; }

namespace {
template <int MODE>
void launch_gemv_mode(const MatmulParams& p, const GemvFusion& f, cudaStream_t stream) {
  GemvArgs a{p.x, p.ldx, p.w, p.bias, p.y, p.ldy, int(p.M), int(p.N), int(p.K), 0, 32, 1, p.y_dtype == DType::F32, f,
             pdl_early() ? 1 : 0};
  const size_t es = dtype_size(p.act_dtype);
  const int vec = int(16 / es);
  size_t smem = 0;
  if (MODE == kFuseNormConv) {  // x lives in shared memory, rows padded to 16 bytes
    a.x = nullptr;
    a.ldx = (p.K + vec - 1) / vec * vec;
    smem = size_t(p.M) * size_t(a.ldx) * es;
  }
  const bool aligned = (MODE == kFuseNormConv || reinterpret_cast<uintptr_t>(a.x) % 16 == 0) &&
                       (reinterpret_cast<uintptr_t>(p.w) % 16 == 0) && (p.K * es) % 16 == 0 && (a.ldx * es) % 16 == 0;
  a.C = aligned ? int(p.K / vec) : 0;
  a.L = a.C >= 64 ? 32 : 8;
  const int sms = num_sms();
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "matmul",
    if (p.M <= 1) launch_gemv_t<T, 1, MODE>(a, sms, stream, smem);
    else if (p.M <= 2) launch_gemv_t<T, 2, MODE>(a, sms, stream, smem);
    else if (p.M <= 4) launch_gemv_t<T, 4, MODE>(a, sms, stream, smem);
    else launch_gemv_t<T, 8, MODE>(a, sms, stream, smem));
}
}  // namespace

void launch_gemv(const MatmulParams& p, cudaStream_t stream) { launch_gemv_mode<kFusePlain>(p, GemvFusion{}, stream); }

size_t gemv_norm_smem_bytes(int64_t M, int64_t K, DType act) {
  const int64_t vec = int64_t(16 / dtype_size(act));
  return size_t(M) * size_t((K + vec - 1) / vec * vec) * dtype_size(act);
}

void launch_gemv_norm_conv(const MatmulParams& p, const GemvFusion& f, cudaStream_t stream) {
  launch_gemv_mode<kFuseNormConv>(p, f, stream);
}

void launch_gemv_residual(const MatmulParams& p, cudaStream_t stream) {
  launch_gemv_mode<kFuseResidual>(p, GemvFusion{}, stream);
}

void launch_gemm_fallback(const MatmulParams& p, cudaStream_t stream) {
  dim3 grid(unsigned((p.N + 63) / 64), unsigned((p.M + 63) / 64));
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "matmul", launch(gemm_tiled_kernel<T>, grid, 256, 0, stream, p));
  MAMBART_CUDA_CHECK_LAUNCH("gemm_tiled");
}

void launch_add_bias(const MatmulParams& p, cudaStream_t stream) {
  dim3 grid(unsigned(std::min<int64_t>((p.N + 255) / 256, 1024)), unsigned(p.M));
  MAMBART_DISPATCH_FLOAT(p.act_dtype, T, "matmul", launch(add_bias_kernel<T>, grid, 256, 0, stream, p));
  MAMBART_CUDA_CHECK_LAUNCH("add_bias");
}

void launch_matmul(const MatmulParams& p, Cublas* cublas, cudaStream_t stream) {
  std::string why;
  if (!supports_matmul(p, &why)) throw_unsupported("matmul", why);
  if (p.M == 0) return;
  if (gemv_applicable(p)) {
    launch_gemv(p, stream);
  } else if (cublas) {
    cublas->gemm(p, stream);
    if (p.bias) launch_add_bias(p, stream);
  } else {
    if (p.M > 65535 * 64) throw_unsupported("matmul", "M too large for the fallback GEMM");
    launch_gemm_fallback(p, stream);
  }
}

}  // namespace cuda
}  // namespace mambart
