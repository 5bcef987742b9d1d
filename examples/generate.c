/* Greedy generation with the mambart C API.
 *
 *   mambart_generate <model_dir> <n_new_tokens> <id> [<id> ...]
 *
 * Loads the model folder, feeds the prompt ids and prints up to n_new_tokens generated ids, space-separated,
 * as they are produced (stops early at the model's eos token, like mambart.Session.generate).
 * Exit status: 0 on success, 1 on a mambart error (message on stderr), 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <mambart/mambart.h>

static int print_token(const int32_t* tokens, int64_t batch, void* user) {
  int64_t* count = (int64_t*)user;
  (void)batch;
  printf(*count ? " %d" : "%d", (int)tokens[0]);
  fflush(stdout);
  ++*count;
  return 1; /* keep going */
}

static int parse_long(const char* s, long* out) {
  char* end;
  errno = 0;
  *out = strtol(s, &end, 10);
  return errno == 0 && end != s && *end == '\0';
}

static int report(mambart_status st, const char* what) {
  fprintf(stderr, "error: %s failed: %s: %s\n", what, mambart_status_name(st), mambart_last_error());
  return 1;
}

int main(int argc, char** argv) {
  mambart_model* model = NULL;
  mambart_state* state = NULL;
  mambart_sample_options so;
  mambart_status st;
  int32_t* prompt;
  long n_new, v;
  int64_t n_prompt, i, printed = 0, n_out = 0;
  int rc = 0;

  if (argc < 4 || !parse_long(argv[2], &n_new) || n_new < 0) {
    fprintf(stderr, "usage: %s <model_dir> <n_new_tokens> <id> [<id> ...]   (mambart %s)\n", argv[0],
            mambart_version());
    return 2;
  }
  n_prompt = argc - 3;
  prompt = (int32_t*)malloc((size_t)n_prompt * sizeof(int32_t));
  if (!prompt) return 1;
  for (i = 0; i < n_prompt; ++i) {
    if (!parse_long(argv[3 + i], &v) || v < INT32_MIN || v > INT32_MAX) {
      fprintf(stderr, "error: '%s' is not a token id\n", argv[3 + i]);
      free(prompt);
      return 2;
    }
    prompt[i] = (int32_t)v;
  }

  st = mambart_model_load(argv[1], NULL, &model);
  if (st != MAMBART_OK) {
    rc = report(st, "loading the model");
    goto done;
  }
  st = mambart_state_new(model, 1, &state);
  if (st != MAMBART_OK) {
    rc = report(st, "creating a state");
    goto done;
  }
  so = mambart_sample_options_default();
  so.max_new_tokens = n_new; /* temperature 0: greedy */
  st = mambart_generate(state, prompt, n_prompt, &so, print_token, &printed, NULL, 0, &n_out);
  printf("\n");
  if (st != MAMBART_OK) rc = report(st, "generating");

done:
  mambart_state_free(state);
  mambart_model_free(model);
  free(prompt);
  return rc;
}
