// The prefill scan of cuda/scan.cu, run on the CPU simulation (cuda_sim.h), against the scalar reference
// (cpp/src/ref): every lane count, one or several time segments, fp32 / fp16 / bf16, odd shapes, both tile fetch
// paths (16-byte cp.async rows and element copies), x/z and B/C interleaved as the model stores them, a nonzero
// initial state. One line per case; run_scan_cases() returns the number of failed cases.
// Tolerances (max |sim - ref| / max |ref|) as tests/test_cuda_kernels.py: state and fp32 y 1e-5 up to 100 tokens,
// 1e-4 beyond; fp16 / bf16 y 1e-2.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"
#include "ref/ref_ops.h"
#include "sim_util.h"

namespace {

using mambart::DType;
using mambart::ScanParams;
using sim::esize;
using sim::name;
using sim::rel;

struct Case {
  DType dt;
  int64_t batch, seqlen, d_inner, d_state;
  bool with_z, with_d;
  const char* lanes;     // MAMBART_SCAN_LANES
  const char* segments;  // MAMBART_SCAN_SEGMENTS
  int64_t pad = 0;       // extra elements per token row (odd: the element-copy tile path)
  bool scratch = true;   // hand the launcher the scratch it asks for
};

// Runs one case; returns whether it passed.
bool run(const Case& c, int num_sms) {
  setenv("MAMBART_SCAN_LANES", c.lanes, 1);
  setenv("MAMBART_SCAN_SEGMENTS", c.segments, 1);
  std::mt19937 g(unsigned(c.batch * 1000003 + c.seqlen * 1009 + c.d_inner * 31 + c.d_state + int(c.dt) * 7));
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(0.f, 1.f);
  const DType T = c.dt;
  const int64_t B = c.batch, L = c.seqlen, di = c.d_inner, ds = c.d_state;
  // The model's layout: xz = in_proj output (batch, L, 2 d_inner) with x then z; xdbl = x_proj output (batch, L,
  // dt_rank + 2 d_state) with B then C after dt; dt its own (batch, L, d_inner). Rows padded by c.pad elements.
  const int64_t dt_rank = 3, xz_row = 2 * di + c.pad, xdbl_row = dt_rank + 2 * ds + c.pad, dt_row = di + c.pad;
  std::vector<unsigned char> xz(size_t(B * L * xz_row) * esize(T)), xdbl(size_t(B * L * xdbl_row) * esize(T));
  std::vector<unsigned char> dtv(size_t(B * L * dt_row) * esize(T));
  for (int64_t i = 0; i < B * L * xz_row; ++i) mambart::ref::store(xz.data(), T, i, nd(g));
  for (int64_t i = 0; i < B * L * xdbl_row; ++i) mambart::ref::store(xdbl.data(), T, i, nd(g));
  for (int64_t i = 0; i < B * L * dt_row; ++i) mambart::ref::store(dtv.data(), T, i, nd(g) - 1.f);
  std::vector<float> A(static_cast<size_t>(di * ds)), D(static_cast<size_t>(di)), dt_bias(static_cast<size_t>(di));
  std::vector<float> state0(static_cast<size_t>(B * di * ds));
  for (auto& v : A) v = -std::exp(std::log(0.5f) + ud(g) * std::log(32.f));  // -exp(A_log), A_log in log[0.5, 16]
  for (auto& v : D) v = nd(g);
  for (auto& v : dt_bias) v = -1.f - ud(g);
  for (auto& v : state0) v = 0.5f * nd(g);

  ScanParams p;
  p.batch = B; p.seqlen = L; p.d_inner = di; p.d_state = ds; p.act_dtype = T;
  const size_t es = esize(T);
  p.x = xz.data();                      p.x_batch_stride = L * xz_row;     p.x_token_stride = xz_row;
  p.z = c.with_z ? xz.data() + di * es : nullptr;
  p.z_batch_stride = L * xz_row;        p.z_token_stride = xz_row;
  p.dt = dtv.data();                    p.dt_batch_stride = L * dt_row;    p.dt_token_stride = dt_row;
  p.B = xdbl.data() + dt_rank * es;     p.B_batch_stride = L * xdbl_row;   p.B_token_stride = xdbl_row;
  p.C = xdbl.data() + (dt_rank + ds) * es;  p.C_batch_stride = L * xdbl_row;  p.C_token_stride = xdbl_row;
  p.A = A.data(); p.D = c.with_d ? D.data() : nullptr; p.dt_bias = dt_bias.data();
  p.y_batch_stride = L * di; p.y_token_stride = di;

  // reference
  std::vector<unsigned char> y_ref(size_t(B * L * di) * es), y_sim(y_ref.size());
  std::vector<float> st_ref = state0, st_sim = state0;
  ScanParams pr = p;
  pr.y = y_ref.data(); pr.ssm_state = st_ref.data();
  mambart::ref::scan(pr);
  // simulated CUDA launch (16-byte aligned buffers: vectors' data() is)
  ScanParams ps = p;
  ps.y = y_sim.data(); ps.ssm_state = st_sim.data();
  const size_t need = mambart::cuda::scan_scratch_bytes(ps, num_sms);
  std::vector<float> scratch(need / sizeof(float) + 4, NAN);
  mambart::cuda::launch_scan(ps, num_sms, nullptr, c.scratch && need ? scratch.data() : nullptr, c.scratch ? need : 0);

  std::vector<float> ya(size_t(B * L * di)), yb(ya.size());
  for (size_t i = 0; i < ya.size(); ++i) {
    ya[i] = mambart::ref::load(y_sim.data(), T, int64_t(i));
    yb[i] = mambart::ref::load(y_ref.data(), T, int64_t(i));
  }
  const double tol_state = L > 100 ? 1e-4 : 1e-5, tol_y = T == DType::F32 ? tol_state : 1e-2;
  const double es_ = rel(st_sim, st_ref), ey = rel(ya, yb);
  const bool ok = es_ <= tol_state && ey <= tol_y;
  const int segs_asked = int((need / sizeof(float) + size_t(B * di)) / size_t(B * di * ds + B * di));  // asked for
  std::printf("%s %-4s batch %lld seqlen %4lld d_inner %3lld d_state %2lld z %d D %d lanes %2s segments %-4s (%d asked) pad %lld "
              "scratch %d: state %.2e y %.2e\n",
              ok ? "ok  " : "FAIL", name(T), (long long)B, (long long)L, (long long)di, (long long)ds, c.with_z,
              c.with_d, c.lanes, c.segments, std::max(1, segs_asked), (long long)c.pad, c.scratch, es_, ey);
  return ok;
}

}  // namespace

int run_scan_cases() {
  const int num_sms = 132;
  std::vector<Case> cases;
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (const char* lanes : {"4", "8", "16"})
      for (const char* segs : {"1", "2", "5"}) cases.push_back({t, 2, 300, 64, 16, true, true, lanes, segs});
  // odd shapes, the element-copy path, no z / D, short segments, segments that do not apply
  cases.push_back({DType::F32, 1, 97, 40, 13, true, true, "8", "3"});                // d_state 13: element path
  cases.push_back({DType::BF16, 2, 70, 24, 16, false, false, "8", "2"});             // 64 + 6 tokens
  cases.push_back({DType::F32, 1, 64, 16, 16, true, true, "16", "2"});               // two one-tile segments
  cases.push_back({DType::F16, 2, 150, 48, 16, true, true, "4", "3", 1});            // odd rows: element path
  cases.push_back({DType::F32, 2, 1100, 64, 16, true, true, "8", "auto"});           // auto: 2 segments here
  cases.push_back({DType::F32, 1, 300, 48, 32, true, true, "8", "3"});               // d_state 32: one segment
  cases.push_back({DType::BF16, 1, 40, 8, 64, true, false, "16", "2"});              // d_state 64, short
  cases.push_back({DType::F32, 2, 200, 64, 16, true, true, "8", "4", 0, false});     // no scratch: one segment
  cases.push_back({DType::F16, 1, 1, 40, 13, true, true, "8", "2"});                 // one token, prefill kernel
  cases.push_back({DType::F32, 1, 1000, 32, 16, true, true, "8", "7"});              // 7 segments of 160 tokens
  int failed = 0;
  for (const Case& c : cases) failed += run(c, num_sms) ? 0 : 1;
  std::printf("scan: %zu cases, %d failed\n", cases.size(), failed);
  return failed;
}
