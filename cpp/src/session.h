// Recurrent states and the layer orchestration (prefill, decode, generate), written once for all backends.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "error.h"
#include "model.h"

namespace mambart {

// Per-call scratch in backend memory, cached in a State so repeated calls do not reallocate
// (and so recorded CUDA graphs keep valid pointers). Sized by (rows, chunk), never by prompt length.
struct Workspace {
  int64_t rows = 0;  // tokens per chunk (batch * chunk_len) it was sized for
  int64_t logit_rows = 0;
  Buffer resid, normed, xz, xc, xdbl, dt, y, delta, logits, ids, sampled;
};

// Conv and ssm state for `batch` sequences, all layers, fp32 in the model's backend:
// conv (n_layer, batch, d_inner, d_conv), ssm (n_layer, batch, d_inner, d_state).
class State {
 public:
  State(std::shared_ptr<const Model> model, int64_t batch);
  ~State();
  int64_t batch() const { return batch_; }
  const Model& model() const { return *model_; }
  std::shared_ptr<const Model> model_ptr() const { return model_; }
  float* conv(int64_t layer, int64_t row = 0) const;
  float* ssm(int64_t layer, int64_t row = 0) const;
  size_t conv_elems() const;  // all layers
  size_t ssm_elems() const;
  void reset();                                       // zeros
  std::unique_ptr<State> copy() const;
  void copy_rows_from(const State& src, int64_t src_row, int64_t dst_row, int64_t n);
  void download(float* conv_host, float* ssm_host) const;  // (n_layer, batch, ...); either may be nullptr
  void upload(const float* conv_host, const float* ssm_host);
  int64_t n_tokens = 0;  // tokens consumed (of row 0 / all rows when advanced together)
  Workspace& workspace() { return ws_; }

 private:
  std::shared_ptr<const Model> model_;
  int64_t batch_;
  Buffer conv_, ssm_;
  Workspace ws_;
};

enum class Output { None, LastLogits, AllLogits, LastHidden, AllHidden };

// Runs ids (batch, seqlen) (host, int32, validated here) through the model on state rows
// [row0, row0 + batch), advancing them. `out` (host fp32) receives per Output mode:
//   LastLogits (batch, vocab), AllLogits (batch, seqlen, vocab), LastHidden (batch, d_model),
//   AllHidden (batch, seqlen, d_model) (final-norm hidden states), None: nothing.
// `embeds` (host fp32, (batch, seqlen, d_model)) replaces the embedding lookup when ids == nullptr.
// The prompt is processed in chunks of `chunk` tokens per row; the state carries across chunks.
// `interrupted` is polled between chunks; when it returns true the call throws Interrupted.
void forward(State& state, int64_t row0, const int32_t* ids, const float* embeds, int64_t batch, int64_t seqlen,
             Output mode, float* out, const std::function<bool()>& interrupted = nullptr);

// forward() with `out` in the model backend's memory (e.g. a Buffer of that backend): lm_head writes the logits
// there directly, they never cross to the host. Modes None, LastLogits and AllLogits only (InvalidArgument
// otherwise). Returns after the backend synchronized: `out` is ready for a reader on any stream.
void forward_to_backend(State& state, int64_t row0, const int32_t* ids, const float* embeds, int64_t batch,
                        int64_t seqlen, Output mode, float* out, const std::function<bool()>& interrupted = nullptr);

struct GenerateOptions {
  int64_t max_new_tokens = 20;
  float temperature = 0.f;
  int64_t top_k = 0;
  float top_p = 1.f;
  float min_p = 0.f;
  float repetition_penalty = 1.f;
  uint64_t seed = 0;
  std::vector<int32_t> stop_tokens;  // empty: never stop early
};

// Called after each step with the new token per row ((batch,), -1 for rows already stopped).
// Returning false stops generation.
using TokenCallback = std::function<bool(const int32_t* tokens, int64_t batch)>;

// Prefills each row with its prompt (rows may have different lengths: prompts[r] of length lens[r]) and
// then decodes all rows together. Returns tokens (batch, n_steps) with -1 after a row stopped; n_steps
// <= max_new_tokens. Every prompt needs at least one token.
std::vector<int32_t> generate(State& state, const std::vector<const int32_t*>& prompts,
                              const std::vector<int64_t>& lens, const GenerateOptions& opt,
                              const TokenCallback& on_token, int64_t* n_steps_out,
                              const std::function<bool()>& interrupted = nullptr);


}  // namespace mambart
