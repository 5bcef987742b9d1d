// The causal conv1d of cuda/conv1d.cu (prefill: 16-byte and scalar paths, then the state update; decode step), run
// on the CPU simulation (cuda_sim.h) against the scalar reference (cpp/src/ref): fp32 / fp16 / bf16, d_conv 1..7,
// runs shorter than a thread's tokens, x read from the model's interleaved xz rows, a nonzero initial state.
// Tolerances as tests/test_cuda_kernels.py: output fp32 1e-5, fp16/bf16 1e-2; the state exact.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels.h"
#include "ref/ref_ops.h"
#include "sim_util.h"

namespace {

using mambart::Conv1dParams;
using mambart::DType;

struct ConvCase {
  DType dt;
  int64_t batch, seqlen, d_inner, d_conv;
  bool bias;
  int64_t row_extra;    // x rows: 2 d_inner + row_extra elements (the in_proj output's x half; odd: scalar path)
  const char* vec;      // MAMBART_CONV_VEC
};

bool run(const ConvCase& c) {
  setenv("MAMBART_CONV_VEC", c.vec, 1);
  std::mt19937 g(unsigned(c.batch * 7919 + c.seqlen * 131 + c.d_inner * 17 + c.d_conv * 3 + int(c.dt)));
  std::normal_distribution<float> nd(0.f, 1.f);
  const DType T = c.dt;
  const int64_t B = c.batch, L = c.seqlen, di = c.d_inner, W = c.d_conv, row = 2 * di + c.row_extra;
  const size_t es = sim::esize(T);
  std::vector<unsigned char> x(size_t(B * L * row) * es), out_ref(size_t(B * L * di) * es), out_sim(out_ref.size());
  for (int64_t i = 0; i < B * L * row; ++i) mambart::ref::store(x.data(), T, i, nd(g));
  std::vector<float> w(static_cast<size_t>(di * W)), bias(static_cast<size_t>(di));
  std::vector<float> st0(static_cast<size_t>(B * di * W));
  for (auto& v : w) v = 0.5f * nd(g);
  for (auto& v : bias) v = nd(g);
  for (auto& v : st0) v = nd(g);
  std::vector<float> st_ref = st0, st_sim = st0;

  Conv1dParams p;
  p.batch = B; p.seqlen = L; p.d_inner = di; p.d_conv = W; p.act_dtype = T;
  p.x = x.data(); p.x_batch_stride = L * row; p.x_token_stride = row;
  p.weight = w.data(); p.bias = c.bias ? bias.data() : nullptr;
  p.out_batch_stride = L * di; p.out_token_stride = di;
  Conv1dParams pr = p, ps = p;
  pr.conv_state = st_ref.data(); pr.out = out_ref.data();
  ps.conv_state = st_sim.data(); ps.out = out_sim.data();
  mambart::ref::conv1d(pr);
  mambart::cuda::launch_conv1d(ps, nullptr);

  std::vector<float> a(size_t(B * L * di)), b(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = mambart::ref::load(out_sim.data(), T, int64_t(i));
    b[i] = mambart::ref::load(out_ref.data(), T, int64_t(i));
  }
  const double eo = sim::rel(a, b), tol = T == DType::F32 ? 1e-5 : 1e-2;
  const bool state_equal = st_sim == st_ref;
  const bool ok = eo <= tol && state_equal;
  std::printf("%s conv1d %-4s batch %lld seqlen %3lld d_inner %3lld d_conv %lld bias %d row +%lld vec %s: out %.2e "
              "state %s\n",
              ok ? "ok  " : "FAIL", sim::name(T), (long long)B, (long long)L, (long long)di, (long long)W, c.bias,
              (long long)c.row_extra, c.vec, eo, state_equal ? "equal" : "DIFFERS");
  return ok;
}

}  // namespace

int run_conv_cases() {
  std::vector<ConvCase> cases;
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (int64_t W : {1, 2, 3, 4, 7}) {
      cases.push_back({t, 2, 37, 64, W, true, 0, "1"});   // 16-byte path: runs of 8 tokens, the last one short
      cases.push_back({t, 1, 5, 24, W, false, 0, "1"});   // one run shorter than the history
      cases.push_back({t, 2, 37, 64, W, true, 0, "0"});   // the scalar kernel, forced
    }
  cases.push_back({DType::F16, 1, 300, 40, 4, true, 0, "1"});
  cases.push_back({DType::F16, 2, 17, 33, 4, true, 0, "1"});  // d_inner 33: scalar path
  cases.push_back({DType::BF16, 1, 20, 64, 4, true, 1, "1"}); // odd rows: scalar path
  cases.push_back({DType::F32, 3, 1, 48, 4, true, 0, "1"});   // one token: the decode step kernel
  int failed = 0;
  for (const ConvCase& c : cases) failed += run(c) ? 0 : 1;
  std::printf("conv1d: %zu cases, %d failed\n", cases.size(), failed);
  return failed;
}
