// The C API (cpp/include/mambart/mambart.h): argument checks and exception-to-status mapping around the same
// core the Python module uses (Model::load, State, forward, generate). No computation lives here.
#include "mambart/mambart.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "error.h"
#include "model.h"
#include "session.h"

struct mambart_model {
  std::shared_ptr<mambart::Model> model;
};

struct mambart_state {
  std::unique_ptr<mambart::State> state;
  std::atomic<bool> cancel{false};
};

namespace {

using namespace mambart;

#define MAMBART_STR2(x) #x
#define MAMBART_STR(x) MAMBART_STR2(x)
constexpr const char* kVersion =
    MAMBART_STR(MAMBART_VERSION_MAJOR) "." MAMBART_STR(MAMBART_VERSION_MINOR) "." MAMBART_STR(MAMBART_VERSION_PATCH);

thread_local std::string t_last_error;

mambart_status fail(mambart_status s, const char* msg) noexcept {
  try {
    t_last_error = msg;
  } catch (...) {
    // Out of memory while storing the message: keep the old message rather than throw out of C code.
  }
  return s;
}

// Runs body() and maps every exception to a status (and a thread-local message). Nothing escapes.
template <typename F>
mambart_status guarded(F&& body) noexcept {
  try {
    body();
    return MAMBART_OK;
  } catch (const Interrupted& e) {
    return fail(MAMBART_INTERRUPTED, e.what());
  } catch (const OutOfMemory& e) {
    return fail(MAMBART_OUT_OF_MEMORY, e.what());
  } catch (const InvalidArgument& e) {
    return fail(MAMBART_INVALID_ARGUMENT, e.what());
  } catch (const FormatError& e) {
    return fail(MAMBART_FORMAT_ERROR, e.what());
  } catch (const FileError& e) {
    return fail(MAMBART_FILE_ERROR, e.what());
  } catch (const DeviceError& e) {
    return fail(MAMBART_DEVICE_ERROR, e.what());
  } catch (const std::bad_alloc&) {
    return fail(MAMBART_OUT_OF_MEMORY, "out of memory (std::bad_alloc)");
  } catch (const std::length_error& e) {
    return fail(MAMBART_OUT_OF_MEMORY, e.what());
  } catch (const std::exception& e) {
    return fail(MAMBART_INTERNAL, e.what());
  } catch (...) {
    return fail(MAMBART_INTERNAL, "unknown C++ exception");
  }
}

template <typename T>
void require_ptr(T* p, const char* name) {
  MAMBART_CHECK(p != nullptr, InvalidArgument, name, " is NULL");
}

// Polled by the core between prefill chunks and generated tokens; consumes a pending cancel request.
std::function<bool()> cancel_check(mambart_state* s) {
  return [s] { return s->cancel.exchange(false); };
}

// a * b * c (all >= 1) as a float count, rejecting products whose byte size overflows size_t.
size_t checked_product(int64_t a, int64_t b, int64_t c) {
  const uint64_t limit = SIZE_MAX / sizeof(float);
  MAMBART_CHECK(uint64_t(a) <= limit / uint64_t(b) && uint64_t(a) * uint64_t(b) <= limit / uint64_t(c),
                InvalidArgument, "output size overflows: ", a, " x ", b, " x ", c, " floats");
  return size_t(uint64_t(a) * uint64_t(b) * uint64_t(c));
}

}  // namespace

extern "C" {

const char* mambart_version(void) { return kVersion; }

const char* mambart_last_error(void) { return t_last_error.c_str(); }

const char* mambart_status_name(mambart_status status) {
  switch (status) {
    case MAMBART_OK: return "MAMBART_OK";
    case MAMBART_INVALID_ARGUMENT: return "MAMBART_INVALID_ARGUMENT";
    case MAMBART_FORMAT_ERROR: return "MAMBART_FORMAT_ERROR";
    case MAMBART_FILE_ERROR: return "MAMBART_FILE_ERROR";
    case MAMBART_DEVICE_ERROR: return "MAMBART_DEVICE_ERROR";
    case MAMBART_OUT_OF_MEMORY: return "MAMBART_OUT_OF_MEMORY";
    case MAMBART_INTERRUPTED: return "MAMBART_INTERRUPTED";
    case MAMBART_INTERNAL: return "MAMBART_INTERNAL";
  }
  return "MAMBART_UNKNOWN_STATUS";
}

mambart_load_options mambart_load_options_default(void) {
  mambart_load_options o;
  o.device = "auto";
  o.threads = 0;
  o.dtype = nullptr;
  return o;
}

mambart_sample_options mambart_sample_options_default(void) {
  mambart_sample_options o;
  const GenerateOptions g;
  o.max_new_tokens = g.max_new_tokens;
  o.temperature = g.temperature;
  o.top_k = g.top_k;
  o.top_p = g.top_p;
  o.min_p = g.min_p;
  o.repetition_penalty = g.repetition_penalty;
  o.seed = g.seed;
  o.stop_at_eos = 1;
  o.stop_tokens = nullptr;
  o.n_stop_tokens = 0;
  return o;
}

// ---- model ------------------------------------------------------------------------------------------------

mambart_status mambart_model_load(const char* path, const mambart_load_options* options, mambart_model** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    require_ptr(out, "out");
    require_ptr(path, "path");
    const mambart_load_options o = options ? *options : mambart_load_options_default();
    MAMBART_CHECK(o.threads >= 0, InvalidArgument, "threads must be >= 0, got ", o.threads);
    LoadOptions lo;
    lo.device = o.device ? o.device : "auto";
    lo.backend.threads = o.threads;
    lo.dtype = o.dtype ? o.dtype : "";
    auto h = std::make_unique<mambart_model>();
    h->model = Model::load(path, lo);
    *out = h.release();
  });
}

void mambart_model_free(mambart_model* model) { delete model; }

mambart_status mambart_model_config(const mambart_model* model, mambart_config* out) {
  return guarded([&] {
    require_ptr(model, "model");
    require_ptr(out, "out");
    const ModelConfig& c = model->model->config();
    out->d_model = c.d_model;
    out->n_layer = c.n_layer;
    out->vocab_size = c.vocab_size;
    out->d_state = c.d_state;
    out->d_conv = c.d_conv;
    out->d_inner = c.d_inner;
    out->dt_rank = c.dt_rank;
    out->eos_token_id = c.eos_token_id;
  });
}

// ---- state ------------------------------------------------------------------------------------------------

mambart_status mambart_state_new(const mambart_model* model, int64_t batch, mambart_state** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    require_ptr(model, "model");
    require_ptr(out, "out");
    auto h = std::make_unique<mambart_state>();
    h->state = std::make_unique<State>(model->model, batch);
    *out = h.release();
  });
}

mambart_status mambart_state_copy(const mambart_state* src, mambart_state** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    require_ptr(src, "src");
    require_ptr(out, "out");
    auto h = std::make_unique<mambart_state>();
    h->state = src->state->copy();
    *out = h.release();
  });
}

mambart_status mambart_state_reset(mambart_state* state) {
  return guarded([&] {
    require_ptr(state, "state");
    state->state->reset();
  });
}

mambart_status mambart_state_batch(const mambart_state* state, int64_t* out) {
  return guarded([&] {
    require_ptr(state, "state");
    require_ptr(out, "out");
    *out = state->state->batch();
  });
}

void mambart_state_free(mambart_state* state) { delete state; }

mambart_status mambart_state_cancel(mambart_state* state) {
  return guarded([&] {
    require_ptr(state, "state");
    state->cancel.store(true);
  });
}

// ---- compute ----------------------------------------------------------------------------------------------

mambart_status mambart_forward(mambart_state* state, const int32_t* ids, int64_t batch, int64_t seqlen,
                               int last_only, float* logits_out, size_t logits_capacity_floats) {
  return guarded([&] {
    require_ptr(state, "state");
    require_ptr(ids, "ids");
    State& st = *state->state;
    MAMBART_CHECK(batch == st.batch(), InvalidArgument, "ids have ", batch, " rows but the state has batch ",
                  st.batch());
    MAMBART_CHECK(seqlen >= 1, InvalidArgument, "empty input: seqlen is ", seqlen);
    const int64_t V = st.model().config().vocab_size;
    Output mode = Output::None;
    if (logits_out) {
      mode = last_only ? Output::LastLogits : Output::AllLogits;
      const size_t need = checked_product(batch, last_only ? 1 : seqlen, V);
      MAMBART_CHECK(logits_capacity_floats >= need, InvalidArgument, "logits buffer holds ", logits_capacity_floats,
                    " floats but ", need, " are needed (batch ", batch, ", seqlen ", last_only ? 1 : seqlen,
                    ", vocab_size ", V, ")");
    }
    forward(st, 0, ids, nullptr, batch, seqlen, mode, logits_out, cancel_check(state));
  });
}

mambart_status mambart_step(mambart_state* state, const int32_t* ids, float* logits_out,
                            size_t logits_capacity_floats) {
  if (!state) return fail(MAMBART_INVALID_ARGUMENT, "state is NULL");
  return mambart_forward(state, ids, state->state->batch(), 1, 1, logits_out, logits_capacity_floats);
}

}  // extern "C"

namespace {

// Shared by mambart_generate and mambart_generate_ragged: one prompt pointer and length per state row.
mambart_status generate_rows(mambart_state* state, std::vector<const int32_t*> prompts, std::vector<int64_t> lens,
                             const mambart_sample_options* options, mambart_token_callback callback, void* user,
                             int32_t* out_tokens, int64_t capacity, int64_t* n_out) {
  return guarded([&] {
    State& st = *state->state;
    const int64_t B = st.batch();
    for (size_t r = 0; r < lens.size(); ++r) {
      require_ptr(prompts[r], "prompt");
      MAMBART_CHECK(lens[r] >= 1, InvalidArgument, "empty input: prompt ", r, " has length ", lens[r]);
    }
    const mambart_sample_options o = options ? *options : mambart_sample_options_default();
    MAMBART_CHECK(o.max_new_tokens >= 0, InvalidArgument, "max_new_tokens must be >= 0, got ", o.max_new_tokens);
    MAMBART_CHECK(o.n_stop_tokens >= 0 && (o.n_stop_tokens == 0 || o.stop_tokens), InvalidArgument,
                  "stop_tokens is NULL with n_stop_tokens = ", o.n_stop_tokens);
    if (out_tokens) {
      MAMBART_CHECK(capacity >= 0 && uint64_t(capacity) >= uint64_t(B) * uint64_t(o.max_new_tokens),
                    InvalidArgument, "out_tokens holds ", capacity, " tokens but batch * max_new_tokens = ",
                    B * o.max_new_tokens, " may be generated");
    }
    GenerateOptions g;
    g.max_new_tokens = o.max_new_tokens;
    g.temperature = o.temperature;
    g.top_k = o.top_k;
    g.top_p = o.top_p;
    g.min_p = o.min_p;
    g.repetition_penalty = o.repetition_penalty;
    g.seed = o.seed;
    if (o.stop_at_eos && st.model().config().eos_token_id >= 0)
      g.stop_tokens.push_back(int32_t(st.model().config().eos_token_id));
    for (int64_t i = 0; i < o.n_stop_tokens; ++i) g.stop_tokens.push_back(o.stop_tokens[i]);

    TokenCallback cb;
    if (callback) cb = [callback, user](const int32_t* toks, int64_t b) { return callback(toks, b, user) != 0; };
    int64_t steps = 0;
    std::vector<int32_t> toks = generate(st, prompts, lens, g, cb, &steps, cancel_check(state));
    if (out_tokens && !toks.empty()) std::memcpy(out_tokens, toks.data(), toks.size() * sizeof(int32_t));
    if (n_out) *n_out = steps;
  });
}

}  // namespace

extern "C" {

mambart_status mambart_generate(mambart_state* state, const int32_t* prompt, int64_t len,
                                const mambart_sample_options* options, mambart_token_callback callback, void* user,
                                int32_t* out_tokens, int64_t capacity, int64_t* n_out) {
  if (n_out) *n_out = 0;
  if (!state || !prompt)
    return guarded([&] { require_ptr(state, "state"); require_ptr(prompt, "prompt"); });
  const int64_t B = state->state->batch();
  std::vector<const int32_t*> prompts(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) prompts[size_t(r)] = prompt + r * len;
  return generate_rows(state, std::move(prompts), std::vector<int64_t>(static_cast<size_t>(B), len), options,
                       callback, user, out_tokens, capacity, n_out);
}

mambart_status mambart_generate_ragged(mambart_state* state, const int32_t* const* prompts, const int64_t* lens,
                                       const mambart_sample_options* options, mambart_token_callback callback,
                                       void* user, int32_t* out_tokens, int64_t capacity, int64_t* n_out) {
  if (n_out) *n_out = 0;
  if (!state || !prompts || !lens)
    return guarded([&] { require_ptr(state, "state"); require_ptr(prompts, "prompts"); require_ptr(lens, "lens"); });
  const size_t B = size_t(state->state->batch());
  return generate_rows(state, std::vector<const int32_t*>(prompts, prompts + B), std::vector<int64_t>(lens, lens + B),
                       options, callback, user, out_tokens, capacity, n_out);
}

}  // extern "C"
