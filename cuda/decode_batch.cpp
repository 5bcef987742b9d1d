// The batched decode step (seqlen 1, 9..256 rows): per layer five kernels (plus a bias kernel per projection
// bias), where the composed ops take nine, the latency-bound ones fused:
//   1. add_norm: residual += the previous layer's delta; normed = norm(residual); zeroes xdbl   (B, d_model)
//   2. in_proj (cuBLAS, or the built-in GEMM)                         normed -> xz             (B, 2 d_inner)
//   3. conv step + SiLU + x_proj (conv_xproj.cu)                      xz[:, :d_inner] -> xc, xdbl (fp32 sums)
//   4. dt_proj + softplus + scan step + D skip + gate (scan_batch.cu) xdbl, xc, z -> y          (B, d_inner)
//   5. out_proj into the act-dtype delta                              y -> delta               (B, d_model)
// with B the batch rows. Why the delta: cuBLAS writing an fp16 delta (hsh) ran at ~82% of the bandwidth where the
// fp32 beta = 1 GEMM into the residual ran at 62% (ncu, 2.8b at batch 64), and the add costs nothing in step 1 of
// the next layer (it reads the residual anyway). The last layer has no next: its out_proj accumulates into the fp32
// residual (cuBLAS beta 1) or, with an out_proj bias or without cuBLAS, writes the delta and an add_norm adds it
// (normalized output to the scratch `normed`). So the caller's contract holds: after the call the residual is
// complete (session.cpp then runs the final norm with no delta).
// Scratch: the fp32 x_proj sums (B, nx) live in the layer's `dt` buffer (B, d_inner act dtype), which nothing else
// uses here (dt_proj is fused): no allocation, so nothing to size before a CUDA graph capture. Needs
// d_inner * sizeof(act) >= 4 nx: true for every Mamba shape (nx ~ d_model / 16 + 2 d_state, d_inner = 2 d_model).
#include "decode_batch.h"

#include "cublas_loader.h"
#include "kernels.h"

namespace mambart {
namespace cuda {

namespace {
constexpr int64_t kMinBatch = 9;    // below: the fused GEMV layer / the persistent step
constexpr int64_t kMaxBatch = 256;  // above: x_proj's atomics (d_inner / 64 * B * nx) outgrow a GEMM's reduction

int64_t nx_of(const DecodeLayerParams& p) { return p.dt_rank + 2 * p.d_state; }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

MatmulParams proj(const DecodeLayerParams& p, const void* x, const void* w, const float* bias, void* y, int64_t N,
                  int64_t K, DType y_dtype) {
  MatmulParams m;
  m.M = p.batch; m.N = N; m.K = K; m.x = x; m.ldx = K; m.w = w; m.w_dtype = p.w_dtype; m.bias = bias;
  m.y = y; m.ldy = N; m.act_dtype = p.act_dtype; m.y_dtype = y_dtype;
  return m;
}

AddNormParams norm_of(const DecodeLayerParams& p, const void* delta) {
  AddNormParams np;
  np.n_rows = p.batch; np.dim = p.d_model; np.residual = p.residual; np.delta = delta;
  np.weight = p.norm_w; np.bias = p.norm_b; np.rms = p.rms; np.eps = p.eps;
  np.out = p.normed; np.act_dtype = p.act_dtype;
  return np;
}
}  // namespace

bool decode_batch_applicable(const DecodeLayerParams* layers, int64_t n, std::string* why) {
  auto no = [why](const std::string& w) { *why = w; return false; };
  if (n < 1) return no("no layers");
  int dev = 0, smem_max = 0;
  MAMBART_CUDA_CHECK(cudaGetDevice(&dev));
  MAMBART_CUDA_CHECK(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const DecodeLayerParams& p0 = layers[0];
  for (int64_t i = 0; i < n; ++i) {
    const DecodeLayerParams& p = layers[i];
    const int64_t es = int64_t(dtype_size(p.act_dtype)), nx = nx_of(p);
    if (p.batch < kMinBatch || p.batch > kMaxBatch) return no(str("batch ", p.batch, " outside 9..256"));
    // The pending delta of layer i - 1 is added to layer i's residual: one residual stream of one shape.
    if (p.batch != p0.batch || p.d_model != p0.d_model || p.act_dtype != p0.act_dtype || p.residual != p0.residual)
      return no("layers differ in batch, d_model, dtype or residual");
    if (p.w_dtype != p.act_dtype || !is_float_compute(p.act_dtype)) return no("weight dtype != act dtype");
    if (p.d_conv < 1 || p.d_conv > 4) return no(str("d_conv ", p.d_conv, " outside 1..4"));
    if (p.d_state % 16 != 0 || p.d_state < 16 || p.d_state > 64)
      return no(str("d_state ", p.d_state, " not 16, 32, 48 or 64"));
    if (p.dt_rank < 1) return no("dt_rank < 1");
    if (!aligned16(p.A) || !aligned16(p.ssm_state) || !aligned16(p.dt)) return no("unaligned A, ssm_state or dt");
    if (p.d_inner * es < 4 * nx) return no("the dt scratch cannot hold the fp32 x_proj sums (d_inner * size < 4 nx)");
    if (p.d_model > 12288) return no("d_model > 12288 (add_norm)");
    if (p.d_inner > (int64_t(1) << 30) || p.d_model > (int64_t(1) << 30) || nx > (int64_t(1) << 20))
      return no("sizes beyond 2^30");
    if (conv_xproj_smem_bytes(nx, p.act_dtype) > size_t(smem_max) ||
        scan_batch_smem_bytes(p.dt_rank, p.d_state, p.act_dtype) > size_t(smem_max))
      return no("dt_rank / d_state too large for shared memory");
    std::string w;
    if (!supports_matmul(proj(p, p.normed, p.in_proj_w, p.in_proj_b, p.xz, 2 * p.d_inner, p.d_model, p.act_dtype), &w) ||
        !supports_matmul(proj(p, p.y, p.out_proj_w, p.out_proj_b, p.delta, p.d_model, p.d_inner, p.act_dtype), &w))
      return no(w);
  }
  return true;
}

void launch_decode_batch(const DecodeLayerParams* layers, int64_t n, Cublas* cublas, cudaStream_t stream) {
  for (int64_t l = 0; l < n; ++l) {
    const DecodeLayerParams& p = layers[l];
    const int64_t B = p.batch, d = p.d_model, di = p.d_inner, nx = nx_of(p);
    const int64_t es = int64_t(dtype_size(p.act_dtype));
    float* xdbl = static_cast<float*>(p.dt);  // (B, nx) fp32 sums of x_proj
    // 1. residual += delta of layer l - 1; normed = norm(residual); xdbl = 0
    launch_add_norm_zero(norm_of(p, l > 0 ? layers[l - 1].delta : nullptr), xdbl, B * nx, stream);
    // 2. xz = in_proj(normed)
    launch_matmul(proj(p, p.normed, p.in_proj_w, p.in_proj_b, p.xz, 2 * di, d, p.act_dtype), cublas, stream);
    // 3. xc = silu(conv_step(x)); xdbl += xc x_proj^T
    ConvXprojArgs cx;
    cx.batch = int(B); cx.d_inner = int(di); cx.d_conv = int(p.d_conv); cx.nx = int(nx);
    cx.x = p.xz; cx.x_stride = 2 * di;
    cx.conv_state = p.conv_state; cx.conv_w = p.conv_w; cx.conv_b = p.conv_b;
    cx.xc = p.xc; cx.w = p.x_proj_w; cx.xdbl = xdbl;
    launch_conv_xproj(cx, p.act_dtype, stream);
    // 4. y = scan_step(xc, softplus(dt_proj(xdbl[:, :dt_rank]) + dt_bias), B, C, z)
    ScanBatchArgs sb;
    sb.batch = int(B); sb.d_inner = int(di); sb.d_state = int(p.d_state); sb.dt_rank = int(p.dt_rank);
    sb.xdbl = xdbl; sb.x = p.xc;
    sb.z = static_cast<const char*>(p.xz) + di * es; sb.z_stride = 2 * di;
    sb.dt_w = p.dt_proj_w; sb.dt_bias = p.dt_bias; sb.A = p.A; sb.D = p.D; sb.ssm_state = p.ssm_state; sb.y = p.y;
    launch_scan_batch(sb, p.act_dtype, stream);
    // 5. delta = out_proj(y), added by the next layer's add_norm; the last layer completes the residual itself.
    if (l + 1 < n) {
      launch_matmul(proj(p, p.y, p.out_proj_w, p.out_proj_b, p.delta, d, di, p.act_dtype), cublas, stream);
    } else if (cublas && !p.out_proj_b) {
      cublas->gemm(proj(p, p.y, p.out_proj_w, nullptr, p.residual, d, di, DType::F32), stream, 1.f);
    } else {
      launch_matmul(proj(p, p.y, p.out_proj_w, p.out_proj_b, p.delta, d, di, p.act_dtype), cublas, stream);
      launch_add_norm(norm_of(p, p.delta), stream);  // residual += delta (normalized rows to the scratch)
    }
  }
}

}  // namespace cuda
}  // namespace mambart
