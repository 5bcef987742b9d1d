// Per-kernel timings of the CPU backend on the 130m shapes (d_model 768, d_inner 1536, d_state 16), one thread,
// measured in thread CPU time so that other load on the machine distorts them less.
// Run: build/<dir>/bench_cpu_kernels [isa] [M]
#include <time.h>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"

using namespace mambart;

static double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

static double best_of(int reps, const std::function<void()>& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    double t = cpu_seconds();
    f();
    best = std::min(best, cpu_seconds() - t);
  }
  return best;
}

int main(int argc, char** argv) {
  BackendOptions o;
  o.isa = argc > 1 ? argv[1] : "";
  o.threads = 1;
  const int64_t M = argc > 2 ? std::atoll(argv[2]) : 512;
  auto be = make_cpu_backend(o);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  auto randv = [&](size_t n) { std::vector<float> v(n); for (auto& x : v) x = nd(rng) * 0.1f; return v; };
  const int64_t d = 768, di = 1536, ds = 16, r = 48, nx = r + 2 * ds;
  struct MM { const char* name; int64_t N, K; } mms[] = {{"in_proj", 2 * di, d}, {"x_proj", nx, di},
                                                        {"dt_proj", di, r}, {"out_proj", d, di}, {"lm_head", 50280, d}};
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    for (auto& mm : mms) {
      const int64_t m = std::string(mm.name) == "lm_head" ? std::min<int64_t>(M, 8) : M;
      std::vector<float> x = randv(size_t(m * mm.K)), wf = randv(size_t(mm.N * mm.K)), y(size_t(m * mm.N));
      std::vector<uint16_t> wh(wf.size());
      if (dt != DType::F32) from_f32(wf.data(), dt, wh.data(), wf.size());
      MatmulParams p;
      p.M = m; p.N = mm.N; p.K = mm.K; p.x = x.data(); p.ldx = mm.K;
      p.w = dt == DType::F32 ? static_cast<const void*>(wf.data()) : wh.data();
      p.w_dtype = dt; p.y = y.data(); p.ldy = mm.N;
      double t = best_of(5, [&] { be->matmul(p); });
      std::printf("%-5s %-8s M=%-4lld N=%-5lld K=%-5lld %8.3f ms %7.1f GFLOP/s %6.1f GB/s(w)\n", dtype_name(dt), mm.name,
                  (long long)m, (long long)mm.N, (long long)mm.K, t * 1e3, 2.0 * m * mm.N * mm.K / t * 1e-9,
                  double(mm.N * mm.K) * (dt == DType::F32 ? 4 : 2) / t * 1e-9);
    }
  }
  {
    std::vector<float> x = randv(size_t(M * 2 * di)), st(size_t(di * 4)), w = randv(size_t(di * 4)), out(size_t(M * di));
    Conv1dParams p;
    p.batch = 1; p.seqlen = M; p.d_inner = di; p.d_conv = 4; p.x = x.data(); p.x_batch_stride = M * 2 * di;
    p.x_token_stride = 2 * di; p.conv_state = st.data(); p.weight = w.data(); p.out = out.data();
    p.out_batch_stride = M * di; p.out_token_stride = di;
    double t = best_of(5, [&] { be->conv1d(p); });
    std::printf("conv1d L=%lld: %.3f ms (%.1f ns/token)\n", (long long)M, t * 1e3, t * 1e9 / M);
  }
  {
    std::vector<float> x = randv(size_t(M * di)), dt = randv(size_t(M * di)), xdbl = randv(size_t(M * nx)),
                       z = randv(size_t(M * di)), A = randv(size_t(di * ds)), D = randv(size_t(di)),
                       st(size_t(di * ds)), y(size_t(M * di));
    for (auto& a : A) a = -std::exp(a);
    ScanParams p;
    p.batch = 1; p.seqlen = M; p.d_inner = di; p.d_state = ds;
    p.x = x.data(); p.x_batch_stride = M * di; p.x_token_stride = di;
    p.dt = dt.data(); p.dt_batch_stride = M * di; p.dt_token_stride = di;
    p.B = xdbl.data() + r; p.B_batch_stride = M * nx; p.B_token_stride = nx;
    p.C = xdbl.data() + r + ds; p.C_batch_stride = M * nx; p.C_token_stride = nx;
    p.z = z.data(); p.z_batch_stride = M * di; p.z_token_stride = di;
    p.A = A.data(); p.D = D.data(); p.dt_bias = D.data(); p.ssm_state = st.data();
    p.y = y.data(); p.y_batch_stride = M * di; p.y_token_stride = di;
    double t = best_of(5, [&] { be->scan(p); });
    std::printf("scan L=%lld: %.3f ms (%.1f ns/token, %.2f ns/state elem)\n", (long long)M, t * 1e3, t * 1e9 / M,
                t * 1e9 / double(M * di * ds));
  }
  return 0;
}
