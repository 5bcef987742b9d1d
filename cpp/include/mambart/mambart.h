/* mambart C API: run Mamba-1 language models from C, C++ or any language with a C FFI.
 *
 * Plain C (C89 declarations, <stddef.h>/<stdint.h> types), opaque handles, no C++ types. Every function that
 * can fail returns a mambart_status; none aborts or exits. On failure, mambart_last_error() gives a message
 * for the calling thread.
 *
 * Typical use:
 *   mambart_model* model;  mambart_state* state;
 *   if (mambart_model_load("path/to/model", NULL, &model) != MAMBART_OK) puts(mambart_last_error());
 *   mambart_state_new(model, 1, &state);
 *   mambart_sample_options so = mambart_sample_options_default();  so.max_new_tokens = 32;
 *   mambart_generate(state, prompt, prompt_len, &so, NULL, NULL, out, 32, &n_out);
 *   mambart_state_free(state);  mambart_model_free(model);
 *
 * Threads: a model is immutable after loading and may be used by any number of threads at once, each with its
 * own state. A state must not be used by two calls at the same time (mambart_state_cancel excepted).
 * Lifetimes: a state keeps its model alive; mambart_model_free may be called before the states are freed.
 *
 * Shapes are row-major: ids (batch, seqlen) int32, logits (batch, seqlen, vocab_size) or (batch, vocab_size)
 * float32, generated tokens (batch, n_out) int32.
 */
#ifndef MAMBART_H_
#define MAMBART_H_

#include <stddef.h>
#include <stdint.h>

#define MAMBART_VERSION_MAJOR 0
#define MAMBART_VERSION_MINOR 1
#define MAMBART_VERSION_PATCH 0

#if defined(_WIN32)
#if defined(MAMBART_BUILDING_LIBRARY)
#define MAMBART_API __declspec(dllexport)
#else
#define MAMBART_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define MAMBART_API __attribute__((visibility("default")))
#else
#define MAMBART_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mambart_status {
  MAMBART_OK = 0,
  MAMBART_INVALID_ARGUMENT = 1, /* bad argument: NULL pointer, ids out of range, buffer too small, bad option */
  MAMBART_FORMAT_ERROR = 2,     /* a model file is malformed or does not match the model spec */
  MAMBART_FILE_ERROR = 3,       /* a file cannot be opened, read or mapped */
  MAMBART_DEVICE_ERROR = 4,     /* device (CUDA) failure or device not available in this build */
  MAMBART_OUT_OF_MEMORY = 5,    /* an allocation failed; the message names the size */
  MAMBART_INTERRUPTED = 6,      /* stopped by mambart_state_cancel */
  MAMBART_INTERNAL = 7          /* anything else (a bug: please report the message) */
} mambart_status;

typedef struct mambart_model mambart_model; /* loaded weights on one device */
typedef struct mambart_state mambart_state; /* recurrent state of `batch` sequences */

/* Model dimensions, as normalized by the loader from any supported checkpoint layout. */
typedef struct mambart_config {
  int64_t d_model;
  int64_t n_layer;
  int64_t vocab_size; /* width of the logits */
  int64_t d_state;
  int64_t d_conv;
  int64_t d_inner;
  int64_t dt_rank;
  int64_t eos_token_id; /* -1 when the config has none */
} mambart_config;

/* Load options. Get defaults from mambart_load_options_default(), then change fields. */
typedef struct mambart_load_options {
  const char* device; /* "auto", "cpu", "ref", "cuda", "cuda:N"; NULL means "auto" */
  int32_t threads;    /* CPU threads; 0: physical cores */
  const char* dtype;  /* projection dtype: NULL or "" keeps the stored one; "float32", "float16", "bfloat16" */
} mambart_load_options;

/* Sampling options for mambart_generate. Get defaults from mambart_sample_options_default(). */
typedef struct mambart_sample_options {
  int64_t max_new_tokens;     /* default 20 */
  float temperature;          /* 0: greedy (default) */
  int64_t top_k;              /* 0: off */
  float top_p;                /* 1: off */
  float min_p;                /* 0: off */
  float repetition_penalty;   /* 1: off */
  uint64_t seed;              /* same seed, same tokens (on the same backend); default 0 */
  int32_t stop_at_eos;        /* nonzero (default): stop a row at the config's eos token */
  const int32_t* stop_tokens; /* extra stop tokens (may be NULL) */
  int64_t n_stop_tokens;
} mambart_sample_options;

/* Called after every generated step with the new token of each row ((batch,), -1 for rows that already
 * stopped). Return nonzero to continue, 0 to stop the generation (the tokens so far are kept). */
typedef int (*mambart_token_callback)(const int32_t* tokens, int64_t batch, void* user);

/* ---- library ------------------------------------------------------------------------------------------ */

/* "MAJOR.MINOR.PATCH" of the library actually loaded (compare with the MAMBART_VERSION_* macros). */
MAMBART_API const char* mambart_version(void);
/* Message of the last failed call on this thread ("" if none). Valid until the next failing call on this
 * thread. Successful calls do not clear it. */
MAMBART_API const char* mambart_last_error(void);
/* Name of a status code, e.g. "MAMBART_FORMAT_ERROR". */
MAMBART_API const char* mambart_status_name(mambart_status status);

MAMBART_API mambart_load_options mambart_load_options_default(void);
MAMBART_API mambart_sample_options mambart_sample_options_default(void);

/* ---- model -------------------------------------------------------------------------------------------- */

/* Loads a model folder (config.json + *.safetensors, Hugging Face "mamba" or state-spaces layout) or a
 * .safetensors file next to its config.json. options may be NULL (defaults). On failure *out is NULL. */
MAMBART_API mambart_status mambart_model_load(const char* path, const mambart_load_options* options,
                                              mambart_model** out);
/* Releases the caller's reference (NULL is fine). Weights stay alive while states of the model exist. */
MAMBART_API void mambart_model_free(mambart_model* model);
MAMBART_API mambart_status mambart_model_config(const mambart_model* model, mambart_config* out);

/* ---- state -------------------------------------------------------------------------------------------- */

/* A zero state for `batch` sequences (1 <= batch). */
MAMBART_API mambart_status mambart_state_new(const mambart_model* model, int64_t batch, mambart_state** out);
/* An independent copy of src (same model, batch and contents). */
MAMBART_API mambart_status mambart_state_copy(const mambart_state* src, mambart_state** out);
/* Back to zeros. */
MAMBART_API mambart_status mambart_state_reset(mambart_state* state);
MAMBART_API mambart_status mambart_state_batch(const mambart_state* state, int64_t* out);
MAMBART_API void mambart_state_free(mambart_state* state);
/* Asks the call running on this state (or the next one) to stop at its next check (between prefill chunks
 * and between generated tokens); that call returns MAMBART_INTERRUPTED. Safe from any thread. */
MAMBART_API mambart_status mambart_state_cancel(mambart_state* state);

/* ---- compute ------------------------------------------------------------------------------------------ */

/* Runs ids (batch, seqlen) through the model, continuing from the state and advancing it. batch must equal
 * the state's batch. Writes logits for every position (batch, seqlen, vocab_size) or, when last_only is
 * nonzero, for the last one (batch, vocab_size). logits_out may be NULL (with capacity 0) to only advance
 * the state. logits_capacity_floats is the size of logits_out in floats; too small is INVALID_ARGUMENT. */
MAMBART_API mambart_status mambart_forward(mambart_state* state, const int32_t* ids, int64_t batch, int64_t seqlen,
                                           int last_only, float* logits_out, size_t logits_capacity_floats);
/* One token per row: ids (batch,) -> logits (batch, vocab_size). Same as mambart_forward(seqlen = 1). */
MAMBART_API mambart_status mambart_step(mambart_state* state, const int32_t* ids, float* logits_out,
                                        size_t logits_capacity_floats);
/* Feeds prompt (batch, len) (batch = the state's batch) and generates up to options->max_new_tokens tokens
 * per row. out_tokens (batch, *n_out) row-major receives them (-1 after a row stopped) and needs capacity
 * >= batch * max_new_tokens int32s; it may be NULL (capacity 0) when the callback collects the tokens.
 * callback may be NULL. options may be NULL (defaults). The state ends advanced by the prompt and every
 * generated token but the last one. */
MAMBART_API mambart_status mambart_generate(mambart_state* state, const int32_t* prompt, int64_t len,
                                            const mambart_sample_options* options, mambart_token_callback callback,
                                            void* user, int32_t* out_tokens, int64_t capacity, int64_t* n_out);
/* Like mambart_generate with one prompt per row of different lengths: prompts[r] of lens[r] tokens (batch =
 * the state's batch). Each row is prefilled on its own (exact, no padding), then all rows decode together. */
MAMBART_API mambart_status mambart_generate_ragged(mambart_state* state, const int32_t* const* prompts,
                                                   const int64_t* lens, const mambart_sample_options* options,
                                                   mambart_token_callback callback, void* user, int32_t* out_tokens,
                                                   int64_t capacity, int64_t* n_out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MAMBART_H_ */
