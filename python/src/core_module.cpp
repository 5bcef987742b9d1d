// The nanobind module mambart._core: converts arrays and errors, releases the GIL during compute.
// No logic lives here beyond argument conversion (see cpp/src for the runtime, python/mambart for the API).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <new>

#include "bindings.h"
#include "device_io.h"
#include "error.h"
#include "model.h"
#include "session.h"

namespace nb = nanobind;
using namespace nb::literals;
using namespace mambart;

namespace mambart_py {

// ids (batch, seqlen) int32, C-contiguous, on the CPU (the Python layer converts).
using IdsArray = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using F32In3 = nb::ndarray<const float, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
using F32In = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

// Polled by long computations with the GIL released: takes the GIL briefly and lets Python run its
// signal handlers; a pending KeyboardInterrupt makes the computation stop (raised again on return).
std::function<bool()> interrupt_checker() {
  return [] {
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Clear();
      return true;
    }
    return false;
  };
}

namespace {

nb::dict config_dict(const Model& m) {
  const ModelConfig& c = m.config();
  nb::dict d;
  d["d_model"] = c.d_model;
  d["n_layer"] = c.n_layer;
  d["vocab_size"] = c.vocab_size;
  d["vocab_size_unpadded"] = c.vocab_size_unpadded;
  d["d_state"] = c.d_state;
  d["d_conv"] = c.d_conv;
  d["d_inner"] = c.d_inner;
  d["dt_rank"] = c.dt_rank;
  d["expand"] = c.expand;
  d["rms_norm"] = c.rms_norm;
  d["residual_in_fp32"] = c.residual_in_fp32;
  d["tie_embeddings"] = c.tie_embeddings;
  d["in_proj_bias"] = c.in_proj_bias;
  d["conv_bias"] = c.conv_bias;
  d["norm_eps"] = c.norm_eps;
  auto opt_id = [](int64_t v) -> nb::object { return v < 0 ? nb::object(nb::none()) : nb::object(nb::int_(v)); };
  d["bos_token_id"] = opt_id(c.bos_token_id);
  d["eos_token_id"] = opt_id(c.eos_token_id);
  d["pad_token_id"] = opt_id(c.pad_token_id);
  d["layout"] = c.layout == Layout::HF ? "hf" : c.layout == Layout::StateSpaces ? "state-spaces" : "mambart";
  d["source"] = c.source;
  d["state_bytes_per_sequence"] = c.state_bytes_per_sequence();
  return d;
}

std::shared_ptr<Model> load_model(const std::string& path, const std::string& device, int threads,
                                  const std::string& dtype, const std::string& isa) {
  LoadOptions opt;
  opt.device = device;
  opt.backend.threads = threads;
  opt.backend.isa = isa;
  opt.dtype = dtype;
  nb::gil_scoped_release release;
  return Model::load(path, opt);
}

Output parse_mode(const std::string& mode) {
  if (mode == "none") return Output::None;
  if (mode == "last") return Output::LastLogits;
  if (mode == "all") return Output::AllLogits;
  if (mode == "hidden_last") return Output::LastHidden;
  if (mode == "hidden_all") return Output::AllHidden;
  throw InvalidArgument("unknown output mode '" + mode + "'");
}

// The input of a forward call: host ids (batch, seqlen) int32 or embeddings (batch, seqlen, d_model) fp32, and the
// shape of the output for a mode.
struct ForwardArgs {
  IdsArray ids_arr;
  F32In3 emb_arr;
  const int32_t* ids = nullptr;
  const float* embeds = nullptr;
  int64_t B = 0, L = 0;
  Output mode = Output::None;
  std::vector<size_t> shape;
  size_t elems = 1;

  ForwardArgs(const State& st, nb::object ids_obj, nb::object embeds_obj, const std::string& mode_name)
      : mode(parse_mode(mode_name)) {
    const ModelConfig& c = st.model().config();
    if (!ids_obj.is_none()) {
      ids_arr = nb::cast<IdsArray>(ids_obj);
      ids = ids_arr.data();
      B = int64_t(ids_arr.shape(0));
      L = int64_t(ids_arr.shape(1));
    } else {
      emb_arr = nb::cast<F32In3>(embeds_obj);
      MAMBART_CHECK(int64_t(emb_arr.shape(2)) == c.d_model, InvalidArgument, "inputs_embeds last dim is ",
                    emb_arr.shape(2), ", expected d_model = ", c.d_model);
      embeds = emb_arr.data();
      B = int64_t(emb_arr.shape(0));
      L = int64_t(emb_arr.shape(1));
    }
    switch (mode) {
      case Output::None: shape = {0}; break;
      case Output::LastLogits: shape = {size_t(B), size_t(c.vocab_size)}; break;
      case Output::AllLogits: shape = {size_t(B), size_t(L), size_t(c.vocab_size)}; break;
      case Output::LastHidden: shape = {size_t(B), size_t(c.d_model)}; break;
      case Output::AllHidden: shape = {size_t(B), size_t(L), size_t(c.d_model)}; break;
    }
    for (size_t s : shape) elems *= s;
  }
};

nb::ndarray<nb::numpy, float> run_forward(State& st, nb::object ids_obj, nb::object embeds_obj, int64_t row0,
                                          const std::string& mode) {
  ForwardArgs f(st, ids_obj, embeds_obj, mode);
  const size_t n = f.elems;
  // Large outputs (B * L * vocab floats) can fail to allocate: report it as MemoryError with the size.
  float* buf = new (std::nothrow) float[n ? n : 1];
  if (!buf) throw OutOfMemory(detail::cat("cannot allocate ", n * 4, " bytes for the output"), n * 4);
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  {
    auto check = interrupt_checker();
    nb::gil_scoped_release release;
    forward(st, row0, f.ids, f.embeds, f.B, f.L, f.mode, buf, check);
  }
  return nb::ndarray<nb::numpy, float>(buf, f.shape.size(), f.shape.data(), owner);
}

// forward() into a fresh buffer in the backend's memory, handed out without a copy: a numpy array on host backends,
// on CUDA a nanobind array that implements __dlpack__ / __dlpack_device__ (kDLCUDA, the device ordinal). The buffer
// keeps the backend alive (not the model) and is freed when the last consumer drops it. drop_batch: the shape
// leaves out the batch dimension (of size 1; for 1-D inputs).
nb::object run_forward_device(State& st, nb::object ids_obj, nb::object embeds_obj, int64_t row0,
                              const std::string& mode, bool drop_batch) {
  ForwardArgs f(st, ids_obj, embeds_obj, mode);
  if (drop_batch) {
    MAMBART_CHECK(f.B == 1, InvalidArgument, "drop_batch needs a batch of 1, got ", f.B);
    f.shape.erase(f.shape.begin());
  }
  auto buf = std::make_unique<SharedBuffer>(st.model().backend_ptr(), f.elems * sizeof(float));
  {
    auto check = interrupt_checker();
    nb::gil_scoped_release release;
    forward_to_backend(st, row0, f.ids, f.embeds, f.B, f.L, f.mode, buf->as<float>(), check);
  }
  float* data = buf->as<float>();
  const int dev = cuda_device_of(buf->backend());
  nb::capsule owner(buf.release(), [](void* p) noexcept { delete static_cast<SharedBuffer*>(p); });
  if (dev < 0) return nb::cast(nb::ndarray<nb::numpy, float>(data, f.shape.size(), f.shape.data(), owner));
  return nb::make_tuple(owner, reinterpret_cast<uintptr_t>(data), dev);
}

// A DLPack export (kDLCUDA) of float32 memory at `ptr` kept alive by `owner`: made afresh for every __dlpack__
// call (a DLPack capsule is consumed once). Depending on the nanobind version it is the capsule itself or an
// object with __dlpack__.
nb::object cuda_view(nb::object owner, uintptr_t ptr, std::vector<size_t> shape, int dev) {
  return nb::cast(nb::ndarray<float, nb::device::cuda>(reinterpret_cast<float*>(ptr), shape.size(), shape.data(),
                                                       owner, nullptr, nb::dtype<float>(), nb::device::cuda::value,
                                                       dev));
}

// An array in CUDA memory from any DLPack producer (torch, CuPy, JAX) -> (host bytes, shape, (code, bits, lanes)):
// a C-contiguous host copy as uint8 and the DLPack dtype, for the Python layer to view and validate.
nb::tuple dlpack_cuda_to_host(nb::ndarray<nb::ro> a) {
  const int dt = int(a.device_type());
  MAMBART_CHECK(dt == nb::device::cuda::value || dt == nb::device::cuda_host::value ||
                    dt == nb::device::cuda_managed::value,
                InvalidArgument, "expected an array in CUDA memory, got DLPack device type ", dt);
  const nb::dlpack::dtype t = a.dtype();
  MAMBART_CHECK(t.bits % 8 == 0 && t.bits > 0 && t.lanes >= 1, InvalidArgument, "unsupported DLPack dtype (",
                int(t.bits), " bits, ", int(t.lanes), " lanes)");
  const size_t itemsize = size_t(t.bits / 8) * t.lanes;
  std::vector<int64_t> shape(a.ndim()), strides(a.ndim());
  for (size_t d = 0; d < a.ndim(); ++d) {
    shape[d] = int64_t(a.shape(d));
    strides[d] = a.stride(d) * int64_t(itemsize);
  }
  size_t nbytes = a.size() * itemsize;
  auto* heap = new std::vector<uint8_t>(nbytes);
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<uint8_t>*>(p); });
  {
    nb::gil_scoped_release release;
    copy_from_cuda(heap->data(), a.data(), itemsize, shape, strides, 0);
  }
  nb::object bytes = nb::cast(nb::ndarray<nb::numpy, uint8_t>(heap->data(), 1, &nbytes, owner));
  return nb::make_tuple(bytes, nb::tuple(nb::cast(shape)), nb::make_tuple(int(t.code), int(t.bits), int(t.lanes)));
}

// __cuda_array_interface__ fields -> a C-contiguous host copy as uint8 (prod(shape) * itemsize bytes).
nb::ndarray<nb::numpy, uint8_t> cuda_to_host(uintptr_t ptr, std::vector<int64_t> shape, std::vector<int64_t> strides,
                                             size_t itemsize, uintptr_t stream) {
  size_t n = itemsize;
  for (int64_t s : shape) n *= size_t(std::max<int64_t>(s, 0));
  auto* heap = new std::vector<uint8_t>(n);
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<uint8_t>*>(p); });
  {
    nb::gil_scoped_release release;
    copy_from_cuda(heap->data(), reinterpret_cast<const void*>(ptr), itemsize, shape, strides, stream);
  }
  return nb::ndarray<nb::numpy, uint8_t>(heap->data(), 1, &n, owner);
}

nb::ndarray<nb::numpy, int32_t> run_generate(State& st, std::vector<IdsArray> prompts, int64_t max_new_tokens,
                                             float temperature, int64_t top_k, float top_p, float min_p,
                                             float repetition_penalty, uint64_t seed,
                                             std::vector<int32_t> stop_tokens, nb::object callback) {
  GenerateOptions opt;
  opt.max_new_tokens = max_new_tokens;
  opt.temperature = temperature;
  opt.top_k = top_k;
  opt.top_p = top_p;
  opt.min_p = min_p;
  opt.repetition_penalty = repetition_penalty;
  opt.seed = seed;
  opt.stop_tokens = std::move(stop_tokens);
  std::vector<const int32_t*> ptrs;
  std::vector<int64_t> lens;
  for (auto& p : prompts) {
    ptrs.push_back(p.data());
    lens.push_back(int64_t(p.shape(0) * p.shape(1)));
  }
  TokenCallback cb;
  if (!callback.is_none()) {
    cb = [&callback](const int32_t* toks, int64_t batch) {
      nb::gil_scoped_acquire gil;
      std::vector<int32_t> v(toks, toks + batch);
      nb::object r = callback(v);
      return r.is_none() ? true : nb::cast<bool>(r);
    };
  }
  int64_t n_steps = 0;
  std::vector<int32_t> out;
  {
    auto check = interrupt_checker();
    nb::gil_scoped_release release;
    out = generate(st, ptrs, lens, opt, cb, &n_steps, check);
  }
  auto* heap = new std::vector<int32_t>(std::move(out));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<int32_t>*>(p); });
  size_t shape[2] = {size_t(st.batch()), size_t(n_steps)};
  return nb::ndarray<nb::numpy, int32_t>(heap->data(), 2, shape, owner);
}

nb::ndarray<nb::numpy, float> state_array(const State& st, bool conv) {
  const ModelConfig& c = st.model().config();
  size_t shape[4] = {size_t(c.n_layer), size_t(st.batch()), size_t(c.d_inner), size_t(conv ? c.d_conv : c.d_state)};
  auto* heap = new std::vector<float>(conv ? st.conv_elems() : st.ssm_elems());
  if (conv) st.download(heap->data(), nullptr);
  else st.download(nullptr, heap->data());
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  return nb::ndarray<nb::numpy, float>(heap->data(), 4, shape, owner);
}

void state_set(State& st, F32In conv, F32In ssm) {
  MAMBART_CHECK(conv.size() == st.conv_elems() && ssm.size() == st.ssm_elems(), InvalidArgument,
                "state arrays do not fit this model and batch: conv has ", conv.size(), " elements (expected ",
                st.conv_elems(), "), ssm has ", ssm.size(), " (expected ", st.ssm_elems(), ")");
  st.upload(conv.data(), ssm.data());
}

}  // namespace
}  // namespace mambart_py

using namespace mambart_py;

NB_MODULE(_core, m) {
  m.doc() = "mambart native core (thin bindings; see the mambart package for the API)";

  // C++ exceptions -> Python exceptions (ValueError for bad input, MemoryError for OOM, ...).
  static nb::exception<Interrupted> interrupted_exc(m, "_Interrupted", PyExc_KeyboardInterrupt);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Interrupted& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    } catch (const OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const FormatError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const FileError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const DeviceError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory (std::bad_alloc)");
    } catch (const std::length_error& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  m.def("cuda_available", &cuda_available, "Whether a usable CUDA device is present in this build.");

  nb::class_<Model>(m, "Model")
      .def_static("load", &load_model, "path"_a, "device"_a = "cpu", "threads"_a = 0, "dtype"_a = "", "isa"_a = "")
      .def_prop_ro("config", &config_dict)
      .def_prop_ro("backend", [](const Model& mo) { return mo.backend().name(); })
      .def_prop_ro("weight_dtype", [](const Model& mo) { return std::string(dtype_name(mo.weight_dtype())); })
      .def_prop_ro("act_dtype", [](const Model& mo) { return std::string(dtype_name(mo.act_dtype())); })
      .def_prop_ro("n_params", &Model::n_params)
      .def_prop_ro("weight_bytes", &Model::weight_bytes)
      .def_prop_ro("path", &Model::path);

  nb::class_<State>(m, "State")
      .def("__init__",
           [](State* self, std::shared_ptr<Model> model, int64_t batch) { new (self) State(model, batch); },
           "model"_a, "batch"_a)
      .def_prop_ro("batch", &State::batch)
      .def_rw("n_tokens", &State::n_tokens)
      .def("model", [](const State& s) { return std::const_pointer_cast<Model>(s.model_ptr()); })
      .def("copy", [](const State& s) { return std::shared_ptr<State>(s.copy()); })
      .def("reset", &State::reset)
      .def("copy_rows_from", &State::copy_rows_from, "src"_a, "src_row"_a, "dst_row"_a, "n"_a)
      .def("conv_array", [](const State& s) { return state_array(s, true); })
      .def("ssm_array", [](const State& s) { return state_array(s, false); })
      .def("set_arrays", &state_set, "conv"_a, "ssm"_a);

  m.def("forward", &run_forward, "state"_a, "ids"_a.none(), "embeds"_a.none(), "row0"_a = 0, "mode"_a = "all");
  m.def("forward_device", &run_forward_device, "state"_a, "ids"_a.none(), "embeds"_a.none(), "row0"_a = 0,
        "mode"_a = "all", "drop_batch"_a = false,
        "forward() into a new buffer in the backend's memory: numpy on host backends, a DLPack array on CUDA.");
  m.def("dlpack_cuda_to_host", &dlpack_cuda_to_host, "array"_a,
        "Copies a DLPack array in CUDA memory to the host: (uint8 bytes, shape, (dtype code, bits, lanes)).");
  m.def("cuda_view", &cuda_view, "owner"_a, "ptr"_a, "shape"_a, "device"_a,
        "A fresh DLPack export of float32 CUDA memory owned by `owner` (DeviceArray.__dlpack__).");
  m.def("data_ptr", [](nb::ndarray<nb::ro> a) { return reinterpret_cast<uintptr_t>(a.data()); }, "array"_a,
        "The address of the first element of any DLPack array (host or device).");
  m.def("cuda_to_host", &cuda_to_host, "ptr"_a, "shape"_a, "strides"_a, "itemsize"_a, "stream"_a = 0,
        "Copies a strided array in CUDA memory (strides in bytes) to C-contiguous host bytes (uint8).");
  m.def("generate", &run_generate, "state"_a, "prompts"_a, "max_new_tokens"_a, "temperature"_a, "top_k"_a,
        "top_p"_a, "min_p"_a, "repetition_penalty"_a, "seed"_a, "stop_tokens"_a, "callback"_a.none());

  register_op_runner(m);
}
