// Checks every CPU kernel, on every ISA this machine has, against the scalar reference ops (ref::) on random
// inputs of odd sizes. Tolerance: fp32 results within 1e-5 relative to the largest reference magnitude
// (summation order differs); sampling must pick exactly the reference token.
// Run: build/<dir>/test_cpu_kernels   (exit status 1 on any failure)
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "ref/ref_ops.h"

using namespace mambart;

namespace {

std::mt19937 rng(1234);
int failures = 0;

std::vector<float> randn(size_t n, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
// Weights in dtype t (fp32 values rounded to t, kept as the raw bits).
std::vector<uint16_t> to_half(const std::vector<float>& v, DType t) {
  std::vector<uint16_t> h(v.size());
  if (t != DType::F32) from_f32(v.data(), t, h.data(), v.size());
  return h;
}

void expect_close(const std::string& what, const float* got, const float* want, size_t n, double tol = 1e-5) {
  double maxref = 1e-30, maxerr = 0;
  for (size_t i = 0; i < n; ++i) maxref = std::max(maxref, double(std::fabs(want[i])));
  size_t worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double e = std::fabs(double(got[i]) - double(want[i]));
    if (!(e <= maxerr)) { maxerr = e; worst = i; }
  }
  const double rel = maxerr / maxref;
  if (!(rel <= tol)) {
    ++failures;
    std::printf("FAIL %s: rel err %.3g at %zu (got %g want %g)\n", what.c_str(), rel, worst, got[worst], want[worst]);
  }
}

void test_matmul(Backend& be, const std::string& tag) {
  const int64_t Ms[] = {1, 3, 4, 5, 9, 17, 40, 200};
  const int64_t NKs[][2] = {{1, 1}, {7, 13}, {33, 17}, {80, 96}, {100, 300}, {257, 77}, {600, 48}};
  const DType dts[] = {DType::F32, DType::F16, DType::BF16};
  for (DType dt : dts)
    for (int64_t M : Ms)
      for (auto& nk : NKs) {
        const int64_t N = nk[0], K = nk[1];
        std::vector<float> x = randn(size_t(M * K)), wf = randn(size_t(N * K), 0.2f), bias = randn(size_t(N));
        std::vector<uint16_t> wh = to_half(wf, dt);
        MatmulParams p;
        p.M = M; p.N = N; p.K = K; p.x = x.data(); p.ldx = K;
        p.w = dt == DType::F32 ? static_cast<const void*>(wf.data()) : wh.data();
        p.w_dtype = dt; p.bias = (M % 2) ? bias.data() : nullptr; p.ldy = N;
        std::vector<float> y(size_t(M * N)), yr(size_t(M * N));
        p.y = y.data();
        be.matmul(p);
        p.y = yr.data();
        ref::matmul(p);
        expect_close(tag + " matmul " + dtype_name(dt) + " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                         " K=" + std::to_string(K), y.data(), yr.data(), y.size());
      }
}

void test_norm_embed(Backend& be, const std::string& tag) {
  for (int64_t dim : {1, 7, 16, 33, 768}) {
    for (bool rms : {true, false}) {
      const int64_t rows = 5;
      std::vector<float> res = randn(size_t(rows * dim), 3.f), delta = randn(size_t(rows * dim)), w = randn(size_t(dim)),
                         b = randn(size_t(dim));
      std::vector<float> res2 = res, out(res.size()), out2(res.size());
      AddNormParams p;
      p.n_rows = rows; p.dim = dim; p.residual = res.data(); p.delta = delta.data(); p.weight = w.data();
      p.bias = rms ? nullptr : b.data(); p.rms = rms; p.out = out.data();
      be.add_norm(p);
      p.residual = res2.data(); p.out = out2.data();
      ref::add_norm(p);
      const std::string name = tag + " add_norm dim=" + std::to_string(dim) + (rms ? " rms" : " ln");
      expect_close(name + " residual", res.data(), res2.data(), res.size());
      expect_close(name, out.data(), out2.data(), out.size());
    }
  }
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const int64_t vocab = 50, d = 37, T = 9;
    std::vector<float> tf = randn(size_t(vocab * d));
    std::vector<uint16_t> th = to_half(tf, dt);
    std::vector<int32_t> ids(T);
    for (auto& i : ids) i = int32_t(rng() % vocab);
    EmbedParams p;
    p.n_tokens = T; p.d_model = d; p.ids = ids.data();
    p.table = dt == DType::F32 ? static_cast<const void*>(tf.data()) : th.data();
    p.table_dtype = dt;
    std::vector<float> o(size_t(T * d)), o2(o.size());
    p.out = o.data();
    be.embed(p);
    p.out = o2.data();
    ref::embed(p);
    expect_close(tag + " embed " + dtype_name(dt), o.data(), o2.data(), o.size(), 0);
  }
}

void test_conv(Backend& be, const std::string& tag) {
  for (int64_t dc : {2, 3, 4})
    for (int64_t L : {1, 2, 7})
      for (int64_t di : {5, 24, 67}) {
        const int64_t B = 2;
        // x lives inside a wider (xz-like) buffer: token stride 2 * d_inner
        std::vector<float> x = randn(size_t(B * L * 2 * di)), st = randn(size_t(B * di * dc)), w = randn(size_t(di * dc)),
                           bias = randn(size_t(di));
        std::vector<float> st2 = st, out(size_t(B * L * di)), out2(out.size());
        Conv1dParams p;
        p.batch = B; p.seqlen = L; p.d_inner = di; p.d_conv = dc; p.x = x.data();
        p.x_batch_stride = L * 2 * di; p.x_token_stride = 2 * di; p.conv_state = st.data(); p.weight = w.data();
        p.bias = (di % 2) ? bias.data() : nullptr; p.out = out.data(); p.out_batch_stride = L * di;
        p.out_token_stride = di;
        be.conv1d(p);
        p.conv_state = st2.data(); p.out = out2.data();
        ref::conv1d(p);
        const std::string name =
            tag + " conv1d d_conv=" + std::to_string(dc) + " L=" + std::to_string(L) + " d_inner=" + std::to_string(di);
        expect_close(name, out.data(), out2.data(), out.size());
        expect_close(name + " state", st.data(), st2.data(), st.size());
      }
}

void test_scan(Backend& be, const std::string& tag) {
  for (int64_t ds : {1, 16, 17, 32})
    for (int64_t L : {1, 3, 20})
      for (int64_t di : {5, 48, 70}) {
        const int64_t B = 2, nx = 4 + 2 * ds;
        std::vector<float> x = randn(size_t(B * L * di)), dt = randn(size_t(B * L * di)),
                           xdbl = randn(size_t(B * L * nx)), z = randn(size_t(B * L * di)), A = randn(size_t(di * ds)),
                           D = randn(size_t(di)), dtb = randn(size_t(di), 0.5f), st = randn(size_t(B * di * ds));
        for (auto& a : A) a = -std::exp(a);  // A = -exp(A_log)
        std::vector<float> st2 = st, y(size_t(B * L * di)), y2(y.size());
        ScanParams p;
        p.batch = B; p.seqlen = L; p.d_inner = di; p.d_state = ds;
        p.x = x.data(); p.x_batch_stride = L * di; p.x_token_stride = di;
        p.dt = dt.data(); p.dt_batch_stride = L * di; p.dt_token_stride = di;
        p.B = xdbl.data() + 4; p.B_batch_stride = L * nx; p.B_token_stride = nx;
        p.C = xdbl.data() + 4 + ds; p.C_batch_stride = L * nx; p.C_token_stride = nx;
        const bool full = (di + L) % 2 == 0;
        p.z = full ? z.data() : nullptr; p.z_batch_stride = L * di; p.z_token_stride = di;
        p.A = A.data(); p.D = full ? D.data() : nullptr; p.dt_bias = full ? dtb.data() : nullptr;
        p.ssm_state = st.data(); p.y = y.data(); p.y_batch_stride = L * di; p.y_token_stride = di;
        be.scan(p);
        p.ssm_state = st2.data(); p.y = y2.data();
        ref::scan(p);
        const std::string name =
            tag + " scan d_state=" + std::to_string(ds) + " L=" + std::to_string(L) + " d_inner=" + std::to_string(di);
        expect_close(name, y.data(), y2.data(), y.size());
        expect_close(name + " state", st.data(), st2.data(), st.size());
      }
}

void test_sample(Backend& be, const std::string& tag) {
  const int64_t rows = 3, vocab = 5003;
  struct Cfg { float t; int64_t k; float p, minp, pen; } cfgs[] = {
      {0.f, 0, 1.f, 0.f, 1.f}, {0.f, 0, 1.f, 0.f, 1.3f}, {1.f, 0, 1.f, 0.f, 1.f}, {0.7f, 40, 1.f, 0.f, 1.f},
      {1.2f, 0, 0.9f, 0.f, 1.f}, {0.9f, 50, 0.8f, 0.05f, 1.2f}, {1.f, 1, 1.f, 0.f, 1.f}};
  std::vector<int32_t> hist(rows * 10);
  for (auto& h : hist) h = int32_t(rng() % vocab);
  std::vector<int64_t> hl = {10, 3, 0};
  for (const Cfg& c : cfgs)
    for (uint64_t step = 0; step < 20; ++step) {
      std::vector<float> lg = randn(size_t(rows * vocab), 2.f);
      lg[17] = lg[4000] = 9.f;  // a tie
      std::vector<float> lg2 = lg;
      std::vector<int32_t> o(rows), o2(rows);
      SampleParams p;
      p.rows = rows; p.vocab = vocab; p.ld_logits = vocab; p.temperature = c.t; p.top_k = c.k; p.top_p = c.p;
      p.min_p = c.minp; p.repetition_penalty = c.pen; p.history = hist.data(); p.ld_history = 10;
      p.history_len = hl.data(); p.seed = 99; p.step = step;
      p.logits = lg.data(); p.out = o.data();
      be.sample(p);
      p.logits = lg2.data(); p.out = o2.data();
      ref::sample(p);
      if (o != o2) {
        ++failures;
        std::printf("FAIL %s sample t=%g k=%lld p=%g step=%llu: %d vs %d\n", tag.c_str(), c.t, (long long)c.k, c.p,
                    (unsigned long long)step, o[0], o2[0]);
      }
    }
}

}  // namespace

int main() {
  for (const std::string& isa : cpu_isas_available())
    for (int threads : {1, 2, 3}) {
      BackendOptions o;
      o.isa = isa;
      o.threads = threads;
      auto be = make_cpu_backend(o);
      const std::string tag = isa + "/t" + std::to_string(threads);
      test_matmul(*be, tag);
      test_norm_embed(*be, tag);
      test_conv(*be, tag);
      test_scan(*be, tag);
      test_sample(*be, tag);
      std::printf("%s done (%d failures so far)\n", tag.c_str(), failures);
    }
  std::printf(failures ? "FAILED: %d\n" : "all passed\n", failures);
  return failures ? 1 : 0;
}
