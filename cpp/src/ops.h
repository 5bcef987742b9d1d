// Op parameter structs shared by every backend (ref, cpu, cuda). Kernels see sizes, strides (in elements)
// and pointers, never framework objects. Pointers are backend memory (host for ref/cpu, device for cuda).
// Conventions: tokens are rows; a (batch, seqlen, features) activation has element (b, t, f) at
// ptr + b*batch_stride + t*token_stride + f. The residual stream, the recurrent state and every
// SSM parameter (A, D, dt_bias, conv weight/bias, norm weight/bias) are fp32; activations are `act_dtype`
// (fp32 on the CPU, the weight dtype on CUDA); weights of the projections are stored dtype.
#pragma once
#include <cstdint>

#include "dtype.h"

namespace mambart {

// out[t, :] = table[ids[t], :]   (T, d_model) fp32. ids are validated by the caller.
struct EmbedParams {
  int64_t n_tokens = 0, d_model = 0;
  const int32_t* ids = nullptr;  // (T,) backend memory
  const void* table = nullptr;   // (vocab_size, d_model) table_dtype
  DType table_dtype = DType::F32;
  float* out = nullptr;          // (T, d_model) fp32 residual stream
};

// residual += delta (when delta != nullptr); out = norm(residual) * weight (+ bias)
//   RMSNorm:   residual * rsqrt(mean(residual^2) + eps) * weight
//   LayerNorm: (residual - mean) * rsqrt(var + eps) * weight + bias
struct AddNormParams {
  int64_t n_rows = 0, dim = 0;
  float* residual = nullptr;       // (rows, dim) fp32, in/out
  const void* delta = nullptr;     // (rows, dim) act_dtype or nullptr
  const float* weight = nullptr;   // (dim,)
  const float* bias = nullptr;     // (dim,) LayerNorm only, may be nullptr
  bool rms = true;
  float eps = 1e-5f;
  void* out = nullptr;             // (rows, dim) act_dtype
  DType act_dtype = DType::F32;
};

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]); accumulation in fp32.
struct MatmulParams {
  int64_t M = 0, N = 0, K = 0;
  const void* x = nullptr;  // (M, K) act_dtype, row stride ldx
  int64_t ldx = 0;
  const void* w = nullptr;  // (N, K) w_dtype, contiguous
  DType w_dtype = DType::F32;
  const float* bias = nullptr;  // (N,) or nullptr
  void* y = nullptr;        // (M, N) y_dtype, row stride ldy
  int64_t ldy = 0;
  DType act_dtype = DType::F32;  // dtype of x
  DType y_dtype = DType::F32;    // act_dtype, or F32 for logits
};

// Causal depthwise conv over each sequence, continuing from conv_state, then SiLU:
//   window_t = [last d_conv-1 inputs before t, x_t];  out_t = silu(sum_k w[c, k] * window_t[k] + bias[c])
// conv_state (batch, d_inner, d_conv) holds the last d_conv inputs, newest at index d_conv-1; it is
// updated to the state after the last token (HF cache_params.conv_states layout).
struct Conv1dParams {
  int64_t batch = 0, seqlen = 0, d_inner = 0, d_conv = 0;
  const void* x = nullptr;  // (batch, seqlen, d_inner) act_dtype
  int64_t x_batch_stride = 0, x_token_stride = 0;
  float* conv_state = nullptr;    // (batch, d_inner, d_conv) fp32, in/out
  const float* weight = nullptr;  // (d_inner, d_conv)
  const float* bias = nullptr;    // (d_inner,) or nullptr
  void* out = nullptr;      // (batch, seqlen, d_inner) act_dtype
  int64_t out_batch_stride = 0, out_token_stride = 0;
  DType act_dtype = DType::F32;
};

// Selective scan over each sequence, continuing from ssm_state:
//   delta = softplus(dt + dt_bias)                         (d_inner)
//   h = exp(delta * A) * h + delta * B_t * x_t             (d_inner, d_state)
//   y_t = (h @ C_t + D * x_t) * silu(z_t)                  (d_inner)
// softplus(v) = v > 20 ? v : log1p(exp(v)) (torch's threshold).
struct ScanParams {
  int64_t batch = 0, seqlen = 0, d_inner = 0, d_state = 0;
  const void* x = nullptr;   int64_t x_batch_stride = 0, x_token_stride = 0;    // (b, t, d_inner)
  const void* dt = nullptr;  int64_t dt_batch_stride = 0, dt_token_stride = 0;  // (b, t, d_inner) before bias
  const void* B = nullptr;   int64_t B_batch_stride = 0, B_token_stride = 0;    // (b, t, d_state)
  const void* C = nullptr;   int64_t C_batch_stride = 0, C_token_stride = 0;    // (b, t, d_state)
  const void* z = nullptr;   int64_t z_batch_stride = 0, z_token_stride = 0;    // (b, t, d_inner) or nullptr
  const float* A = nullptr;        // (d_inner, d_state) = -exp(A_log)
  const float* D = nullptr;        // (d_inner,) or nullptr
  const float* dt_bias = nullptr;  // (d_inner,) or nullptr
  float* ssm_state = nullptr;      // (batch, d_inner, d_state) fp32, in/out
  void* y = nullptr;         int64_t y_batch_stride = 0, y_token_stride = 0;    // (b, t, d_inner)
  DType act_dtype = DType::F32;    // dtype of x, dt, B, C, z, y
};

// Picks one token per row from fp32 logits (rows, vocab) with the generation controls below, in this order
// (HF semantics): repetition_penalty over `history` -> temperature -> top_k -> top_p -> min_p -> draw.
// temperature == 0 is greedy (argmax, lowest index on ties; penalty still applies).
// The draw for row r at step `step` uses the counter-based RNG stream (seed, r, step), so the same seed
// gives the same tokens on the same backend.
struct SampleParams {
  int64_t rows = 0, vocab = 0;
  const float* logits = nullptr;  int64_t ld_logits = 0;  // (rows, vocab), may be modified in place
  float temperature = 0.f;
  int64_t top_k = 0;              // 0: off
  float top_p = 1.f;              // 1: off
  float min_p = 0.f;              // 0: off
  float repetition_penalty = 1.f; // 1: off
  const int32_t* history = nullptr;  // (rows, ld_history) token ids seen so far (prompt + generated)
  int64_t ld_history = 0;
  const int64_t* history_len = nullptr;  // (rows,)
  uint64_t seed = 0;
  uint64_t step = 0;
  int32_t* out = nullptr;         // (rows,) backend memory
  // Backend::sample_step only: (1,) backend memory; the draw uses step = *step_counter, then increments it,
  // so a recorded (graph-replayed) decode step samples with a fresh step each time.
  uint64_t* step_counter = nullptr;
};

// One Mamba layer for one new token per row (decode, seqlen == 1); the residual stream is updated in place:
//   normed = norm(residual) * norm_w (+ norm_b)                    (batch, d_model)
//   xz = in_proj(normed)                                            (batch, 2 * d_inner): x | z
//   xc = silu(conv_step(x, conv_state))                             (batch, d_inner)
//   xdbl = x_proj(xc);  dt = dt_proj(xdbl[:, :dt_rank])             (batch, dt_rank + 2 * d_state), (batch, d_inner)
//   y = scan_step(xc, dt, B, C, z, ssm_state)                       (batch, d_inner)
//   residual += out_proj(y)                                         (batch, d_model)
// Backend::decode_layer composes the ops above (each intermediate rounded to act_dtype, as in prefill) through
// the scratch buffers; fused implementations may skip the scratch (their contents are then unspecified).
struct DecodeLayerParams {
  int64_t batch = 0, d_model = 0, d_inner = 0, d_state = 0, dt_rank = 0, d_conv = 0;
  bool rms = true;
  float eps = 1e-5f;
  float* residual = nullptr;          // (batch, d_model) fp32, in/out
  const float* norm_w = nullptr;      // (d_model,)
  const float* norm_b = nullptr;      // (d_model,) LayerNorm only, may be nullptr
  const void* in_proj_w = nullptr;    // (2 * d_inner, d_model) w_dtype
  const float* in_proj_b = nullptr;   // (2 * d_inner,) or nullptr
  const float* conv_w = nullptr;      // (d_inner, d_conv)
  const float* conv_b = nullptr;      // (d_inner,) or nullptr
  const void* x_proj_w = nullptr;     // (dt_rank + 2 * d_state, d_inner) w_dtype
  const void* dt_proj_w = nullptr;    // (d_inner, dt_rank) w_dtype
  const float* dt_bias = nullptr;     // (d_inner,) or nullptr
  const float* A = nullptr;           // (d_inner, d_state) = -exp(A_log)
  const float* D = nullptr;           // (d_inner,) or nullptr
  const void* out_proj_w = nullptr;   // (d_model, d_inner) w_dtype
  const float* out_proj_b = nullptr;  // (d_model,) or nullptr
  DType w_dtype = DType::F32;         // dtype of the four projections
  DType act_dtype = DType::F32;
  float* conv_state = nullptr;        // (batch, d_inner, d_conv) fp32, in/out
  float* ssm_state = nullptr;         // (batch, d_inner, d_state) fp32, in/out
  // Scratch, act_dtype, contiguous rows.
  void* normed = nullptr;             // (batch, d_model)
  void* xz = nullptr;                 // (batch, 2 * d_inner)
  void* xc = nullptr;                 // (batch, d_inner)
  void* xdbl = nullptr;               // (batch, dt_rank + 2 * d_state)
  void* dt = nullptr;                 // (batch, d_inner)
  void* y = nullptr;                  // (batch, d_inner)
  void* delta = nullptr;              // (batch, d_model)
};

// Counter-based RNG shared by every backend: uniform in [0, 1) from (seed, row, step).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline double rng_uniform(uint64_t seed, uint64_t row, uint64_t step) {
  uint64_t h = splitmix64(seed ^ splitmix64(row * 0x632be59bd9b4e019ull ^ splitmix64(step)));
  return double(h >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace mambart
