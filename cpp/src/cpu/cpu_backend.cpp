// The CPU backend: validates each op, splits it among the pool's threads and calls the kernel table of the
// ISA chosen at creation. Sampling (selection logic, not bandwidth-bound) lives here, mirroring ref::sample.
#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "error.h"
#include "sampling.h"
#include "host_backend.h"

namespace mambart {
namespace cpu {
namespace {

const KernelTable* kernels_for(const std::string& isa) {
  if (isa == "generic") return kernels_generic();
#if defined(MAMBART_CPU_X86)
  if (isa == "avx2") return kernels_avx2();
  if (isa == "avx512") return kernels_avx512();
#endif
  return nullptr;
}

const KernelTable* select_kernels(const std::string& isa) {
  const std::vector<std::string> avail = cpu_isas_available();
  if (isa.empty()) return kernels_for(avail.back());
  MAMBART_CHECK(isa == "generic" || isa == "avx2" || isa == "avx512", InvalidArgument, "unknown CPU isa '", isa,
                "' (expected 'generic', 'avx2' or 'avx512')");
  std::string list;
  for (const auto& a : avail) list += (list.empty() ? "" : ", ") + a;
  MAMBART_CHECK(std::find(avail.begin(), avail.end(), isa) != avail.end(), InvalidArgument, "CPU isa '", isa,
                "' is not available on this CPU or in this build (available: ", list, ")");
  return kernels_for(isa);
}

void check_weight_dtype(DType t, const char* what) {
  MAMBART_CHECK(t == DType::F32 || t == DType::F16 || t == DType::BF16, InvalidArgument, "cpu backend: ", what,
                " dtype ", dtype_name(t), " is not supported (F32, F16 or BF16)");
}
void check_act(DType t, const char* op) {
  MAMBART_CHECK(t == DType::F32, InvalidArgument, "cpu backend: ", op, " needs F32 activations, got ",
                dtype_name(t));
}

// GEMM pack buffer of the calling thread (pool workers and concurrent callers each have their own).
float* gemm_scratch() {
  thread_local std::vector<float> buf;
  if (buf.size() < kGemmScratchFloats) buf.resize(kGemmScratchFloats);
  return buf.data();
}

// Order-preserving key for sorting candidates by (logit descending, index ascending) as one integer.
uint64_t candidate_key(float v, int64_t index) {
  v += 0.f;  // -0 -> +0: equal logits tie on the index, as in ref::sample
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending unsigned order of the floats
  return (uint64_t(~u) << 32) | uint64_t(index);   // ascending key = descending logit, then index
}

class CpuBackend final : public HostBackend {
 public:
  CpuBackend(const KernelTable* k, int threads) : k_(k), pool_(threads) {}
  std::string name() const override { return "cpu"; }
  // Prompt chunk: 256 tokens keep a GEMM's activation block in L2 and the workspace small (peak RSS).
  int64_t chunk_tokens() const override { return 256; }

  void embed(const EmbedParams& p) override {
    check_weight_dtype(p.table_dtype, "embedding");
    parallel(p.n_tokens, 1, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, p.d_model)),
             [&](int64_t a, int64_t b) { k_->embed(p, a, b); });
  }

  void add_norm(const AddNormParams& p) override {
    check_act(p.act_dtype, "add_norm");
    parallel(p.n_rows, 1, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, p.dim)),
             [&](int64_t a, int64_t b) { k_->add_norm(p, a, b); });
  }

  void matmul(const MatmulParams& p) override {
    check_act(p.act_dtype, "matmul");
    MAMBART_CHECK(p.y_dtype == DType::F32, InvalidArgument, "cpu backend: matmul output must be F32");
    check_weight_dtype(p.w_dtype, "matmul weight");
    if (p.M <= 0 || p.N <= 0) return;
    const int64_t per_col = std::max<int64_t>(1, p.M * p.K);
    if (p.M <= kGemvMaxRows) {
      parallel(p.N, 4, std::max<int64_t>(4, 65536 / per_col), [&](int64_t a, int64_t b) { k_->gemv(p, a, b); });
    } else {
      parallel(p.N, k_->gemm_nr, std::max<int64_t>(k_->gemm_nr, 262144 / per_col),
               [&](int64_t a, int64_t b) { k_->gemm(p, a, b, gemm_scratch()); });
    }
  }

  void conv1d(const Conv1dParams& p) override {
    check_act(p.act_dtype, "conv1d");
    MAMBART_CHECK(p.d_conv >= 1 && p.d_conv <= kMaxDConv, InvalidArgument, "cpu backend: d_conv ", p.d_conv,
                  " is not supported (1..", kMaxDConv, ")");
    const int64_t per_ch = std::max<int64_t>(1, p.batch * p.seqlen * p.d_conv);
    parallel(p.d_inner, k_->lanes, std::max<int64_t>(k_->lanes, 16384 / per_ch),
             [&](int64_t a, int64_t b) { k_->conv1d(p, a, b); });
  }

  void scan(const ScanParams& p) override {
    check_act(p.act_dtype, "scan");
    MAMBART_CHECK(p.d_state >= 1 && p.d_state <= kMaxDState, InvalidArgument, "cpu backend: d_state ", p.d_state,
                  " is not supported (1..", kMaxDState, ")");
    const int64_t per_ch = std::max<int64_t>(1, p.batch * p.seqlen * p.d_state);
    parallel(p.d_inner, k_->lanes, std::max<int64_t>(k_->lanes, 8192 / per_ch),
             [&](int64_t a, int64_t b) { k_->scan(p, a, b); });
  }

  void sample(const SampleParams& p) override {
    MAMBART_CHECK(p.vocab > 0, InvalidArgument, "sample: vocab must be positive");
    for (int64_t r = 0; r < p.rows; ++r) sample_row(p, r);
  }

 private:
  static constexpr int64_t kGemvMaxRows = 8;

  // Splits [0, n) into contiguous ranges (multiples of `align`, at least `min_part` items each) over the pool.
  template <typename F>
  void parallel(int64_t n, int64_t align, int64_t min_part, F&& f) {
    if (n <= 0) return;
    const int64_t units = (n + align - 1) / align;
    int parts = int(std::min<int64_t>({int64_t(pool_.threads()), units, std::max<int64_t>(1, n / min_part)}));
    if (parts <= 1) {
      f(int64_t(0), n);
      return;
    }
    struct Ctx {
      std::remove_reference_t<F>* f;
      int64_t n, align, units;
    } ctx{&f, n, align, units};
    pool_.run(
        parts,
        [](void* c, int i, int np) {
          const Ctx& x = *static_cast<Ctx*>(c);
          const int64_t b = x.units * i / np * x.align, e = std::min(x.n, x.units * (i + 1) / np * x.align);
          if (b < e) (*x.f)(b, e);
        },
        &ctx);
  }

  // Mirrors ref::sample for one row (same candidate order and the same double arithmetic, so the same
  // token for the same logits and seed), with partial selection for top_k and one pass for greedy.
  void sample_row(const SampleParams& p, int64_t r) {
    float* logit = const_cast<float*>(p.logits + r * p.ld_logits);  // ops.h: may be modified in place
    const int64_t V = p.vocab;
    // repetition penalty (HF): each distinct seen token once
    if (p.repetition_penalty != 1.f && p.history) {
      std::vector<int32_t> seen(p.history + r * p.ld_history, p.history + r * p.ld_history + p.history_len[r]);
      std::sort(seen.begin(), seen.end());
      seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
      for (int32_t id : seen)
        if (id >= 0 && id < V)
          logit[id] = logit[id] > 0 ? logit[id] / p.repetition_penalty : logit[id] * p.repetition_penalty;
    }
    if (p.temperature <= 0.f) {  // greedy: first maximum
      p.out[r] = int32_t(k_->argmax(logit, V));
      return;
    }
    // candidates sorted by logit / temperature descending, ties by index ascending
    std::vector<float>& l = scratch_logit();
    std::vector<uint64_t>& keys = scratch_keys();
    l.resize(size_t(V));
    keys.resize(size_t(V));
    for (int64_t v = 0; v < V; ++v) {
      l[size_t(v)] = logit[v] / p.temperature;
      keys[size_t(v)] = candidate_key(l[size_t(v)], v);
    }
    int64_t n = V;
    if (p.top_k > 0 && p.top_k < n) {
      n = p.top_k;
      std::nth_element(keys.begin(), keys.begin() + n - 1, keys.end());
      std::sort(keys.begin(), keys.begin() + n);
    } else {
      std::sort(keys.begin(), keys.end());
    }
    auto idx = [&](int64_t i) { return int64_t(keys[size_t(i)] & 0xffffffffu); };
    // softmax over the kept candidates (in double)
    std::vector<double> prob(static_cast<size_t>(n));
    double mx = l[size_t(idx(0))], sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += prob[size_t(i)] = std::exp(double(l[size_t(idx(i))]) - mx);
    for (int64_t i = 0; i < n; ++i) prob[size_t(i)] /= sum;
    const int64_t pick = pick_candidate(prob, n, p.top_p, p.min_p, rng_uniform(p.seed, uint64_t(r), p.step));
    p.out[r] = int32_t(idx(pick));
  }
  static std::vector<float>& scratch_logit() {
    thread_local std::vector<float> v;
    return v;
  }
  static std::vector<uint64_t>& scratch_keys() {
    thread_local std::vector<uint64_t> v;
    return v;
  }

  const KernelTable* k_;
  ThreadPool pool_;
};

}  // namespace
}  // namespace cpu

std::vector<std::string> cpu_isas_available() {
  std::vector<std::string> isas = {"generic"};
#if defined(MAMBART_CPU_X86)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (avx2) isas.push_back("avx2");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    isas.push_back("avx512");
#endif
  return isas;
}

std::shared_ptr<Backend> make_cpu_backend(const BackendOptions& opt) {
  MAMBART_CHECK(opt.threads >= 0 && opt.threads <= 1024, InvalidArgument, "threads must be in [0, 1024], got ",
                opt.threads);
  const cpu::KernelTable* k = cpu::select_kernels(opt.isa);
  const int threads = opt.threads > 0 ? opt.threads : cpu::physical_cores();
  return std::make_shared<cpu::CpuBackend>(k, threads);
}

}  // namespace mambart
