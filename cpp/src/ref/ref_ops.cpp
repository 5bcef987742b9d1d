// Scalar reference ops (see ops.h for the math of each). Clarity over speed: these define correctness.
#include "ref/ref_ops.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "error.h"
#include "sampling.h"

namespace mambart {
namespace ref {

float load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: throw InvalidArgument(detail::cat("unsupported dtype ", dtype_name(t)));
  }
}

void store(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = v; break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); break;
    default: throw InvalidArgument(detail::cat("unsupported dtype ", dtype_name(t)));
  }
}

void embed(const EmbedParams& p) {
  // out[t, :] = table[ids[t], :]
  for (int64_t t = 0; t < p.n_tokens; ++t)
    for (int64_t c = 0; c < p.d_model; ++c)
      p.out[t * p.d_model + c] = load(p.table, p.table_dtype, int64_t(p.ids[t]) * p.d_model + c);
}

void add_norm(const AddNormParams& p) {
  for (int64_t r = 0; r < p.n_rows; ++r) {
    float* res = p.residual + r * p.dim;
    // residual = residual + hidden_states
    if (p.delta)
      for (int64_t c = 0; c < p.dim; ++c) res[c] += load(p.delta, p.act_dtype, r * p.dim + c);
    double mean = 0, sq = 0;
    for (int64_t c = 0; c < p.dim; ++c) {
      mean += res[c];
      sq += double(res[c]) * res[c];
    }
    mean /= double(p.dim);
    sq /= double(p.dim);
    if (p.rms) {
      // hidden * rsqrt(mean(hidden^2) + eps) * weight
      float inv = float(1.0 / std::sqrt(sq + p.eps));
      for (int64_t c = 0; c < p.dim; ++c) store(p.out, p.act_dtype, r * p.dim + c, res[c] * inv * p.weight[c]);
    } else {
      // (hidden - mean) * rsqrt(var + eps) * weight + bias
      double var = 0;
      for (int64_t c = 0; c < p.dim; ++c) var += (res[c] - mean) * (res[c] - mean);
      var /= double(p.dim);
      float inv = float(1.0 / std::sqrt(var + p.eps));
      for (int64_t c = 0; c < p.dim; ++c) {
        float v = float(res[c] - mean) * inv * p.weight[c] + (p.bias ? p.bias[c] : 0.f);
        store(p.out, p.act_dtype, r * p.dim + c, v);
      }
    }
  }
}

void matmul(const MatmulParams& p) {
  // y = x @ w.T + bias
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = 0; n < p.N; ++n) {
      float acc = 0.f;
      for (int64_t k = 0; k < p.K; ++k)
        acc += load(p.x, p.act_dtype, m * p.ldx + k) * load(p.w, p.w_dtype, n * p.K + k);
      if (p.bias) acc += p.bias[n];
      store(p.y, p.y_dtype, m * p.ldy + n, acc);
    }
}

void conv1d(const Conv1dParams& p) {
  const int64_t W = p.d_conv;
  std::vector<float> window(W);
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t c = 0; c < p.d_inner; ++c) {
      float* st = p.conv_state + (b * p.d_inner + c) * W;  // last d_conv inputs, newest last
      for (int64_t t = 0; t < p.seqlen; ++t) {
        // conv_state = roll(conv_state, -1); conv_state[:, :, -1] = x_t
        for (int64_t k = 0; k + 1 < W; ++k) st[k] = st[k + 1];
        st[W - 1] = load(p.x, p.act_dtype, b * p.x_batch_stride + t * p.x_token_stride + c);
        // out_t = silu(sum(conv_state * weight) + bias)
        float acc = p.bias ? p.bias[c] : 0.f;
        for (int64_t k = 0; k < W; ++k) acc += st[k] * p.weight[c * W + k];
        store(p.out, p.act_dtype, b * p.out_batch_stride + t * p.out_token_stride + c, silu(acc));
      }
    }
}

void scan(const ScanParams& p) {
  const DType T = p.act_dtype;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t d = 0; d < p.d_inner; ++d) {
      float* h = p.ssm_state + (b * p.d_inner + d) * p.d_state;  // (d_state,)
      for (int64_t t = 0; t < p.seqlen; ++t) {
        float x = load(p.x, T, b * p.x_batch_stride + t * p.x_token_stride + d);
        // delta = softplus(dt + dt_bias)
        float delta = load(p.dt, T, b * p.dt_batch_stride + t * p.dt_token_stride + d);
        if (p.dt_bias) delta += p.dt_bias[d];
        delta = softplus(delta);
        float y = 0.f;
        for (int64_t n = 0; n < p.d_state; ++n) {
          float Bn = load(p.B, T, b * p.B_batch_stride + t * p.B_token_stride + n);
          float Cn = load(p.C, T, b * p.C_batch_stride + t * p.C_token_stride + n);
          // h = exp(delta * A) * h + delta * B * x
          h[n] = std::exp(delta * p.A[d * p.d_state + n]) * h[n] + delta * Bn * x;
          // y = h @ C
          y += h[n] * Cn;
        }
        // y = (y + D * x) * silu(z)
        if (p.D) y += p.D[d] * x;
        if (p.z) y *= silu(load(p.z, T, b * p.z_batch_stride + t * p.z_token_stride + d));
        store(p.y, T, b * p.y_batch_stride + t * p.y_token_stride + d, y);
      }
    }
}

void sample(const SampleParams& p) {
  std::vector<float> logit(p.vocab);
  std::vector<int32_t> idx(p.vocab);
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* src = p.logits + r * p.ld_logits;
    for (int64_t v = 0; v < p.vocab; ++v) logit[v] = src[v];
    // repetition penalty (HF): seen tokens' logits divided by the penalty when positive, multiplied when negative
    if (p.repetition_penalty != 1.f && p.history) {
      std::vector<char> seen(p.vocab, 0);
      for (int64_t i = 0; i < p.history_len[r]; ++i) {
        int32_t id = p.history[r * p.ld_history + i];
        if (id >= 0 && id < p.vocab) seen[id] = 1;
      }
      for (int64_t v = 0; v < p.vocab; ++v)
        if (seen[v]) logit[v] = logit[v] > 0 ? logit[v] / p.repetition_penalty : logit[v] * p.repetition_penalty;
    }
    if (p.temperature <= 0.f) {  // greedy: first maximum
      int64_t best = 0;
      for (int64_t v = 1; v < p.vocab; ++v)
        if (logit[v] > logit[best]) best = v;
      p.out[r] = int32_t(best);
      continue;
    }
    for (int64_t v = 0; v < p.vocab; ++v) logit[v] /= p.temperature;
    // candidates sorted by logit descending, ties by index ascending
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logit[a] > logit[b]; });
    int64_t n = p.vocab;
    if (p.top_k > 0 && p.top_k < n) n = p.top_k;
    // softmax over the kept candidates (in double)
    std::vector<double> prob(n);
    double mx = logit[idx[0]], sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += prob[i] = std::exp(double(logit[idx[i]]) - mx);
    for (int64_t i = 0; i < n; ++i) prob[i] /= sum;
    const int64_t pick = pick_candidate(prob, n, p.top_p, p.min_p, rng_uniform(p.seed, uint64_t(r), p.step));
    p.out[r] = idx[size_t(pick)];
  }
}

}  // namespace ref
}  // namespace mambart
