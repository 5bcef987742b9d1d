// The batched decode kernels (9..256 rows; decode_batch.cpp) on the CPU simulation (cuda_sim.h) against the ops they
// fuse, composed from the scalar reference (cpp/src/ref):
//   conv_xproj: xc = silu(conv_step(x)) (ref conv1d, seqlen 1), xdbl = xc x_proj^T in fp32 (ref matmul, y fp32);
//   scan_batch: xdbl rounded to the act dtype, dt = dt_proj(xdbl[:, :dt_rank]) rounded (ref matmul), then the ref
//   scan step on (xc, dt, B, C, z).
// On the simulation the tile product takes mma_16x8's FP32 path (the tensor-core asm is device code): the layout
// and the fusion are checked, the m16n8k16 instruction is not. Tolerances: xc and y fp32 1e-5, fp16/bf16 1e-2;
// xdbl 1e-5 (fp32 sums in another order); the ssm / conv state 1e-5.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"
#include "ref/ref_ops.h"
#include "sim_util.h"

namespace {

using mambart::DType;

std::mt19937 g_rng(777);
float randn() { return std::normal_distribution<float>(0.f, 1.f)(g_rng); }

std::vector<unsigned char> rand_buf(DType t, int64_t n, float scale = 1.f) { return sim::rand_buf(g_rng, t, n, scale); }
using sim::as_f32;
std::vector<float> randv(size_t n, float scale, float shift = 0.f) {
  std::vector<float> v(n);
  for (auto& x : v) x = shift + scale * randn();
  return v;
}

bool check(DType t, int B, int di, int d_conv, int dt_rank, int ds) {
  const int nx = dt_rank + 2 * ds;
  const size_t es = sim::esize(t);
  // inputs
  auto xz = rand_buf(t, int64_t(B) * 2 * di, 1.f);                 // in_proj output: x | z
  auto wx = rand_buf(t, int64_t(nx) * di, 0.1f);                   // x_proj (nx, d_inner)
  auto wdt = rand_buf(t, int64_t(di) * dt_rank, 0.3f);             // dt_proj (d_inner, dt_rank)
  std::vector<float> conv_w = randv(size_t(di) * d_conv, 0.5f), conv_b = randv(size_t(di), 1.f);
  std::vector<float> conv0 = randv(size_t(B) * di * d_conv, 1.f), dt_bias = randv(size_t(di), 0.3f, -1.f);
  std::vector<float> A(size_t(di) * ds), D = randv(size_t(di), 1.f), ssm0 = randv(size_t(B) * di * ds, 1.f);
  for (auto& v : A) v = -std::exp(std::fabs(randn()));

  // reference: conv step, x_proj, rounding, dt_proj, scan step
  std::vector<float> conv_ref = conv0, ssm_ref = ssm0;
  std::vector<unsigned char> xc_ref(size_t(B) * di * es);
  mambart::Conv1dParams cp;
  cp.batch = B; cp.seqlen = 1; cp.d_inner = di; cp.d_conv = d_conv; cp.act_dtype = t;
  cp.x = xz.data(); cp.x_batch_stride = 2 * di; cp.x_token_stride = 2 * di;
  cp.conv_state = conv_ref.data(); cp.weight = conv_w.data(); cp.bias = conv_b.data();
  cp.out = xc_ref.data(); cp.out_batch_stride = di; cp.out_token_stride = di;
  mambart::ref::conv1d(cp);
  std::vector<float> xdbl_ref(size_t(B) * nx);
  mambart::MatmulParams mp;
  mp.M = B; mp.N = nx; mp.K = di; mp.x = xc_ref.data(); mp.ldx = di; mp.w = wx.data(); mp.w_dtype = t;
  mp.y = xdbl_ref.data(); mp.ldy = nx; mp.act_dtype = t; mp.y_dtype = DType::F32;
  mambart::ref::matmul(mp);
  std::vector<unsigned char> xdbl_t(size_t(B) * nx * es), dt_t(size_t(B) * di * es), y_ref(size_t(B) * di * es);
  for (size_t i = 0; i < xdbl_ref.size(); ++i) mambart::ref::store(xdbl_t.data(), t, int64_t(i), xdbl_ref[i]);
  mambart::MatmulParams dp;
  dp.M = B; dp.N = di; dp.K = dt_rank; dp.x = xdbl_t.data(); dp.ldx = nx; dp.w = wdt.data(); dp.w_dtype = t;
  dp.y = dt_t.data(); dp.ldy = di; dp.act_dtype = t; dp.y_dtype = t;
  mambart::ref::matmul(dp);
  mambart::ScanParams sp;
  sp.batch = B; sp.seqlen = 1; sp.d_inner = di; sp.d_state = ds; sp.act_dtype = t;
  sp.x = xc_ref.data(); sp.x_batch_stride = di; sp.x_token_stride = di;
  sp.dt = dt_t.data(); sp.dt_batch_stride = di; sp.dt_token_stride = di;
  sp.B = xdbl_t.data() + size_t(dt_rank) * es; sp.B_batch_stride = nx; sp.B_token_stride = nx;
  sp.C = xdbl_t.data() + size_t(dt_rank + ds) * es; sp.C_batch_stride = nx; sp.C_token_stride = nx;
  sp.z = xz.data() + size_t(di) * es; sp.z_batch_stride = 2 * di; sp.z_token_stride = 2 * di;
  sp.A = A.data(); sp.D = D.data(); sp.dt_bias = dt_bias.data(); sp.ssm_state = ssm_ref.data();
  sp.y = y_ref.data(); sp.y_batch_stride = di; sp.y_token_stride = di;
  mambart::ref::scan(sp);

  // simulated kernels
  std::vector<float> conv_sim = conv0, ssm_sim = ssm0, xdbl_sim(size_t(B) * nx, 0.f);
  std::vector<unsigned char> xc_sim(xc_ref.size()), y_sim(y_ref.size());
  mambart::cuda::ConvXprojArgs cx;
  cx.batch = B; cx.d_inner = di; cx.d_conv = d_conv; cx.nx = nx; cx.x = xz.data(); cx.x_stride = 2 * di;
  cx.conv_state = conv_sim.data(); cx.conv_w = conv_w.data(); cx.conv_b = conv_b.data(); cx.xc = xc_sim.data();
  cx.w = wx.data(); cx.xdbl = xdbl_sim.data();
  mambart::cuda::launch_conv_xproj(cx, t, nullptr);
  mambart::cuda::ScanBatchArgs sb;
  sb.batch = B; sb.d_inner = di; sb.d_state = ds; sb.dt_rank = dt_rank; sb.xdbl = xdbl_sim.data();
  sb.x = xc_sim.data(); sb.z = xz.data() + size_t(di) * es; sb.z_stride = 2 * di; sb.dt_w = wdt.data();
  sb.dt_bias = dt_bias.data(); sb.A = A.data(); sb.D = D.data(); sb.ssm_state = ssm_sim.data(); sb.y = y_sim.data();
  mambart::cuda::launch_scan_batch(sb, t, nullptr);

  const double tol = t == DType::F32 ? 1e-5 : 1e-2;
  const double e_xc = sim::rel(as_f32(xc_sim, t), as_f32(xc_ref, t)), e_x = sim::rel(xdbl_sim, xdbl_ref);
  const double e_conv = sim::rel(conv_sim, conv_ref), e_ssm = sim::rel(ssm_sim, ssm_ref);
  const double e_y = sim::rel(as_f32(y_sim, t), as_f32(y_ref, t));
  // The kernels' xdbl sums differ from the reference's in order: when one lands on the other side of a rounding
  // boundary of the act dtype, dt / B / C and so the state move by an ulp of fp16/bf16.
  const double tol_ssm = t == DType::F32 ? 1e-5 : 1e-2;
  const bool ok = e_xc <= tol && e_x <= 1e-5 && e_conv <= 1e-6 && e_ssm <= tol_ssm && e_y <= tol;
  std::printf("%s batch step %-4s batch %3d d_inner %3d d_conv %d dt_rank %2d d_state %2d: xc %.1e xdbl %.1e conv %.1e "
              "ssm %.1e y %.1e\n",
              ok ? "ok  " : "FAIL", sim::name(t), B, di, d_conv, dt_rank, ds, e_xc, e_x, e_conv, e_ssm, e_y);
  return ok;
}

}  // namespace

int run_batch_cases() {
  int failed = 0;
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    failed += !check(t, 9, 128, 4, 8, 16);
    failed += !check(t, 20, 96, 3, 5, 32);
    failed += !check(t, 33, 64, 4, 16, 16);
  }
  std::printf("batch: %d failed\n", failed);
  return failed;
}
