// mambart._core._OpRunner: runs ONE op of ops.h on a chosen backend with numpy inputs, for the kernel tests
// (every backend's kernels against the "ref" backend). Arrays of dtype F16/BF16 travel as uint16 bit patterns.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <vector>

#include "backend.h"
#include "bindings.h"
#include "error.h"

namespace nb = nanobind;
using namespace nb::literals;
using namespace mambart;

namespace mambart_py {
namespace {

using AnyIn = nb::ndarray<nb::c_contig, nb::device::cpu>;
using Out = nb::ndarray<nb::numpy>;

DType dtype_of(const std::string& s) {
  DType t;
  MAMBART_CHECK(parse_dtype(s, &t) && is_float_compute(t), InvalidArgument, "dtype must be F32, F16 or BF16");
  return t;
}

class OpRunner {
 public:
  OpRunner(const std::string& device, const std::string& isa, int threads) {
    BackendOptions o;
    o.isa = isa;
    o.threads = threads;
    be_ = make_backend(device, o);
  }
  OpRunner(const OpRunner&) = delete;
  OpRunner& operator=(const OpRunner&) = delete;
  std::string name() const { return be_->name(); }

  // Copies a host array into backend memory (kept until the op returns).
  const void* in(const AnyIn& a) {
    bufs_.emplace_back(be_.get(), a.nbytes());
    be_->copy_from_host(bufs_.back().get(), a.data(), a.nbytes());
    return bufs_.back().get();
  }
  const void* in_opt(const nb::object& o) { return o.is_none() ? nullptr : in(nb::cast<AnyIn>(o)); }
  void* out(size_t bytes) {
    bufs_.emplace_back(be_.get(), bytes);
    return bufs_.back().get();
  }
  // Copies a backend buffer to a new numpy array (float32 for F32, uint16 for F16/BF16, or int32).
  Out result(const void* dev, std::vector<size_t> shape, DType t, bool is_int = false) {
    size_t n = 1;
    for (auto s : shape) n *= s;
    const size_t es = is_int ? 4 : dtype_size(t);
    auto* heap = new std::vector<uint8_t>(n * es);
    be_->synchronize();
    be_->copy_to_host(heap->data(), dev, n * es);
    nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<uint8_t>*>(p); });
    nb::dlpack::dtype dt = is_int ? nb::dtype<int32_t>() : es == 4 ? nb::dtype<float>() : nb::dtype<uint16_t>();
    return Out(heap->data(), shape.size(), shape.data(), owner, nullptr, dt);
  }
  void done() { bufs_.clear(); }

  Out embed(AnyIn ids, AnyIn table, const std::string& table_dtype) {
    EmbedParams p;
    p.n_tokens = int64_t(ids.shape(0));
    p.d_model = int64_t(table.shape(1));
    p.ids = static_cast<const int32_t*>(in(ids));
    p.table = in(table);
    p.table_dtype = dtype_of(table_dtype);
    p.out = static_cast<float*>(out(size_t(p.n_tokens * p.d_model) * 4));
    { nb::gil_scoped_release r; be_->embed(p); }
    Out o = result(p.out, {size_t(p.n_tokens), size_t(p.d_model)}, DType::F32);
    done();
    return o;
  }

  std::tuple<Out, Out> add_norm(AnyIn residual, nb::object delta, AnyIn weight, nb::object bias, bool rms,
                                float eps, const std::string& act) {
    AddNormParams p;
    p.n_rows = int64_t(residual.shape(0));
    p.dim = int64_t(residual.shape(1));
    p.residual = static_cast<float*>(const_cast<void*>(in(residual)));
    p.delta = in_opt(delta);
    p.weight = static_cast<const float*>(in(weight));
    p.bias = static_cast<const float*>(in_opt(bias));
    p.rms = rms;
    p.eps = eps;
    p.act_dtype = dtype_of(act);
    p.out = out(size_t(p.n_rows * p.dim) * dtype_size(p.act_dtype));
    { nb::gil_scoped_release r; be_->add_norm(p); }
    std::vector<size_t> shape = {size_t(p.n_rows), size_t(p.dim)};
    auto t = std::make_tuple(result(p.residual, shape, DType::F32), result(p.out, shape, p.act_dtype));
    done();
    return t;
  }

  Out matmul(AnyIn x, AnyIn w, nb::object bias, const std::string& act, const std::string& w_dtype,
             const std::string& y_dtype) {
    MatmulParams p;
    p.M = int64_t(x.shape(0));
    p.K = int64_t(x.shape(1));
    p.N = int64_t(w.shape(0));
    MAMBART_CHECK(int64_t(w.shape(1)) == p.K, InvalidArgument, "matmul: K mismatch");
    p.x = in(x);
    p.ldx = p.K;
    p.w = in(w);
    p.w_dtype = dtype_of(w_dtype);
    p.bias = static_cast<const float*>(in_opt(bias));
    p.act_dtype = dtype_of(act);
    p.y_dtype = dtype_of(y_dtype);
    p.ldy = p.N;
    p.y = out(size_t(p.M * p.N) * dtype_size(p.y_dtype));
    { nb::gil_scoped_release r; be_->matmul(p); }
    Out o = result(p.y, {size_t(p.M), size_t(p.N)}, p.y_dtype);
    done();
    return o;
  }

  // x (batch, seqlen, d_inner), conv_state (batch, d_inner, d_conv)
  std::tuple<Out, Out> conv1d(AnyIn x, AnyIn conv_state, AnyIn weight, nb::object bias, const std::string& act) {
    Conv1dParams p;
    p.batch = int64_t(x.shape(0));
    p.seqlen = int64_t(x.shape(1));
    p.d_inner = int64_t(x.shape(2));
    p.d_conv = int64_t(weight.shape(1));
    p.x = in(x);
    p.x_batch_stride = p.seqlen * p.d_inner;
    p.x_token_stride = p.d_inner;
    p.conv_state = static_cast<float*>(const_cast<void*>(in(conv_state)));
    p.weight = static_cast<const float*>(in(weight));
    p.bias = static_cast<const float*>(in_opt(bias));
    p.act_dtype = dtype_of(act);
    p.out = out(size_t(p.batch * p.seqlen * p.d_inner) * dtype_size(p.act_dtype));
    p.out_batch_stride = p.x_batch_stride;
    p.out_token_stride = p.x_token_stride;
    { nb::gil_scoped_release r; be_->conv1d(p); }
    auto t = std::make_tuple(
        result(p.out, {size_t(p.batch), size_t(p.seqlen), size_t(p.d_inner)}, p.act_dtype),
        result(p.conv_state, {size_t(p.batch), size_t(p.d_inner), size_t(p.d_conv)}, DType::F32));
    done();
    return t;
  }

  // x, dt, z (batch, seqlen, d_inner); B, C (batch, seqlen, d_state); ssm_state (batch, d_inner, d_state)
  std::tuple<Out, Out> scan(AnyIn x, AnyIn dt, AnyIn B, AnyIn C, nb::object z, AnyIn A, nb::object D,
                            nb::object dt_bias, AnyIn ssm_state, const std::string& act) {
    ScanParams p;
    p.batch = int64_t(x.shape(0));
    p.seqlen = int64_t(x.shape(1));
    p.d_inner = int64_t(x.shape(2));
    p.d_state = int64_t(A.shape(1));
    const int64_t bs = p.seqlen * p.d_inner, bsn = p.seqlen * p.d_state;
    p.x = in(x); p.x_batch_stride = bs; p.x_token_stride = p.d_inner;
    p.dt = in(dt); p.dt_batch_stride = bs; p.dt_token_stride = p.d_inner;
    p.B = in(B); p.B_batch_stride = bsn; p.B_token_stride = p.d_state;
    p.C = in(C); p.C_batch_stride = bsn; p.C_token_stride = p.d_state;
    p.z = in_opt(z); p.z_batch_stride = bs; p.z_token_stride = p.d_inner;
    p.A = static_cast<const float*>(in(A));
    p.D = static_cast<const float*>(in_opt(D));
    p.dt_bias = static_cast<const float*>(in_opt(dt_bias));
    p.ssm_state = static_cast<float*>(const_cast<void*>(in(ssm_state)));
    p.act_dtype = dtype_of(act);
    p.y = out(size_t(p.batch * bs) * dtype_size(p.act_dtype)); p.y_batch_stride = bs; p.y_token_stride = p.d_inner;
    { nb::gil_scoped_release r; be_->scan(p); }
    auto t = std::make_tuple(
        result(p.y, {size_t(p.batch), size_t(p.seqlen), size_t(p.d_inner)}, p.act_dtype),
        result(p.ssm_state, {size_t(p.batch), size_t(p.d_inner), size_t(p.d_state)}, DType::F32));
    done();
    return t;
  }

  // One fused decode layer (DecodeLayerParams); returns (residual, conv_state, ssm_state) after it. repeat > 0
  // runs it that many times through decode_layers (the persistent decode step on CUDA).
  std::tuple<Out, Out, Out> decode_layer(AnyIn residual, AnyIn norm_w, nb::object norm_b, AnyIn in_proj_w,
                                         nb::object in_proj_b, AnyIn conv_w, nb::object conv_b, AnyIn x_proj_w,
                                         AnyIn dt_proj_w, nb::object dt_bias, AnyIn A, nb::object D,
                                         AnyIn out_proj_w, nb::object out_proj_b, AnyIn conv_state,
                                         AnyIn ssm_state, bool rms, float eps, const std::string& act,
                                         int64_t repeat) {
    MAMBART_CHECK(repeat >= 0, InvalidArgument, "decode_layer: repeat must be >= 0");
    DecodeLayerParams p;
    p.batch = int64_t(residual.shape(0));
    p.d_model = int64_t(residual.shape(1));
    p.d_inner = int64_t(conv_w.shape(0));
    p.d_conv = int64_t(conv_w.shape(1));
    p.d_state = int64_t(A.shape(1));
    p.dt_rank = int64_t(dt_proj_w.shape(1));
    MAMBART_CHECK(int64_t(in_proj_w.shape(0)) == 2 * p.d_inner && int64_t(in_proj_w.shape(1)) == p.d_model &&
                      int64_t(x_proj_w.shape(0)) == p.dt_rank + 2 * p.d_state &&
                      int64_t(x_proj_w.shape(1)) == p.d_inner && int64_t(out_proj_w.shape(0)) == p.d_model &&
                      int64_t(out_proj_w.shape(1)) == p.d_inner,
                  InvalidArgument, "decode_layer: inconsistent weight shapes");
    p.rms = rms;
    p.eps = eps;
    p.act_dtype = p.w_dtype = dtype_of(act);
    p.residual = static_cast<float*>(const_cast<void*>(in(residual)));
    p.norm_w = static_cast<const float*>(in(norm_w));
    p.norm_b = static_cast<const float*>(in_opt(norm_b));
    p.in_proj_w = in(in_proj_w);
    p.in_proj_b = static_cast<const float*>(in_opt(in_proj_b));
    p.conv_w = static_cast<const float*>(in(conv_w));
    p.conv_b = static_cast<const float*>(in_opt(conv_b));
    p.x_proj_w = in(x_proj_w);
    p.dt_proj_w = in(dt_proj_w);
    p.dt_bias = static_cast<const float*>(in_opt(dt_bias));
    p.A = static_cast<const float*>(in(A));
    p.D = static_cast<const float*>(in_opt(D));
    p.out_proj_w = in(out_proj_w);
    p.out_proj_b = static_cast<const float*>(in_opt(out_proj_b));
    p.conv_state = static_cast<float*>(const_cast<void*>(in(conv_state)));
    p.ssm_state = static_cast<float*>(const_cast<void*>(in(ssm_state)));
    const size_t a = dtype_size(p.act_dtype), B = size_t(p.batch);
    p.normed = out(B * size_t(p.d_model) * a);
    p.xz = out(B * size_t(2 * p.d_inner) * a);
    p.xc = out(B * size_t(p.d_inner) * a);
    p.xdbl = out(B * size_t(p.dt_rank + 2 * p.d_state) * a);
    p.dt = out(B * size_t(p.d_inner) * a);
    p.y = out(B * size_t(p.d_inner) * a);
    p.delta = out(B * size_t(p.d_model) * a);
    if (repeat == 0) {
      nb::gil_scoped_release r;
      be_->decode_layer(p);
    } else {  // the layer `repeat` times in a row (same weights and states) through Backend::decode_layers
      std::vector<DecodeLayerParams> layers(size_t(repeat), p);
      nb::gil_scoped_release r;
      be_->decode_layers(layers.data(), repeat);
    }
    auto t = std::make_tuple(
        result(p.residual, {B, size_t(p.d_model)}, DType::F32),
        result(p.conv_state, {B, size_t(p.d_inner), size_t(p.d_conv)}, DType::F32),
        result(p.ssm_state, {B, size_t(p.d_inner), size_t(p.d_state)}, DType::F32));
    done();
    return t;
  }

  Out sample(AnyIn logits, float temperature, int64_t top_k, float top_p, float min_p, float repetition_penalty,
             nb::object history, nb::object history_len, uint64_t seed, uint64_t step) {
    SampleParams p;
    p.rows = int64_t(logits.shape(0));
    p.vocab = int64_t(logits.shape(1));
    p.logits = static_cast<const float*>(in(logits));
    p.ld_logits = p.vocab;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repetition_penalty = repetition_penalty;
    if (!history.is_none()) {
      AnyIn h = nb::cast<AnyIn>(history);
      p.history = static_cast<const int32_t*>(in(h));
      p.ld_history = int64_t(h.shape(1));
      p.history_len = static_cast<const int64_t*>(in(nb::cast<AnyIn>(history_len)));
    }
    p.seed = seed;
    p.step = step;
    p.out = static_cast<int32_t*>(out(size_t(p.rows) * 4));
    { nb::gil_scoped_release r; be_->sample(p); }
    Out o = result(p.out, {size_t(p.rows)}, DType::F32, true);
    done();
    return o;
  }

 private:
  std::shared_ptr<Backend> be_;
  std::vector<Buffer> bufs_;
};

}  // namespace

void register_op_runner(nb::module_& m) {
  nb::class_<OpRunner>(m, "_OpRunner")
      .def(nb::init<const std::string&, const std::string&, int>(), "device"_a, "isa"_a = "", "threads"_a = 0)
      .def_prop_ro("name", &OpRunner::name)
      .def("embed", &OpRunner::embed, "ids"_a, "table"_a, "table_dtype"_a)
      .def("add_norm", &OpRunner::add_norm, "residual"_a, "delta"_a.none(), "weight"_a, "bias"_a.none(), "rms"_a,
           "eps"_a, "act"_a)
      .def("matmul", &OpRunner::matmul, "x"_a, "w"_a, "bias"_a.none(), "act"_a, "w_dtype"_a, "y_dtype"_a)
      .def("conv1d", &OpRunner::conv1d, "x"_a, "conv_state"_a, "weight"_a, "bias"_a.none(), "act"_a)
      .def("scan", &OpRunner::scan, "x"_a, "dt"_a, "B"_a, "C"_a, "z"_a.none(), "A"_a, "D"_a.none(),
           "dt_bias"_a.none(), "ssm_state"_a, "act"_a)
      .def("decode_layer", &OpRunner::decode_layer, "residual"_a, "norm_w"_a, "norm_b"_a.none(), "in_proj_w"_a,
           "in_proj_b"_a.none(), "conv_w"_a, "conv_b"_a.none(), "x_proj_w"_a, "dt_proj_w"_a, "dt_bias"_a.none(),
           "A"_a, "D"_a.none(), "out_proj_w"_a, "out_proj_b"_a.none(), "conv_state"_a, "ssm_state"_a, "rms"_a,
           "eps"_a, "act"_a, "repeat"_a = 0)
      .def("sample", &OpRunner::sample, "logits"_a, "temperature"_a = 0.f, "top_k"_a = 0, "top_p"_a = 1.f,
           "min_p"_a = 0.f, "repetition_penalty"_a = 1.f, "history"_a.none() = nb::none(),
           "history_len"_a.none() = nb::none(), "seed"_a = 0, "step"_a = 0);
}

}  // namespace mambart_py
