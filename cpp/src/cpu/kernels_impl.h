// The CPU kernels, written once against the vector primitives of simd_<isa>.h (vf, W, vload, vfma, ...).
// Each kernels_<isa>.cpp includes its simd header, defines MAMBART_CPU_ISA (the namespace) and
// MAMBART_GEMM_MR (GEMM register-tile rows), then includes this file once. Everything here lives in the
// ISA's own namespace, so code compiled with different -m flags never shares a symbol (no ODR mixing);
// for the same reason this file calls no inline function from other project headers.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/kernels.h"

namespace mambart {
namespace cpu {
namespace MAMBART_CPU_ISA {

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- math (Cephes-style single-precision polynomials, ~1-2 ulp) ---------------------------------------

// Inputs are clamped to [-87.3, 88]: below, the result is ~1e-38 instead of a denormal or 0; above, ~1.6e38
// instead of a larger value or inf (harmless in silu and softplus, whose results then round the same).
MAMBART_VINLINE vf vexp(vf x) {
  x = vmin(vmax(x, vset1(-87.33654f)), vset1(88.0f));
  vf n = vround(vmul(x, vset1(1.44269504088896341f)));
  vf r = vfma(n, vset1(-0.693359375f), x);
  r = vfma(n, vset1(2.12194440e-4f), r);
  vf p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(p, vmul(r, r), vadd(r, vset1(1.f)));
  return vscale2(p, n);
}

// Natural log for positive normal x.
MAMBART_VINLINE vf vlog(vf x) {
  vf e;
  vf m = vfrexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
  vf small = vsel_lt(m, vset1(0.707106781186547524f), vset1(1.f), vzero());
  e = vsub(e, small);
  m = vsub(vadd(m, vmul(m, small)), vset1(1.f));  // m < sqrt(1/2) ? 2m - 1 : m - 1
  vf z = vmul(m, m);
  vf y = vset1(7.0376836292e-2f);
  y = vfma(y, m, vset1(-1.1514610310e-1f));
  y = vfma(y, m, vset1(1.1676998740e-1f));
  y = vfma(y, m, vset1(-1.2420140846e-1f));
  y = vfma(y, m, vset1(1.4249322787e-1f));
  y = vfma(y, m, vset1(-1.6668057665e-1f));
  y = vfma(y, m, vset1(2.0000714765e-1f));
  y = vfma(y, m, vset1(-2.4999993993e-1f));
  y = vfma(y, m, vset1(3.3333331174e-1f));
  y = vmul(vmul(y, m), z);
  y = vfma(e, vset1(-2.12194440e-4f), y);
  y = vfma(z, vset1(-0.5f), y);
  return vfma(e, vset1(0.693359375f), vadd(m, y));
}

// silu(v) = v / (1 + exp(-v))
MAMBART_VINLINE vf vsilu(vf v) { return vdiv(v, vadd(vset1(1.f), vexp(vsub(vzero(), v)))); }

// softplus(v) = v > 20 ? v : log1p(exp(v)); log1p(e) = log(u) * e / (u - 1) with u = 1 + e (exact for tiny e).
MAMBART_VINLINE vf vsoftplus(vf v) {
  vf e = vexp(vmin(v, vset1(20.f)));
  vf u = vadd(vset1(1.f), e);
  vf d = vsub(u, vset1(1.f));
  vf lp = vsel_eq(d, vzero(), e, vdiv(vmul(vlog(u), e), vsel_eq(d, vzero(), vset1(1.f), d)));
  return vsel_gt(v, vset1(20.f), v, lp);
}

// ---- weight loads by stored dtype -------------------------------------------------------------------

struct WF32 {
  using T = float;
  MAMBART_VINLINE vf load(const T* p) { return vload(p); }
  MAMBART_VINLINE vf load_n(const T* p, int64_t n) { return vload_n(p, n); }
};
struct WF16 {
  using T = uint16_t;
  MAMBART_VINLINE vf load(const T* p) { return vload_f16(p); }
  MAMBART_VINLINE vf load_n(const T* p, int64_t n) { return vload_f16_n(p, n); }
};
struct WBF16 {
  using T = uint16_t;
  MAMBART_VINLINE vf load(const T* p) { return vload_bf16(p); }
  MAMBART_VINLINE vf load_n(const T* p, int64_t n) { return vload_bf16_n(p, n); }
};

// Converts n elements to fp32.
template <class WL>
static void convert_row(const typename WL::T* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) vstore(dst + i, WL::load(src + i));
  if (i < n) vstore_n(dst + i, WL::load_n(src + i, n - i), n - i);
}

// ---- embed ------------------------------------------------------------------------------------------

template <class WL>
static void embed_t(const EmbedParams& p, int64_t t0, int64_t t1) {
  const auto* table = static_cast<const typename WL::T*>(p.table);
  for (int64_t t = t0; t < t1; t++) convert_row<WL>(table + int64_t(p.ids[t]) * p.d_model, p.out + t * p.d_model, p.d_model);
}

static void embed(const EmbedParams& p, int64_t t0, int64_t t1) {
  switch (p.table_dtype) {
    case DType::F16: return embed_t<WF16>(p, t0, t1);
    case DType::BF16: return embed_t<WBF16>(p, t0, t1);
    default: return embed_t<WF32>(p, t0, t1);
  }
}

// ---- add + norm -------------------------------------------------------------------------------------

static void add_norm(const AddNormParams& p, int64_t r0, int64_t r1) {
  const int64_t dim = p.dim;
  const int64_t dv = dim / W * W, tail = dim - dv;
  for (int64_t r = r0; r < r1; r++) {
    float* res = p.residual + r * dim;
    float* out = static_cast<float*>(p.out) + r * dim;
    if (p.delta) {
      // residual += delta   (dim,)
      const float* d = static_cast<const float*>(p.delta) + r * dim;
      for (int64_t i = 0; i < dv; i += W) vstore(res + i, vadd(vload(res + i), vload(d + i)));
      if (tail) vstore_n(res + dv, vadd(vload_n(res + dv, tail), vload_n(d + dv, tail)), tail);
    }
    vf mean = vzero();
    if (!p.rms) {
      vf s = vzero();
      for (int64_t i = 0; i < dv; i += W) s = vadd(s, vload(res + i));
      if (tail) s = vadd(s, vload_n(res + dv, tail));
      mean = vset1(vhsum(s) / float(dim));
    }
    // mean((residual - mean)^2); for RMSNorm mean = 0
    vf ss = vzero();
    for (int64_t i = 0; i < dv; i += W) {
      vf c = vsub(vload(res + i), mean);
      ss = vfma(c, c, ss);
    }
    if (tail) {
      vf c = vsub(vload_n(res + dv, tail), vload_n(reinterpret_cast<const float*>(&mean), tail));
      ss = vfma(c, c, ss);
    }
    const vf rstd = vset1(1.f / std::sqrt(vhsum(ss) / float(dim) + p.eps));
    for (int64_t i = 0; i < dim; i += W) {
      const int64_t n = imin(W, dim - i);
      vf v = vmul(vmul(vsub(vload_n(res + i, n), mean), rstd), vload_n(p.weight + i, n));
      if (p.bias) v = vadd(v, vload_n(p.bias + i, n));
      vstore_n(out + i, v, n);
    }
  }
}

// ---- matmul: GEMV (small M) -----------------------------------------------------------------------------

// out[m][j] = dot(x[m, :], w[j, :]) for m < MT, j < NT, over K.
template <class WL, int MT, int NT>
MAMBART_VINLINE void dot_tile(const float* x, int64_t ldx, const typename WL::T* w, int64_t K, float out[MT][NT]) {
  vf acc[MT][NT];
  for (int m = 0; m < MT; m++)
    for (int j = 0; j < NT; j++) acc[m][j] = vzero();
  int64_t k = 0;
  for (; k + W <= K; k += W) {
    vf wv[NT];
    // Prefetch the next tile's rows at the same offset (a hint; past the end of w it is harmless).
    for (int j = 0; j < NT; j++) __builtin_prefetch(w + (j + NT) * K + k);
    for (int j = 0; j < NT; j++) wv[j] = WL::load(w + j * K + k);
    for (int m = 0; m < MT; m++) {
      vf xv = vload(x + m * ldx + k);
      for (int j = 0; j < NT; j++) acc[m][j] = vfma(xv, wv[j], acc[m][j]);
    }
  }
  if (k < K) {
    const int64_t n = K - k;
    vf wv[NT];
    for (int j = 0; j < NT; j++) wv[j] = WL::load_n(w + j * K + k, n);
    for (int m = 0; m < MT; m++) {
      vf xv = vload_n(x + m * ldx + k, n);
      for (int j = 0; j < NT; j++) acc[m][j] = vfma(xv, wv[j], acc[m][j]);
    }
  }
  for (int m = 0; m < MT; m++)
    for (int j = 0; j < NT; j++) out[m][j] = vhsum(acc[m][j]);
}

// y[m0:m0+MT, n:n+NT] = x @ w[n:n+NT].T (+ bias)
template <class WL, int MT, int NT>
MAMBART_VINLINE void gemv_block(const MatmulParams& p, int64_t m0, int64_t n) {
  float out[MT][NT];
  dot_tile<WL, MT, NT>(static_cast<const float*>(p.x) + m0 * p.ldx, p.ldx,
                       static_cast<const typename WL::T*>(p.w) + n * p.K, p.K, out);
  float* y = static_cast<float*>(p.y);
  for (int m = 0; m < MT; m++)
    for (int j = 0; j < NT; j++) y[(m0 + m) * p.ldy + n + j] = out[m][j] + (p.bias ? p.bias[n + j] : 0.f);
}

constexpr int kGemvRows1 = W >= 16 ? 8 : 4;  // weight rows per tile when M == 1 (registers permitting)

// All M rows for the NT weight rows starting at n: groups of 4 x-rows, each weight row read from memory once
// (it stays in L1 across the groups).
template <class WL, int NT>
static void gemv_rows(const MatmulParams& p, int64_t n) {
  int64_t m = 0;
  for (; m + 4 <= p.M; m += 4) gemv_block<WL, 4, NT>(p, m, n);
  switch (p.M - m) {
    case 3: gemv_block<WL, 3, NT>(p, m, n); break;
    case 2: gemv_block<WL, 2, NT>(p, m, n); break;
    case 1: gemv_block<WL, 1, NT>(p, m, n); break;
    default: break;
  }
}

template <class WL>
static void gemv_t(const MatmulParams& p, int64_t n0, int64_t n1) {
  int64_t n = n0;
  if (p.M == 1)  // pure streaming: more weight rows in flight
    for (; n + kGemvRows1 <= n1; n += kGemvRows1) gemv_block<WL, 1, kGemvRows1>(p, 0, n);
  for (; n + 4 <= n1; n += 4) gemv_rows<WL, 4>(p, n);
  for (; n < n1; n++) gemv_rows<WL, 1>(p, n);
}

static void gemv(const MatmulParams& p, int64_t n0, int64_t n1) {
  switch (p.w_dtype) {
    case DType::F16: return gemv_t<WF16>(p, n0, n1);
    case DType::BF16: return gemv_t<WBF16>(p, n0, n1);
    default: return gemv_t<WF32>(p, n0, n1);
  }
}

// ---- matmul: cache-blocked GEMM (large M) -----------------------------------------------------------------

constexpr int NR = 2 * W;             // register tile: MR rows of x by NR weight rows (output columns)
constexpr int MR = MAMBART_GEMM_MR;

// Packs w[n0:n0+nc, k0:k0+kc] as fp32 panels of NR columns: bp[panel][k][NR], zero-padded past nc.
template <class WL>
static void pack_b(const typename WL::T* w, int64_t K, int64_t n0, int64_t nc, int64_t k0, int64_t kc, float* bp,
                   float* row) {
  for (int64_t j = 0; j < nc; j += NR) {
    float* panel = bp + j * kc;
    for (int r = 0; r < NR; r++) {
      if (j + r < nc) {
        convert_row<WL>(w + (n0 + j + r) * K + k0, row, kc);  // contiguous, vectorized
        for (int64_t k = 0; k < kc; k++) panel[k * NR + r] = row[k];
      } else {
        for (int64_t k = 0; k < kc; k++) panel[k * NR + r] = 0.f;
      }
    }
  }
}

// c[0:R, 0:nv] (+)= a[0:R, 0:kc] @ bp[0:kc, 0:NR]; on the first K block adds the bias (or overwrites).
template <int R>
static void micro_kernel(const float* a, int64_t lda, const float* bp, int64_t kc, float* c, int64_t ldc, int64_t nv,
                         const float* bias, bool accumulate) {
  vf acc0[R], acc1[R];
  for (int i = 0; i < R; i++) acc0[i] = acc1[i] = vzero();
  for (int64_t k = 0; k < kc; k++) {
    const vf b0 = vload(bp + k * NR), b1 = vload(bp + k * NR + W);
    for (int i = 0; i < R; i++) {
      const vf av = vset1(a[i * lda + k]);
      acc0[i] = vfma(av, b0, acc0[i]);
      acc1[i] = vfma(av, b1, acc1[i]);
    }
  }
  const int64_t n0 = imin(nv, W), n1 = nv - n0;
  vf bias0 = vzero(), bias1 = vzero();
  if (bias && !accumulate) {
    bias0 = vload_n(bias, n0);
    if (n1 > 0) bias1 = vload_n(bias + W, n1);
  }
  for (int i = 0; i < R; i++) {
    float* ci = c + i * ldc;
    vf v0 = accumulate ? vadd(acc0[i], vload_n(ci, n0)) : vadd(acc0[i], bias0);
    if (n0 == W) vstore(ci, v0); else vstore_n(ci, v0, n0);
    if (n1 > 0) {
      vf v1 = accumulate ? vadd(acc1[i], vload_n(ci + W, n1)) : vadd(acc1[i], bias1);
      if (n1 == W) vstore(ci + W, v1); else vstore_n(ci + W, v1, n1);
    }
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, const float*, bool);
template <int R>
struct MicroTable {
  // micro[r] handles r rows, r = 1..R
  MicroFn fn[R + 1];
  constexpr MicroTable() : fn() { fill<R>(); }
  template <int I>
  constexpr void fill() {
    fn[I] = &micro_kernel<I>;
    if constexpr (I > 1) fill<I - 1>();
  }
};
static constexpr MicroTable<MR> kMicro{};

template <class WL>
static void gemm_t(const MatmulParams& p, int64_t n0, int64_t n1, float* scratch) {
  const auto* w = static_cast<const typename WL::T*>(p.w);
  const float* x = static_cast<const float*>(p.x);
  float* y = static_cast<float*>(p.y);
  float* bp = scratch;                    // (kGemmKC, kGemmNC) packed weights
  float* row = scratch + kGemmKC * kGemmNC;  // (kGemmKC,) one converted weight row
  for (int64_t jc = n0; jc < n1; jc += kGemmNC) {
    const int64_t nc = imin(kGemmNC, n1 - jc);
    for (int64_t pc = 0; pc < p.K; pc += kGemmKC) {
      const int64_t kc = imin(kGemmKC, p.K - pc);
      pack_b<WL>(w, p.K, jc, nc, pc, kc, bp, row);
      for (int64_t ic = 0; ic < p.M; ic += kGemmMC) {
        const int64_t mc = imin(kGemmMC, p.M - ic);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nv = imin(NR, nc - jr);
          const float* bias = p.bias ? p.bias + jc + jr : nullptr;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = imin(MR, mc - ir);
            kMicro.fn[mr](x + (ic + ir) * p.ldx + pc, p.ldx, bp + jr * kc, kc, y + (ic + ir) * p.ldy + jc + jr, p.ldy,
                          nv, bias, pc > 0);
          }
        }
      }
    }
  }
}

static void gemm(const MatmulParams& p, int64_t n0, int64_t n1, float* scratch) {
  switch (p.w_dtype) {
    case DType::F16: return gemm_t<WF16>(p, n0, n1, scratch);
    case DType::BF16: return gemm_t<WBF16>(p, n0, n1, scratch);
    default: return gemm_t<WF32>(p, n0, n1, scratch);
  }
}

// ---- causal depthwise conv1d + SiLU, vectorized across channels -------------------------------------------

// Decode form (one token): the state and weights are used in their (d_inner, d_conv) layout, one channel at
// a time (no transposes); SiLU W channels at a time.
static void conv1d_step(const Conv1dParams& p, int64_t c0, int64_t c1) {
  const int64_t dc = p.d_conv;
  alignas(64) float acc_l[W];
  for (int64_t b = 0; b < p.batch; b++) {
    float* st = p.conv_state + b * p.d_inner * dc;  // (d_inner, d_conv)
    const float* x = static_cast<const float*>(p.x) + b * p.x_batch_stride;
    float* out = static_cast<float*>(p.out) + b * p.out_batch_stride;
    for (int64_t c = c0; c < c1; c += W) {
      const int64_t nl = imin(W, c1 - c);
      for (int64_t l = 0; l < nl; l++) {
        float* s = st + (c + l) * dc;
        const float* w = p.weight + (c + l) * dc;
        // conv_state = roll(conv_state, -1); conv_state[-1] = x;  acc = sum(conv_state * w) + bias
        float acc = p.bias ? p.bias[c + l] : 0.f;
        for (int64_t k = 0; k + 1 < dc; k++) {
          s[k] = s[k + 1];
          acc += s[k] * w[k];
        }
        s[dc - 1] = x[c + l];
        acc_l[l] = acc + s[dc - 1] * w[dc - 1];
      }
      vstore_n(out + c, vsilu(vload_n(acc_l, nl)), nl);
    }
  }
}

static void conv1d(const Conv1dParams& p, int64_t c0, int64_t c1) {
  if (p.seqlen == 1) return conv1d_step(p, c0, c1);
  const int64_t dc = p.d_conv;
  alignas(64) float tile[kMaxDConv][W];  // gathered (d_conv, lanes) slices
  for (int64_t c = c0; c < c1; c += W) {
    const int64_t nl = imin(W, c1 - c);
    // weight (d_inner, d_conv) -> wv[k] across lanes
    vf wv[kMaxDConv];
    for (int64_t k = 0; k < dc; k++) {
      for (int64_t l = 0; l < nl; l++) tile[k][l] = p.weight[(c + l) * dc + k];
      wv[k] = vload_n(tile[k], nl);
    }
    const vf bias = p.bias ? vload_n(p.bias + c, nl) : vzero();
    for (int64_t b = 0; b < p.batch; b++) {
      float* st = p.conv_state + b * p.d_inner * dc;  // (d_inner, d_conv)
      vf win[kMaxDConv];
      for (int64_t k = 0; k < dc; k++) {
        for (int64_t l = 0; l < nl; l++) tile[k][l] = st[(c + l) * dc + k];
        win[k] = vload_n(tile[k], nl);
      }
      const float* x = static_cast<const float*>(p.x) + b * p.x_batch_stride + c;
      float* out = static_cast<float*>(p.out) + b * p.out_batch_stride + c;
      for (int64_t t = 0; t < p.seqlen; t++) {
        // window = [previous d_conv-1 inputs, x_t];  out_t = silu(sum_k w[k] * window[k] + bias)
        for (int64_t k = 0; k + 1 < dc; k++) win[k] = win[k + 1];
        win[dc - 1] = vload_n(x + t * p.x_token_stride, nl);
        vf acc = bias;
        for (int64_t k = 0; k < dc; k++) acc = vfma(wv[k], win[k], acc);
        vstore_n(out + t * p.out_token_stride, vsilu(acc), nl);
      }
      for (int64_t k = 0; k < dc; k++) {
        vstore(tile[k], win[k]);
        for (int64_t l = 0; l < nl; l++) st[(c + l) * dc + k] = tile[k][l];
      }
    }
  }
}

// ---- selective scan ---------------------------------------------------------------------------------------

// Prefill form: W channels per vector, the (d_state, W) slice of the state kept transposed in a local tile
// for the whole sequence, so every step is vertical (no horizontal sums).
static void scan_channels(const ScanParams& p, int64_t c0, int64_t c1) {
  const int64_t ds = p.d_state;
  alignas(64) float h[kMaxDState * W];  // (d_state, W)
  alignas(64) float a[kMaxDState * W];  // (d_state, W)
  for (int64_t c = c0; c < c1; c += W) {
    const int64_t nl = imin(W, c1 - c);
    for (int64_t n = 0; n < ds; n++)
      for (int64_t l = 0; l < W; l++) a[n * W + l] = l < nl ? p.A[(c + l) * ds + n] : 0.f;
    const vf dtb = p.dt_bias ? vload_n(p.dt_bias + c, nl) : vzero();
    const vf Dv = p.D ? vload_n(p.D + c, nl) : vzero();
    for (int64_t b = 0; b < p.batch; b++) {
      float* st = p.ssm_state + b * p.d_inner * ds;  // (d_inner, d_state)
      for (int64_t n = 0; n < ds; n++)
        for (int64_t l = 0; l < W; l++) h[n * W + l] = l < nl ? st[(c + l) * ds + n] : 0.f;
      const float* xp = static_cast<const float*>(p.x) + b * p.x_batch_stride + c;
      const float* dtp = static_cast<const float*>(p.dt) + b * p.dt_batch_stride + c;
      const float* Bp = static_cast<const float*>(p.B) + b * p.B_batch_stride;
      const float* Cp = static_cast<const float*>(p.C) + b * p.C_batch_stride;
      const float* zp = p.z ? static_cast<const float*>(p.z) + b * p.z_batch_stride + c : nullptr;
      float* yp = static_cast<float*>(p.y) + b * p.y_batch_stride + c;
      for (int64_t t = 0; t < p.seqlen; t++) {
        const vf x = vload_n(xp + t * p.x_token_stride, nl);
        // delta = softplus(dt + dt_bias)
        const vf delta = vsoftplus(vadd(vload_n(dtp + t * p.dt_token_stride, nl), dtb));
        const vf dx = vmul(delta, x);
        const float* Bt = Bp + t * p.B_token_stride;
        const float* Ct = Cp + t * p.C_token_stride;
        vf y = vzero();
        for (int64_t n = 0; n < ds; n++) {
          // h = exp(delta * A) * h + delta * B_t * x_t;  y += h * C_t
          vf hn = vfma(vexp(vmul(delta, vload(a + n * W))), vload(h + n * W), vmul(dx, vset1(Bt[n])));
          vstore(h + n * W, hn);
          y = vfma(hn, vset1(Ct[n]), y);
        }
        y = vfma(Dv, x, y);
        if (zp) y = vmul(y, vsilu(vload_n(zp + t * p.z_token_stride, nl)));
        vstore_n(yp + t * p.y_token_stride, y, nl);
      }
      for (int64_t n = 0; n < ds; n++)
        for (int64_t l = 0; l < nl; l++) st[(c + l) * ds + n] = h[n * W + l];
    }
  }
}

// Decode form (few tokens, d_state a multiple of W): the state is used in place, vectorized across d_state;
// the per-channel terms (softplus, gate) are still computed W channels at a time.
static void scan_states(const ScanParams& p, int64_t c0, int64_t c1) {
  const int64_t ds = p.d_state;
  alignas(64) float delta_l[W], dx_l[W], y_l[W];
  for (int64_t b = 0; b < p.batch; b++) {
    float* st = p.ssm_state + b * p.d_inner * ds;
    for (int64_t t = 0; t < p.seqlen; t++) {
      const float* x = static_cast<const float*>(p.x) + b * p.x_batch_stride + t * p.x_token_stride;
      const float* dt = static_cast<const float*>(p.dt) + b * p.dt_batch_stride + t * p.dt_token_stride;
      const float* Bt = static_cast<const float*>(p.B) + b * p.B_batch_stride + t * p.B_token_stride;
      const float* Ct = static_cast<const float*>(p.C) + b * p.C_batch_stride + t * p.C_token_stride;
      const float* z = p.z ? static_cast<const float*>(p.z) + b * p.z_batch_stride + t * p.z_token_stride : nullptr;
      float* yo = static_cast<float*>(p.y) + b * p.y_batch_stride + t * p.y_token_stride;
      for (int64_t c = c0; c < c1; c += W) {
        const int64_t nl = imin(W, c1 - c);
        const vf xv = vload_n(x + c, nl);
        const vf dtb = p.dt_bias ? vload_n(p.dt_bias + c, nl) : vzero();
        const vf delta = vsoftplus(vadd(vload_n(dt + c, nl), dtb));
        vstore(delta_l, delta);
        vstore(dx_l, vmul(delta, xv));
        for (int64_t l = 0; l < nl; l++) {
          float* h = st + (c + l) * ds;
          const float* A = p.A + (c + l) * ds;
          const vf dl = vset1(delta_l[l]), dxl = vset1(dx_l[l]);
          vf acc = vzero();
          for (int64_t n = 0; n < ds; n += W) {
            vf hn = vfma(vexp(vmul(dl, vload(A + n))), vload(h + n), vmul(dxl, vload(Bt + n)));
            vstore(h + n, hn);
            acc = vfma(hn, vload(Ct + n), acc);
          }
          y_l[l] = vhsum(acc);
        }
        vf y = vload_n(y_l, nl);
        if (p.D) y = vfma(vload_n(p.D + c, nl), xv, y);
        if (z) y = vmul(y, vsilu(vload_n(z + c, nl)));
        vstore_n(yo + c, y, nl);
      }
    }
  }
}

static void scan(const ScanParams& p, int64_t c0, int64_t c1) {
  if (p.d_state % W == 0 && p.seqlen <= 4)
    scan_states(p, c0, c1);
  else
    scan_channels(p, c0, c1);
}

// ---- argmax -----------------------------------------------------------------------------------------------

// Blocks of 2048 floats: a vector max per block from memory; only a block that raises the running best is
// searched again (from L1) for its first maximal index. NaNs are never selected.
static int64_t argmax(const float* x, int64_t n) {
  constexpr int64_t kBlock = 2048;
  int64_t best_i = -1;
  float best = 0.f;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t bn = imin(kBlock, n - b0);
    const float* xb = x + b0;
    vf m = vset1(-INFINITY);
    int64_t i = 0;
    for (; i + W <= bn; i += W) m = vmax(m, vload(xb + i));
    float bm = vhmax(m);
    for (; i < bn; i++) bm = xb[i] > bm ? xb[i] : bm;
    if (best_i >= 0 && !(bm > best)) continue;
    for (i = 0; i < bn; i++)
      if (xb[i] == bm) break;
    if (i < bn) {
      best = bm;
      best_i = b0 + i;
    }
  }
  return best_i < 0 ? 0 : best_i;
}

static const KernelTable kTable = {
    MAMBART_CPU_ISA_NAME, W, NR, &embed, &add_norm, &gemv, &gemm, &conv1d, &scan, &argmax,
};

}  // namespace MAMBART_CPU_ISA
}  // namespace cpu
}  // namespace mambart
