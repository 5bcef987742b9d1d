/* Drives every function of the mambart C API on a small random model that this program writes itself
 * (Hugging Face "mamba" layout: config.json + model.safetensors), so it needs neither Python nor torch.
 * Run: test_c_api_c <scratch_dir>. Prints "N passed, M failed"; exit status 1 when anything failed.
 * Also used under ASan/UBSan by tools/sanitize_check.sh.
 * Tolerance: prefill vs token-by-token logits agree to 1e-5 relative (fp32; summation order differs). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mambart/mambart.h>

static int g_pass = 0, g_fail = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) {                                            \
      ++g_pass;                                            \
    } else {                                               \
      ++g_fail;                                            \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

/* Model dimensions. */
enum { D_MODEL = 32, N_LAYER = 2, D_STATE = 8, D_CONV = 4, D_INNER = 64, DT_RANK = 2, VOCAB = 53, EOS = 0 };

/* ---- a tiny safetensors writer --------------------------------------------------------------------------- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) { /* [0, 1) */
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) * (1.0 / 16777216.0));
}
static float noise(void) { return 2.f * uniform() - 1.f; }

typedef struct {
  char name[96];
  int64_t shape[3];
  int ndim;
  float* data;
  size_t n;
} tensor;

static tensor g_tensors[64];
static int g_n_tensors = 0;

typedef enum { INIT_WEIGHT, INIT_ONES, INIT_DT_BIAS, INIT_A_LOG } init_kind;

static void add_tensor(const char* name, int ndim, int64_t s0, int64_t s1, int64_t s2, init_kind kind, float scale) {
  tensor* t = &g_tensors[g_n_tensors++];
  size_t i;
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->shape[0] = s0;
  t->shape[1] = s1;
  t->shape[2] = s2;
  t->n = (size_t)s0 * (size_t)(ndim > 1 ? s1 : 1) * (size_t)(ndim > 2 ? s2 : 1);
  t->data = (float*)malloc(t->n * sizeof(float));
  for (i = 0; i < t->n; ++i) {
    switch (kind) {
      case INIT_WEIGHT: t->data[i] = scale * noise(); break;
      case INIT_ONES: t->data[i] = 1.f + scale * noise(); break;
      case INIT_DT_BIAS: t->data[i] = -2.f + 0.5f * noise(); break;
      case INIT_A_LOG: t->data[i] = logf(uniform() * 8.f + 0.5f); break;
    }
  }
}

static int write_model(const char* dir) {
  char path[512], name[96], header[16384];
  size_t off = 0, hlen = 0, i;
  uint64_t hlen64;
  FILE* f;
  int l;
  mkdir(dir, 0755);
  g_n_tensors = 0;
  add_tensor("backbone.embeddings.weight", 2, VOCAB, D_MODEL, 0, INIT_WEIGHT, 0.5f);
  for (l = 0; l < N_LAYER; ++l) {
#define NAME(suffix) (snprintf(name, sizeof name, "backbone.layers.%d.%s", l, suffix), name)
    add_tensor(NAME("norm.weight"), 1, D_MODEL, 0, 0, INIT_ONES, 0.1f);
    add_tensor(NAME("mixer.in_proj.weight"), 2, 2 * D_INNER, D_MODEL, 0, INIT_WEIGHT, 0.2f);
    add_tensor(NAME("mixer.conv1d.weight"), 3, D_INNER, 1, D_CONV, INIT_WEIGHT, 0.4f);
    add_tensor(NAME("mixer.conv1d.bias"), 1, D_INNER, 0, 0, INIT_WEIGHT, 0.1f);
    add_tensor(NAME("mixer.x_proj.weight"), 2, DT_RANK + 2 * D_STATE, D_INNER, 0, INIT_WEIGHT, 0.2f);
    add_tensor(NAME("mixer.dt_proj.weight"), 2, D_INNER, DT_RANK, 0, INIT_WEIGHT, 0.4f);
    add_tensor(NAME("mixer.dt_proj.bias"), 1, D_INNER, 0, 0, INIT_DT_BIAS, 0.f);
    add_tensor(NAME("mixer.A_log"), 2, D_INNER, D_STATE, 0, INIT_A_LOG, 0.f);
    add_tensor(NAME("mixer.D"), 1, D_INNER, 0, 0, INIT_ONES, 0.1f);
    add_tensor(NAME("mixer.out_proj.weight"), 2, D_MODEL, D_INNER, 0, INIT_WEIGHT, 0.2f);
#undef NAME
  }
  add_tensor("backbone.norm_f.weight", 1, D_MODEL, 0, 0, INIT_ONES, 0.1f);

  hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, "{");
  for (i = 0; i < (size_t)g_n_tensors; ++i) {
    const tensor* t = &g_tensors[i];
    hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld",
                             i ? "," : "", t->name, (long long)t->shape[0]);
    if (t->ndim > 1) hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, ",%lld", (long long)t->shape[1]);
    if (t->ndim > 2) hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, ",%lld", (long long)t->shape[2]);
    hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, "],\"data_offsets\":[%zu,%zu]}", off,
                             off + t->n * 4);
    off += t->n * 4;
  }
  hlen += (size_t)snprintf(header + hlen, sizeof header - hlen, "}");
  while (hlen % 8) header[hlen++] = ' ';

  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  f = fopen(path, "wb");
  if (!f) return 0;
  hlen64 = hlen; /* little-endian hosts only (x86-64, aarch64) */
  fwrite(&hlen64, 8, 1, f);
  fwrite(header, 1, hlen, f);
  for (i = 0; i < (size_t)g_n_tensors; ++i) {
    fwrite(g_tensors[i].data, 4, g_tensors[i].n, f);
    free(g_tensors[i].data);
  }
  fclose(f);

  snprintf(path, sizeof path, "%s/config.json", dir);
  f = fopen(path, "w");
  if (!f) return 0;
  fprintf(f,
          "{\"model_type\": \"mamba\", \"hidden_size\": %d, \"num_hidden_layers\": %d, \"state_size\": %d, "
          "\"expand\": 2, \"intermediate_size\": %d, \"conv_kernel\": %d, \"time_step_rank\": \"auto\", "
          "\"vocab_size\": %d, \"use_bias\": false, \"use_conv_bias\": true, \"residual_in_fp32\": true, "
          "\"tie_word_embeddings\": true, \"layer_norm_epsilon\": 1e-5, \"hidden_act\": \"silu\", "
          "\"bos_token_id\": 0, \"eos_token_id\": %d, \"pad_token_id\": 0}\n",
          D_MODEL, N_LAYER, D_STATE, D_INNER, D_CONV, VOCAB, EOS);
  fclose(f);
  return 1;
}

/* Copies dir/model.safetensors to dst/ with the last `cut` bytes dropped, and config.json as is. */
static int write_truncated_copy(const char* dir, const char* dst, long cut) {
  char src[600], out[600], buf[4096];
  const char* files[2] = {"config.json", "model.safetensors"};
  int k;
  mkdir(dst, 0755);
  for (k = 0; k < 2; ++k) {
    FILE *in, *o;
    long size, done = 0;
    snprintf(src, sizeof src, "%s/%s", dir, files[k]);
    snprintf(out, sizeof out, "%s/%s", dst, files[k]);
    in = fopen(src, "rb");
    o = fopen(out, "wb");
    if (!in || !o) return 0;
    fseek(in, 0, SEEK_END);
    size = ftell(in) - (k == 1 ? cut : 0);
    fseek(in, 0, SEEK_SET);
    while (done < size) {
      size_t want = (size_t)(size - done) < sizeof buf ? (size_t)(size - done) : sizeof buf;
      size_t got = fread(buf, 1, want, in);
      if (!got) break;
      fwrite(buf, 1, got, o);
      done += (long)got;
    }
    fclose(in);
    fclose(o);
  }
  return 1;
}

/* ---- helpers --------------------------------------------------------------------------------------------- */

static float rel_err(const float* a, const float* b, size_t n) {
  float num = 0.f, den = 1e-30f;
  size_t i;
  for (i = 0; i < n; ++i) {
    float d = fabsf(a[i] - b[i]);
    if (d > num) num = d;
    if (fabsf(b[i]) > den) den = fabsf(b[i]);
  }
  return num / den;
}

static int32_t argmax(const float* x, int n) {
  int i, best = 0;
  for (i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

typedef struct {
  int64_t calls, stop_after;
  int32_t seen[64];
} cb_data;

static int collect(const int32_t* tokens, int64_t batch, void* user) {
  cb_data* d = (cb_data*)user;
  if (d->calls < 64) d->seen[d->calls] = tokens[batch - 1];
  ++d->calls;
  return d->stop_after == 0 || d->calls < d->stop_after;
}

/* ---- tests ----------------------------------------------------------------------------------------------- */

static void test_errors_without_model(const char* dir) {
  mambart_model* m = (mambart_model*)0x1;
  mambart_state* s = (mambart_state*)0x1;
  char bad[512];
  mambart_status st;
  mambart_load_options lo = mambart_load_options_default();

  snprintf(bad, sizeof bad, "%s/does-not-exist", dir);
  st = mambart_model_load(bad, NULL, &m);
  CHECK(st == MAMBART_FILE_ERROR, "missing path gave %s", mambart_status_name(st));
  CHECK(m == NULL, "out not cleared on failure");
  CHECK(strstr(mambart_last_error(), "does-not-exist") != NULL, "message: %s", mambart_last_error());

  CHECK(mambart_model_load(NULL, NULL, &m) == MAMBART_INVALID_ARGUMENT, "NULL path");
  CHECK(strstr(mambart_last_error(), "path") != NULL, "message: %s", mambart_last_error());
  CHECK(mambart_model_load(dir, NULL, NULL) == MAMBART_INVALID_ARGUMENT, "NULL out");
  lo.device = "tpu";
  st = mambart_model_load(dir, &lo, &m);
  CHECK(st == MAMBART_INVALID_ARGUMENT, "unknown device gave %s", mambart_status_name(st));
  lo = mambart_load_options_default();
  lo.device = "cuda:0";
  st = mambart_model_load(dir, &lo, &m);
  CHECK(st == MAMBART_OK || st == MAMBART_DEVICE_ERROR, "cuda without device gave %s", mambart_status_name(st));
  if (st == MAMBART_OK) mambart_model_free(m);
  lo = mambart_load_options_default();
  lo.dtype = "int3";
  CHECK(mambart_model_load(dir, &lo, &m) == MAMBART_INVALID_ARGUMENT, "bad dtype");
  CHECK(mambart_state_new(NULL, 1, &s) == MAMBART_INVALID_ARGUMENT && s == NULL, "NULL model");
  CHECK(mambart_state_reset(NULL) == MAMBART_INVALID_ARGUMENT, "NULL state");
  CHECK(mambart_state_cancel(NULL) == MAMBART_INVALID_ARGUMENT, "NULL state");
  CHECK(mambart_step(NULL, NULL, NULL, 0) == MAMBART_INVALID_ARGUMENT, "NULL state");
  CHECK(mambart_generate(NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, NULL) == MAMBART_INVALID_ARGUMENT, "NULL");
  mambart_model_free(NULL);
  mambart_state_free(NULL);
  CHECK(strcmp(mambart_status_name(MAMBART_FORMAT_ERROR), "MAMBART_FORMAT_ERROR") == 0, "status name");
}

static void test_truncated(const char* dir, const char* scratch) {
  char dst[512];
  mambart_model* m = NULL;
  mambart_status st;
  snprintf(dst, sizeof dst, "%s/truncated", scratch);
  CHECK(write_truncated_copy(dir, dst, 1000), "copy");
  st = mambart_model_load(dst, NULL, &m);
  CHECK(st == MAMBART_FORMAT_ERROR, "truncated file gave %s: %s", mambart_status_name(st), mambart_last_error());
  CHECK(strstr(mambart_last_error(), "model.safetensors") != NULL, "message: %s", mambart_last_error());
  mambart_model_free(m);
}

static void test_compute(mambart_model* m) {
  enum { L = 9, NEW = 12 };
  const int32_t ids[L] = {3, 17, 52, 8, 8, 41, 1, 29, 30};
  float* all = (float*)malloc(sizeof(float) * L * VOCAB);
  float* steps = (float*)malloc(sizeof(float) * L * VOCAB);
  float last[VOCAB], last2[2 * VOCAB], tmp[VOCAB];
  int32_t ids2[2 * L], gen[2 * NEW], expect[NEW], bad_id = VOCAB, tok;
  mambart_state *s = NULL, *s2 = NULL, *c = NULL;
  mambart_sample_options so = mambart_sample_options_default();
  mambart_status st;
  cb_data cb;
  int64_t n_out = -1, batch = 0;
  int i;

  CHECK(mambart_state_new(m, 1, &s) == MAMBART_OK, "%s", mambart_last_error());
  CHECK(mambart_state_batch(s, &batch) == MAMBART_OK && batch == 1, "batch");

  /* Prefill of the whole prompt == token-by-token steps. */
  CHECK(mambart_forward(s, ids, 1, L, 0, all, (size_t)L * VOCAB) == MAMBART_OK, "%s", mambart_last_error());
  CHECK(mambart_state_reset(s) == MAMBART_OK, "reset");
  for (i = 0; i < L; ++i)
    CHECK(mambart_step(s, &ids[i], steps + i * VOCAB, VOCAB) == MAMBART_OK, "%s", mambart_last_error());
  CHECK(rel_err(steps, all, (size_t)L * VOCAB) <= 1e-5f, "prefill vs steps: %g", rel_err(steps, all, L * VOCAB));
  CHECK(mambart_state_reset(s) == MAMBART_OK, "reset");
  CHECK(mambart_forward(s, ids, 1, L, 1, last, VOCAB) == MAMBART_OK, "%s", mambart_last_error());
  CHECK(rel_err(last, all + (L - 1) * VOCAB, VOCAB) <= 1e-6f, "last_only");

  /* A copy continues exactly like the original; reset goes back to zeros. */
  CHECK(mambart_state_copy(s, &c) == MAMBART_OK, "copy");
  tok = 5;
  CHECK(mambart_step(s, &tok, last, VOCAB) == MAMBART_OK, "step");
  CHECK(mambart_step(c, &tok, tmp, VOCAB) == MAMBART_OK, "step copy");
  CHECK(memcmp(last, tmp, sizeof last) == 0, "copy diverged");
  CHECK(mambart_state_reset(c) == MAMBART_OK, "reset");
  CHECK(mambart_forward(c, ids, 1, 1, 1, tmp, VOCAB) == MAMBART_OK, "forward");
  CHECK(rel_err(tmp, all, VOCAB) <= 1e-6f, "reset state differs from a fresh one");
  /* Advancing without logits. */
  CHECK(mambart_state_reset(c) == MAMBART_OK && mambart_forward(c, ids, 1, L - 1, 0, NULL, 0) == MAMBART_OK &&
            mambart_step(c, &ids[L - 1], tmp, VOCAB) == MAMBART_OK,
        "%s", mambart_last_error());
  CHECK(rel_err(tmp, all + (L - 1) * VOCAB, VOCAB) <= 1e-5f, "forward without logits did not advance the state");

  /* Batch of 2 rows == each row alone. */
  memcpy(ids2, ids, sizeof ids);
  for (i = 0; i < L; ++i) ids2[L + i] = (ids[i] * 7 + 3) % VOCAB;
  CHECK(mambart_state_new(m, 2, &s2) == MAMBART_OK, "%s", mambart_last_error());
  CHECK(mambart_forward(s2, ids2, 2, L, 1, last2, 2 * VOCAB) == MAMBART_OK, "%s", mambart_last_error());
  CHECK(rel_err(last2, all + (L - 1) * VOCAB, VOCAB) <= 1e-6f, "batch row 0");
  mambart_state_reset(c);
  CHECK(mambart_forward(c, ids2 + L, 1, L, 1, tmp, VOCAB) == MAMBART_OK, "forward");
  CHECK(rel_err(last2 + VOCAB, tmp, VOCAB) <= 1e-6f, "batch row 1");

  /* Greedy generation == argmax of step logits fed back. */
  mambart_state_reset(c);
  CHECK(mambart_forward(c, ids, 1, L, 1, tmp, VOCAB) == MAMBART_OK, "forward");
  for (i = 0; i < NEW; ++i) {
    expect[i] = argmax(tmp, VOCAB);
    if (i + 1 < NEW) mambart_step(c, &expect[i], tmp, VOCAB);
  }
  mambart_state_reset(s);
  so.max_new_tokens = NEW;
  so.stop_at_eos = 0;
  memset(&cb, 0, sizeof cb);
  st = mambart_generate(s, ids, L, &so, collect, &cb, gen, NEW, &n_out);
  CHECK(st == MAMBART_OK, "%s", mambart_last_error());
  CHECK(n_out == NEW && cb.calls == NEW, "n_out %lld, callbacks %lld", (long long)n_out, (long long)cb.calls);
  CHECK(memcmp(gen, expect, sizeof expect) == 0, "greedy tokens differ from argmax of steps");
  CHECK(memcmp(cb.seen, expect, sizeof expect) == 0, "callback tokens differ");

  /* Stop from the callback after 3 tokens; stop at a chosen stop token. */
  mambart_state_reset(s);
  memset(&cb, 0, sizeof cb);
  cb.stop_after = 3;
  CHECK(mambart_generate(s, ids, L, &so, collect, &cb, gen, NEW, &n_out) == MAMBART_OK && n_out == 3,
        "callback stop: n_out %lld", (long long)n_out);
  mambart_state_reset(s);
  so.stop_tokens = &expect[4];
  so.n_stop_tokens = 1;
  CHECK(mambart_generate(s, ids, L, &so, NULL, NULL, gen, NEW, &n_out) == MAMBART_OK, "%s", mambart_last_error());
  for (i = 0; i < 4 && expect[i] != expect[4]; ++i) {
  }
  CHECK(n_out == i + 1, "stop token: n_out %lld, expected %d", (long long)n_out, i + 1);
  so.stop_tokens = NULL;
  so.n_stop_tokens = 0;

  /* Batch generation: row r equals generating row r alone; tokens are (batch, n_out). */
  mambart_state_reset(s2);
  CHECK(mambart_generate(s2, ids2, L, &so, NULL, NULL, gen, 2 * NEW, &n_out) == MAMBART_OK && n_out == NEW,
        "%s", mambart_last_error());
  CHECK(memcmp(gen, expect, sizeof expect) == 0, "batch generation row 0");

  /* Ragged rows: row 0 the full prompt, row 1 one token shorter; each equals generating it alone. */
  {
    const int32_t* rows[2] = {ids, ids};
    int64_t lens[2] = {L, L - 1};
    int32_t alone[NEW];
    mambart_state_reset(s2);
    CHECK(mambart_generate_ragged(s2, rows, lens, &so, NULL, NULL, gen, 2 * NEW, &n_out) == MAMBART_OK &&
              n_out == NEW, "%s", mambart_last_error());
    CHECK(memcmp(gen, expect, sizeof expect) == 0, "ragged row 0");
    mambart_state_reset(s);
    CHECK(mambart_generate(s, ids, L - 1, &so, NULL, NULL, alone, NEW, &n_out) == MAMBART_OK, "%s",
          mambart_last_error());
    CHECK(memcmp(gen + NEW, alone, sizeof alone) == 0, "ragged row 1");
    lens[1] = 0;
    CHECK(mambart_generate_ragged(s2, rows, lens, &so, NULL, NULL, gen, 2 * NEW, &n_out) ==
              MAMBART_INVALID_ARGUMENT, "empty ragged row");
  }

  /* Sampling with a seed is reproducible. */
  so.temperature = 0.8f;
  so.top_k = 20;
  so.seed = 1234;
  mambart_state_reset(s);
  CHECK(mambart_generate(s, ids, L, &so, NULL, NULL, gen, NEW, &n_out) == MAMBART_OK, "%s", mambart_last_error());
  mambart_state_reset(s);
  CHECK(mambart_generate(s, ids, L, &so, NULL, NULL, gen + NEW, NEW, &n_out) == MAMBART_OK, "sample");
  CHECK(memcmp(gen, gen + NEW, sizeof(int32_t) * NEW) == 0, "same seed, different tokens");

  /* Argument errors: each returns a status and a message, and leaves the state usable. */
  st = mambart_forward(s, &bad_id, 1, 1, 1, tmp, VOCAB);
  CHECK(st == MAMBART_INVALID_ARGUMENT && strstr(mambart_last_error(), "out of range"), "%s: %s",
        mambart_status_name(st), mambart_last_error());
  bad_id = -1;
  CHECK(mambart_forward(s, &bad_id, 1, 1, 1, tmp, VOCAB) == MAMBART_INVALID_ARGUMENT, "negative id");
  st = mambart_forward(s, ids, 1, L, 0, tmp, VOCAB);
  CHECK(st == MAMBART_INVALID_ARGUMENT && strstr(mambart_last_error(), "logits buffer"), "%s",
        mambart_last_error());
  CHECK(mambart_forward(s, ids, 2, L, 1, tmp, 2 * VOCAB) == MAMBART_INVALID_ARGUMENT, "batch mismatch");
  CHECK(mambart_forward(s, ids, 1, 0, 1, tmp, VOCAB) == MAMBART_INVALID_ARGUMENT, "empty");
  CHECK(mambart_forward(s, ids, 1, (int64_t)1 << 62, 0, tmp, VOCAB) == MAMBART_INVALID_ARGUMENT, "overflow");
  CHECK(mambart_generate(s, ids, L, &so, NULL, NULL, gen, NEW - 1, &n_out) == MAMBART_INVALID_ARGUMENT,
        "small out_tokens");
  so.top_p = 0.f;
  CHECK(mambart_generate(s, ids, L, &so, NULL, NULL, gen, NEW, &n_out) == MAMBART_INVALID_ARGUMENT, "top_p");
  so = mambart_sample_options_default();
  so.n_stop_tokens = 2;
  CHECK(mambart_generate(s, ids, L, &so, NULL, NULL, gen, 2 * NEW, &n_out) == MAMBART_INVALID_ARGUMENT,
        "NULL stop_tokens");
  CHECK(mambart_generate(s, ids, 0, NULL, NULL, NULL, NULL, 0, &n_out) == MAMBART_INVALID_ARGUMENT, "empty prompt");
  {
    mambart_state* z = NULL;
    CHECK(mambart_state_new(m, 0, &z) == MAMBART_INVALID_ARGUMENT && z == NULL, "batch 0");
    mambart_state_free(z);
  }

  /* Cancel: the next call stops with INTERRUPTED, the one after runs normally. */
  CHECK(mambart_state_cancel(s) == MAMBART_OK, "cancel");
  CHECK(mambart_forward(s, ids, 1, L, 1, tmp, VOCAB) == MAMBART_INTERRUPTED, "cancelled forward");
  mambart_state_reset(s);
  CHECK(mambart_forward(s, ids, 1, L, 1, tmp, VOCAB) == MAMBART_OK, "forward after cancel");
  CHECK(rel_err(tmp, all + (L - 1) * VOCAB, VOCAB) <= 1e-6f, "state unusable after cancel");

  /* A state outlives the model handle that made it. */
  mambart_state_free(s2);
  mambart_state_free(c);
  free(all);
  free(steps);
  mambart_state_free(s);
}

int main(int argc, char** argv) {
  char dir[512];
  mambart_model* m = NULL;
  mambart_config cfg;
  mambart_state* s = NULL;
  char expect_version[32];
  float logits[VOCAB];
  int32_t tok = 7;

  if (argc != 2) {
    fprintf(stderr, "usage: %s <scratch_dir>\n", argv[0]);
    return 2;
  }
  mkdir(argv[1], 0755);
  snprintf(dir, sizeof dir, "%s/model", argv[1]);
  if (!write_model(dir)) {
    fprintf(stderr, "cannot write the model under %s\n", dir);
    return 2;
  }
  snprintf(expect_version, sizeof expect_version, "%d.%d.%d", MAMBART_VERSION_MAJOR, MAMBART_VERSION_MINOR,
           MAMBART_VERSION_PATCH);
  CHECK(strcmp(mambart_version(), expect_version) == 0, "version %s", mambart_version());

  test_errors_without_model(dir);
  test_truncated(dir, argv[1]);

  CHECK(mambart_model_load(dir, NULL, &m) == MAMBART_OK, "%s", mambart_last_error());
  if (m) {
    CHECK(mambart_model_config(m, &cfg) == MAMBART_OK, "config");
    CHECK(cfg.d_model == D_MODEL && cfg.n_layer == N_LAYER && cfg.vocab_size == VOCAB && cfg.d_state == D_STATE &&
              cfg.d_conv == D_CONV && cfg.d_inner == D_INNER && cfg.dt_rank == DT_RANK && cfg.eos_token_id == EOS,
          "config values");
    CHECK(mambart_model_config(m, NULL) == MAMBART_INVALID_ARGUMENT, "NULL config");
    test_compute(m);
    /* The state keeps the model alive after mambart_model_free. */
    CHECK(mambart_state_new(m, 1, &s) == MAMBART_OK, "state");
    mambart_model_free(m);
    CHECK(mambart_step(s, &tok, logits, VOCAB) == MAMBART_OK, "step after model free: %s", mambart_last_error());
    mambart_state_free(s);
  }
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
