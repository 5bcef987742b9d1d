// The layer orchestration, written once against the Backend interface (ops.h). One chunk of tokens:
//   resid = embed(ids)                                        (T, d_model) fp32, T = batch * chunk_len
//   for each layer:
//     normed = norm(resid += delta)                           (T, d_model)
//     xz = in_proj(normed)                                    (T, 2 * d_inner): x | z
//     xc = silu(conv1d(x, conv_state))                        (T, d_inner)
//     xdbl = x_proj(xc)                                       (T, dt_rank + 2 * d_state): dt | B | C
//     dt = dt_proj(xdbl[:, :dt_rank])                         (T, d_inner), bias added in the scan
//     y = scan(xc, dt, B, C, z, ssm_state)                    (T, d_inner)
//     delta = out_proj(y)                                     (T, d_model)
//   normed = norm_f(resid += delta); logits = lm_head(normed) (rows asked for, vocab_size)
#include "session.h"

#include <algorithm>
#include <cstring>

#include "error.h"

namespace mambart {

// ---- State ---------------------------------------------------------------------------------------------

State::State(std::shared_ptr<const Model> model, int64_t batch) : model_(std::move(model)), batch_(batch) {
  MAMBART_CHECK(batch >= 1 && batch <= (int64_t(1) << 20), InvalidArgument, "batch_size must be in [1, 2^20], got ",
                batch);
  Backend* be = &model_->backend();
  conv_ = Buffer(be, conv_elems() * sizeof(float));
  ssm_ = Buffer(be, ssm_elems() * sizeof(float));
  reset();
}

State::~State() { model_->backend().forget_recorded(this); }

size_t State::conv_elems() const {
  const auto& c = model_->config();
  return size_t(c.n_layer * batch_ * c.d_inner * c.d_conv);
}
size_t State::ssm_elems() const {
  const auto& c = model_->config();
  return size_t(c.n_layer * batch_ * c.d_inner * c.d_state);
}
float* State::conv(int64_t layer, int64_t row) const {
  const auto& c = model_->config();
  return conv_.as<float>() + (layer * batch_ + row) * c.d_inner * c.d_conv;
}
float* State::ssm(int64_t layer, int64_t row) const {
  const auto& c = model_->config();
  return ssm_.as<float>() + (layer * batch_ + row) * c.d_inner * c.d_state;
}

void State::reset() {
  model_->backend().fill_zero(conv_.get(), conv_.bytes());
  model_->backend().fill_zero(ssm_.get(), ssm_.bytes());
  n_tokens = 0;
}

std::unique_ptr<State> State::copy() const {
  auto s = std::make_unique<State>(model_, batch_);
  model_->backend().copy(s->conv_.get(), conv_.get(), conv_.bytes());
  model_->backend().copy(s->ssm_.get(), ssm_.get(), ssm_.bytes());
  s->n_tokens = n_tokens;
  return s;
}

void State::copy_rows_from(const State& src, int64_t src_row, int64_t dst_row, int64_t n) {
  MAMBART_CHECK(&src.model() == &model(), InvalidArgument, "states belong to different models");
  MAMBART_CHECK(src_row >= 0 && n >= 0 && src_row + n <= src.batch_ && dst_row >= 0 && dst_row + n <= batch_,
                InvalidArgument, "row range out of bounds");
  const auto& c = model_->config();
  for (int64_t l = 0; l < c.n_layer; ++l) {
    model_->backend().copy(conv(l, dst_row), src.conv(l, src_row), size_t(n * c.d_inner * c.d_conv) * 4);
    model_->backend().copy(ssm(l, dst_row), src.ssm(l, src_row), size_t(n * c.d_inner * c.d_state) * 4);
  }
}

void State::download(float* conv_host, float* ssm_host) const {
  if (conv_host) model_->backend().copy_to_host(conv_host, conv_.get(), conv_.bytes());
  if (ssm_host) model_->backend().copy_to_host(ssm_host, ssm_.get(), ssm_.bytes());
}

void State::upload(const float* conv_host, const float* ssm_host) {
  model_->backend().copy_from_host(conv_.get(), conv_host, conv_.bytes());
  model_->backend().copy_from_host(ssm_.get(), ssm_host, ssm_.bytes());
}

// ---- the layer stack -----------------------------------------------------------------------------------

namespace {

// Grows the state's workspace to hold `rows` tokens and `logit_rows` rows of logits. Growing drops any
// recorded launches of this state (their pointers would dangle).
Workspace& ensure_workspace(State& st, int64_t rows, int64_t logit_rows) {
  Workspace& ws = st.workspace();
  if (ws.rows >= rows && ws.logit_rows >= logit_rows) return ws;
  const Model& m = st.model();
  Backend* be = &m.backend();
  be->synchronize();
  be->forget_recorded(&st);
  const auto& c = m.config();
  rows = std::max(rows, ws.rows);
  logit_rows = std::max(logit_rows, ws.logit_rows);
  const size_t a = dtype_size(m.act_dtype());
  const size_t r = size_t(rows);
  ws = Workspace();
  ws.resid = Buffer(be, r * c.d_model * 4);
  ws.normed = Buffer(be, r * c.d_model * a);
  ws.xz = Buffer(be, r * 2 * c.d_inner * a);
  ws.xc = Buffer(be, r * c.d_inner * a);
  ws.xdbl = Buffer(be, r * (c.dt_rank + 2 * c.d_state) * a);
  ws.dt = Buffer(be, r * c.d_inner * a);
  ws.y = Buffer(be, r * c.d_inner * a);
  ws.delta = Buffer(be, r * c.d_model * a);
  ws.ids = Buffer(be, r * 4);
  ws.logits = Buffer(be, size_t(logit_rows) * c.vocab_size * 4);
  ws.sampled = Buffer(be, 8 + size_t(std::max<int64_t>(logit_rows, 1)) * 4);  // step counter, then the ids
  ws.rows = rows;
  ws.logit_rows = logit_rows;
  return ws;
}

// ws.sampled holds the decode step counter (uint64, for Backend::sample_step) followed by the sampled ids.
uint64_t* step_counter(Workspace& ws) { return ws.sampled.as<uint64_t>(); }
int32_t* sampled_ids(Workspace& ws) { return reinterpret_cast<int32_t*>(ws.sampled.as<char>() + 8); }

// Runs the layers over ws.resid (batch rows of seqlen tokens, already embedded) on state rows
// [row0, row0 + batch); leaves the final-norm output in ws.normed. `interrupted` (may be null) is polled
// before every layer but the first: a 1024-token chunk of a real model takes seconds on a CPU, one layer of
// it a small fraction of that.
void run_layers(State& st, Workspace& ws, int64_t row0, int64_t batch, int64_t seqlen,
                const std::function<bool()>* interrupted = nullptr) {
  const Model& m = st.model();
  const ModelConfig& c = m.config();
  Backend& be = m.backend();
  const DType act = m.act_dtype();
  const int64_t T = batch * seqlen, d = c.d_model, di = c.d_inner, ds = c.d_state, r = c.dt_rank;
  const int64_t nx = r + 2 * ds;
  const size_t a = dtype_size(act);
  auto at = [a](const Buffer& b, int64_t elems) { return static_cast<char*>(b.get()) + elems * int64_t(a); };

  auto matmul = [&](const void* x, int64_t ldx, const Weight& w, const Weight& bias, void* y, int64_t N,
                    int64_t K) {
    MatmulParams p;
    p.M = T; p.N = N; p.K = K;
    p.x = x; p.ldx = ldx; p.w = w.data; p.w_dtype = w.dtype;
    p.bias = static_cast<const float*>(bias.data);
    p.y = y; p.ldy = N; p.act_dtype = act; p.y_dtype = act;
    be.matmul(p);
  };

  // Decode (seqlen 1) with the four projections of every layer in one dtype: all layers through one
  // decode_layers call (the residual is updated in place; a backend may run them as one persistent kernel).
  auto decode_params = [&](int64_t l) {
    const LayerWeights& w = m.layers()[size_t(l)];
    DecodeLayerParams dp;
    dp.batch = batch; dp.d_model = d; dp.d_inner = di; dp.d_state = ds; dp.dt_rank = r; dp.d_conv = c.d_conv;
    dp.rms = c.rms_norm; dp.eps = float(c.norm_eps); dp.residual = ws.resid.as<float>();
    dp.norm_w = static_cast<const float*>(w.norm_w.data); dp.norm_b = static_cast<const float*>(w.norm_b.data);
    dp.in_proj_w = w.in_proj_w.data; dp.in_proj_b = static_cast<const float*>(w.in_proj_b.data);
    dp.conv_w = static_cast<const float*>(w.conv_w.data); dp.conv_b = static_cast<const float*>(w.conv_b.data);
    dp.x_proj_w = w.x_proj_w.data; dp.dt_proj_w = w.dt_proj_w.data;
    dp.dt_bias = static_cast<const float*>(w.dt_proj_b.data);
    dp.A = static_cast<const float*>(w.A.data); dp.D = static_cast<const float*>(w.D.data);
    dp.out_proj_w = w.out_proj_w.data; dp.out_proj_b = static_cast<const float*>(w.out_proj_b.data);
    dp.w_dtype = w.in_proj_w.dtype; dp.act_dtype = act;
    dp.conv_state = st.conv(l, row0); dp.ssm_state = st.ssm(l, row0);
    dp.normed = ws.normed.get(); dp.xz = ws.xz.get(); dp.xc = ws.xc.get(); dp.xdbl = ws.xdbl.get();
    dp.dt = ws.dt.get(); dp.y = ws.y.get(); dp.delta = ws.delta.get();
    return dp;
  };
  bool one_dtype = true;
  for (const LayerWeights& w : m.layers())
    one_dtype = one_dtype && w.x_proj_w.dtype == w.in_proj_w.dtype && w.dt_proj_w.dtype == w.in_proj_w.dtype &&
                w.out_proj_w.dtype == w.in_proj_w.dtype;
  bool pending = false;  // ws.delta holds an out_proj result not yet added to the residual
  const bool decode = seqlen == 1 && one_dtype;
  if (decode) {
    std::vector<DecodeLayerParams> layers(size_t(c.n_layer));
    for (int64_t l = 0; l < c.n_layer; ++l) layers[size_t(l)] = decode_params(l);
    be.decode_layers(layers.data(), c.n_layer);
  }
  for (int64_t l = 0; l < (decode ? 0 : c.n_layer); ++l) {
    if (l > 0 && interrupted && *interrupted && (*interrupted)()) throw Interrupted("interrupted");
    const LayerWeights& w = m.layers()[size_t(l)];
    AddNormParams np;
    np.n_rows = T; np.dim = d; np.residual = ws.resid.as<float>();
    np.delta = pending ? ws.delta.get() : nullptr;
    np.weight = static_cast<const float*>(w.norm_w.data);
    np.bias = static_cast<const float*>(w.norm_b.data);
    np.rms = c.rms_norm; np.eps = float(c.norm_eps);
    np.out = ws.normed.get(); np.act_dtype = act;
    be.add_norm(np);

    // xz = in_proj(normed)   (T, 2 * d_inner)
    matmul(ws.normed.get(), d, w.in_proj_w, w.in_proj_b, ws.xz.get(), 2 * di, d);

    // xc = silu(conv1d(x))   (T, d_inner)
    Conv1dParams cp;
    cp.batch = batch; cp.seqlen = seqlen; cp.d_inner = di; cp.d_conv = c.d_conv;
    cp.x = ws.xz.get(); cp.x_batch_stride = seqlen * 2 * di; cp.x_token_stride = 2 * di;
    cp.conv_state = st.conv(l, row0);
    cp.weight = static_cast<const float*>(w.conv_w.data);
    cp.bias = static_cast<const float*>(w.conv_b.data);
    cp.out = ws.xc.get(); cp.out_batch_stride = seqlen * di; cp.out_token_stride = di;
    cp.act_dtype = act;
    be.conv1d(cp);

    // xdbl = x_proj(xc)   (T, dt_rank + 2 * d_state);  dt = dt_proj(xdbl[:, :dt_rank])   (T, d_inner)
    matmul(ws.xc.get(), di, w.x_proj_w, Weight{}, ws.xdbl.get(), nx, di);
    matmul(ws.xdbl.get(), nx, w.dt_proj_w, Weight{}, ws.dt.get(), di, r);

    // y = scan(xc, dt, B, C, z)   (T, d_inner)
    ScanParams sp;
    sp.batch = batch; sp.seqlen = seqlen; sp.d_inner = di; sp.d_state = ds;
    sp.x = ws.xc.get(); sp.x_batch_stride = seqlen * di; sp.x_token_stride = di;
    sp.dt = ws.dt.get(); sp.dt_batch_stride = seqlen * di; sp.dt_token_stride = di;
    sp.B = at(ws.xdbl, r); sp.B_batch_stride = seqlen * nx; sp.B_token_stride = nx;
    sp.C = at(ws.xdbl, r + ds); sp.C_batch_stride = seqlen * nx; sp.C_token_stride = nx;
    sp.z = at(ws.xz, di); sp.z_batch_stride = seqlen * 2 * di; sp.z_token_stride = 2 * di;
    sp.A = static_cast<const float*>(w.A.data);
    sp.D = static_cast<const float*>(w.D.data);
    sp.dt_bias = static_cast<const float*>(w.dt_proj_b.data);
    sp.ssm_state = st.ssm(l, row0);
    sp.y = ws.y.get(); sp.y_batch_stride = seqlen * di; sp.y_token_stride = di;
    sp.act_dtype = act;
    be.scan(sp);

    // delta = out_proj(y)   (T, d_model)
    matmul(ws.y.get(), di, w.out_proj_w, w.out_proj_b, ws.delta.get(), d, di);
    pending = true;
  }
  AddNormParams np;
  np.n_rows = T; np.dim = d; np.residual = ws.resid.as<float>();
  np.delta = pending ? ws.delta.get() : nullptr;
  np.weight = static_cast<const float*>(m.norm_f_w().data);
  np.bias = static_cast<const float*>(m.norm_f_b().data);
  np.rms = c.rms_norm; np.eps = float(c.norm_eps);
  np.out = ws.normed.get(); np.act_dtype = act;
  be.add_norm(np);
}

// logits (M, vocab) fp32 = lm_head(x) for M rows of final-norm output x (row stride ldx).
void lm_head(const Model& m, const void* x, int64_t ldx, int64_t M, float* logits) {
  MatmulParams p;
  p.M = M; p.N = m.config().vocab_size; p.K = m.config().d_model;
  p.x = x; p.ldx = ldx; p.w = m.lm_head().data; p.w_dtype = m.lm_head().dtype;
  p.y = logits; p.ldy = p.N; p.act_dtype = m.act_dtype(); p.y_dtype = DType::F32;
  m.backend().matmul(p);
}

// Copies rows of an act-dtype backend matrix to host fp32.
void download_f32(const Model& m, const void* src, int64_t ld, int64_t rows, int64_t cols, float* dst,
                  int64_t ld_dst) {
  const DType act = m.act_dtype();
  const size_t a = dtype_size(act);
  std::vector<char> tmp(size_t(cols) * a);
  for (int64_t i = 0; i < rows; ++i) {
    m.backend().copy_to_host(tmp.data(), static_cast<const char*>(src) + i * ld * int64_t(a), tmp.size());
    to_f32(act, tmp.data(), dst + i * ld_dst, size_t(cols));
  }
}

void check_ids(const ModelConfig& c, const int32_t* ids, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    MAMBART_CHECK(ids[i] >= 0 && ids[i] < c.vocab_size, InvalidArgument, "token id ", ids[i], " at position ", i,
                  " is out of range [0, ", c.vocab_size, ")");
}

// Calls sink(ws, t0, chunk_len, last) after the layers ran on each chunk of the prompt.
template <typename Sink>
void run_chunks(State& st, int64_t row0, const int32_t* ids, const float* embeds, int64_t batch, int64_t seqlen,
                int64_t logit_rows, const std::function<bool()>& interrupted, Sink&& sink) {
  const Model& m = st.model();
  const ModelConfig& c = m.config();
  Backend& be = m.backend();
  MAMBART_CHECK(batch >= 1 && seqlen >= 1, InvalidArgument, "empty input: batch ", batch, ", length ", seqlen);
  MAMBART_CHECK(row0 >= 0 && row0 + batch <= st.batch(), InvalidArgument, "input has ", batch,
                " rows but the state holds ", st.batch() - row0);
  MAMBART_CHECK(ids || embeds, InvalidArgument, "no input ids or embeddings");
  if (ids) check_ids(c, ids, batch * seqlen);
  const int64_t chunk = std::max<int64_t>(1, std::min(seqlen, be.chunk_tokens() / batch));
  Workspace& ws = ensure_workspace(st, batch * chunk, logit_rows);
  std::vector<int32_t> ids_chunk;
  std::vector<float> emb_chunk;
  for (int64_t t0 = 0; t0 < seqlen; t0 += chunk) {
    if (interrupted && interrupted()) throw Interrupted("interrupted");
    const int64_t L = std::min(chunk, seqlen - t0), T = batch * L;
    if (ids) {
      ids_chunk.resize(size_t(T));
      for (int64_t b = 0; b < batch; ++b)
        std::memcpy(&ids_chunk[size_t(b * L)], ids + b * seqlen + t0, size_t(L) * 4);
      be.copy_from_host(ws.ids.get(), ids_chunk.data(), size_t(T) * 4);
      EmbedParams ep;
      ep.n_tokens = T; ep.d_model = c.d_model; ep.ids = ws.ids.as<int32_t>();
      ep.table = m.embedding().data; ep.table_dtype = m.embedding().dtype; ep.out = ws.resid.as<float>();
      be.embed(ep);
    } else {
      emb_chunk.resize(size_t(T * c.d_model));
      for (int64_t b = 0; b < batch; ++b)
        std::memcpy(&emb_chunk[size_t(b * L * c.d_model)], embeds + (b * seqlen + t0) * c.d_model,
                    size_t(L * c.d_model) * 4);
      be.copy_from_host(ws.resid.get(), emb_chunk.data(), emb_chunk.size() * 4);
    }
    run_layers(st, ws, row0, batch, L, &interrupted);
    sink(ws, t0, L, t0 + L == seqlen);
  }
}

// forward() and forward_to_backend(): `out` is host memory (out_in_backend false) or the backend's (true). Into
// backend memory, lm_head writes the logits in place (one matmul per row and chunk); into host memory, they go
// through the workspace in blocks of kLogitBlock rows (the workspace stays small whatever the prompt length).
void forward_impl(State& st, int64_t row0, const int32_t* ids, const float* embeds, int64_t batch, int64_t seqlen,
                  Output mode, float* out, bool out_in_backend, const std::function<bool()>& interrupted) {
  const Model& m = st.model();
  const int64_t d = m.config().d_model, V = m.config().vocab_size;
  constexpr int64_t kLogitBlock = 64;  // rows of logits computed at a time for AllLogits into host memory
  const int64_t logit_rows =
      out_in_backend ? 0 : mode == Output::AllLogits ? kLogitBlock : mode == Output::LastLogits ? batch : 0;
  const size_t a = dtype_size(m.act_dtype());
  run_chunks(st, row0, ids, embeds, batch, seqlen, logit_rows, interrupted,
             [&](Workspace& ws, int64_t t0, int64_t L, bool last) {
               const char* normed = ws.normed.as<char>();
               switch (mode) {
                 case Output::None: break;
                 case Output::AllHidden:
                   for (int64_t b = 0; b < batch; ++b)
                     download_f32(m, normed + b * L * d * int64_t(a), d, L, d, out + (b * seqlen + t0) * d, d);
                   break;
                 case Output::LastHidden:
                   if (last) download_f32(m, normed + (L - 1) * d * int64_t(a), L * d, batch, d, out, d);
                   break;
                 case Output::LastLogits:
                   if (!last) break;
                   if (out_in_backend) {
                     lm_head(m, normed + (L - 1) * d * int64_t(a), L * d, batch, out);  // (batch, vocab)
                   } else {
                     lm_head(m, normed + (L - 1) * d * int64_t(a), L * d, batch, ws.logits.as<float>());
                     m.backend().copy_to_host(out, ws.logits.get(), size_t(batch * V) * 4);
                   }
                   break;
                 case Output::AllLogits:
                   for (int64_t b = 0; b < batch; ++b) {
                     if (out_in_backend) {  // rows t0 .. t0 + L of sequence b: (L, vocab)
                       lm_head(m, normed + b * L * d * int64_t(a), d, L, out + (b * seqlen + t0) * V);
                       continue;
                     }
                     for (int64_t i = 0; i < L; i += kLogitBlock) {
                       const int64_t n = std::min(kLogitBlock, L - i);
                       lm_head(m, normed + (b * L + i) * d * int64_t(a), d, n, ws.logits.as<float>());
                       m.backend().copy_to_host(out + (b * seqlen + t0 + i) * V, ws.logits.get(),
                                                size_t(n * V) * 4);
                     }
                   }
                   break;
               }
             });
  m.backend().synchronize();
  if (row0 == 0 && batch == st.batch()) st.n_tokens += seqlen;
}

}  // namespace

void forward(State& st, int64_t row0, const int32_t* ids, const float* embeds, int64_t batch, int64_t seqlen,
             Output mode, float* out, const std::function<bool()>& interrupted) {
  forward_impl(st, row0, ids, embeds, batch, seqlen, mode, out, false, interrupted);
}

void forward_to_backend(State& st, int64_t row0, const int32_t* ids, const float* embeds, int64_t batch,
                        int64_t seqlen, Output mode, float* out, const std::function<bool()>& interrupted) {
  MAMBART_CHECK(mode == Output::None || mode == Output::LastLogits || mode == Output::AllLogits, InvalidArgument,
                "output in device memory is available for logits only (not hidden states)");
  forward_impl(st, row0, ids, embeds, batch, seqlen, mode, out, true, interrupted);
}

std::vector<int32_t> generate(State& st, const std::vector<const int32_t*>& prompts,
                              const std::vector<int64_t>& lens, const GenerateOptions& opt,
                              const TokenCallback& on_token, int64_t* n_steps_out,
                              const std::function<bool()>& interrupted) {
  const Model& m = st.model();
  const ModelConfig& c = m.config();
  Backend& be = m.backend();
  const int64_t B = st.batch(), V = c.vocab_size, d = c.d_model;
  MAMBART_CHECK(int64_t(prompts.size()) == B && lens.size() == prompts.size(), InvalidArgument, "got ",
                prompts.size(), " prompts for a state of batch ", B);
  MAMBART_CHECK(opt.max_new_tokens >= 0, InvalidArgument, "max_new_tokens must be >= 0");
  MAMBART_CHECK(opt.temperature >= 0.f, InvalidArgument, "temperature must be >= 0");
  MAMBART_CHECK(opt.top_k >= 0, InvalidArgument, "top_k must be >= 0");
  MAMBART_CHECK(opt.top_p > 0.f && opt.top_p <= 1.f, InvalidArgument, "top_p must be in (0, 1], got ", opt.top_p);
  MAMBART_CHECK(opt.min_p >= 0.f && opt.min_p <= 1.f, InvalidArgument, "min_p must be in [0, 1], got ", opt.min_p);
  MAMBART_CHECK(opt.repetition_penalty > 0.f, InvalidArgument, "repetition_penalty must be > 0");
  for (int64_t r = 0; r < B; ++r) {
    MAMBART_CHECK(lens[size_t(r)] >= 1, InvalidArgument, "empty input: prompt ", r, " has no tokens");
    check_ids(c, prompts[size_t(r)], lens[size_t(r)]);
  }
  const size_t a = dtype_size(m.act_dtype());
  std::vector<int32_t> result;
  *n_steps_out = 0;
  if (opt.max_new_tokens == 0) return result;

  // Prefill: all rows at once when the prompts have equal lengths, else row by row (exact, no padding).
  // The workspace is sized first for the largest chunk and B logit rows, so nothing reallocates below.
  const bool equal = std::all_of(lens.begin(), lens.end(), [&](int64_t n) { return n == lens[0]; });
  {
    int64_t rows = B;
    for (int64_t n : lens)
      rows = std::max(rows, equal ? B * std::max<int64_t>(1, std::min(n, be.chunk_tokens() / B))
                                  : std::max<int64_t>(1, std::min(n, be.chunk_tokens())));
    ensure_workspace(st, rows, B);
  }
  auto last_logits_sink = [&](int64_t row, int64_t rows) {
    return [&m, row, rows, d, V, a](Workspace& ws, int64_t, int64_t L, bool last) {
      if (last)
        lm_head(m, ws.normed.as<char>() + (L - 1) * d * int64_t(a), L * d, rows, ws.logits.as<float>() + row * V);
    };
  };
  if (equal) {
    std::vector<int32_t> ids(size_t(B * lens[0]));
    for (int64_t r = 0; r < B; ++r) std::memcpy(&ids[size_t(r * lens[0])], prompts[size_t(r)], size_t(lens[0]) * 4);
    run_chunks(st, 0, ids.data(), nullptr, B, lens[0], B, interrupted, last_logits_sink(0, B));
  } else {
    for (int64_t r = 0; r < B; ++r)
      run_chunks(st, r, prompts[size_t(r)], nullptr, 1, lens[size_t(r)], B, interrupted, last_logits_sink(r, 1));
  }
  Workspace& ws = st.workspace();

  // Token history for the repetition penalty, (B, cap) in backend memory.
  const bool penalty = opt.repetition_penalty != 1.f;
  const int64_t cap = *std::max_element(lens.begin(), lens.end()) + opt.max_new_tokens;
  std::vector<int32_t> hist;
  std::vector<int64_t> hist_len(lens);
  Buffer hist_dev, hist_len_dev;
  if (penalty) {
    hist.assign(size_t(B * cap), 0);
    for (int64_t r = 0; r < B; ++r) std::memcpy(&hist[size_t(r * cap)], prompts[size_t(r)], size_t(lens[size_t(r)]) * 4);
    hist_dev = Buffer(&be, hist.size() * 4);
    hist_len_dev = Buffer(&be, size_t(B) * 8);
  }

  SampleParams sp;
  sp.rows = B; sp.vocab = V; sp.logits = ws.logits.as<float>(); sp.ld_logits = V;
  sp.temperature = opt.temperature; sp.top_k = opt.top_k; sp.top_p = opt.top_p; sp.min_p = opt.min_p;
  sp.repetition_penalty = opt.repetition_penalty;
  sp.seed = opt.seed; sp.out = sampled_ids(ws);
  if (penalty) { sp.history = hist_dev.as<int32_t>(); sp.ld_history = cap; sp.history_len = hist_len_dev.as<int64_t>(); }
  // Without the penalty (whose history lives on the host) the whole decode step is one recorded region: embed reads
  // the ids sampled by the previous step in backend memory, and the sampler takes its step from a counter there.
  // Per token, only the B sampled ids cross to the host. The recording depends on the sampling options and seed.
  const bool device_loop = !penalty;
  auto f2u = [](float f) { uint32_t u; std::memcpy(&u, &f, 4); return uint64_t(u); };
  const uint64_t loop_key =
      splitmix64(splitmix64(splitmix64(uint64_t(B) ^ f2u(opt.temperature) << 32) ^ uint64_t(opt.top_k)) ^
                 (f2u(opt.top_p) << 32 | f2u(opt.min_p)) ^ splitmix64(opt.seed)) << 1;  // even: not the key below
  auto decode_step = [&](const int32_t* ids) {
    EmbedParams ep;
    ep.n_tokens = B; ep.d_model = d; ep.ids = ids;
    ep.table = m.embedding().data; ep.table_dtype = m.embedding().dtype; ep.out = ws.resid.as<float>();
    be.embed(ep);
    run_layers(st, ws, 0, B, 1);
    lm_head(m, ws.normed.get(), d, B, ws.logits.as<float>());
  };

  std::vector<int32_t> tok(static_cast<size_t>(B)), shown(static_cast<size_t>(B));
  std::vector<char> done(static_cast<size_t>(B), 0);
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    if (step > 0) {
      // Decode one token for every row (rows that stopped run too, their outputs are ignored).
      if (interrupted && interrupted()) throw Interrupted("interrupted");
      if (device_loop) {
        be.run_recorded(&st, loop_key, [&] {
          decode_step(sampled_ids(ws));
          SampleParams q = sp;
          q.step_counter = step_counter(ws);
          be.sample_step(q);
        });
      } else {
        be.copy_from_host(ws.ids.get(), tok.data(), size_t(B) * 4);
        be.run_recorded(&st, uint64_t(B) << 1 | 1, [&] { decode_step(ws.ids.as<int32_t>()); });
      }
    }
    if (step == 0 || !device_loop) {
      if (penalty) {
        be.copy_from_host(hist_dev.get(), hist.data(), hist.size() * 4);
        be.copy_from_host(hist_len_dev.get(), hist_len.data(), size_t(B) * 8);
      }
      sp.step = uint64_t(step);
      be.sample(sp);
      if (device_loop) {  // the recorded steps continue from step 1
        const uint64_t next = 1;
        be.copy_from_host(step_counter(ws), &next, sizeof(next));
      }
    }
    be.copy_to_host(tok.data(), sampled_ids(ws), size_t(B) * 4);
    bool all_done = true;
    for (int64_t r = 0; r < B; ++r) {
      shown[size_t(r)] = done[size_t(r)] ? -1 : tok[size_t(r)];
      if (!done[size_t(r)]) {
        if (penalty) hist[size_t(r * cap + hist_len[size_t(r)]++)] = tok[size_t(r)];
        if (std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), tok[size_t(r)]) != opt.stop_tokens.end())
          done[size_t(r)] = 1;
      }
      all_done = all_done && done[size_t(r)];
    }
    result.insert(result.end(), shown.begin(), shown.end());
    ++*n_steps_out;
    const bool go_on = on_token ? on_token(shown.data(), B) : true;
    if (all_done || !go_on) break;
  }
  // The state has consumed the prompts and every sampled token but the last one (which was never fed back).
  st.n_tokens += lens[0] + *n_steps_out - 1;
  // Result is (steps, B); transpose to (B, steps).
  std::vector<int32_t> out(result.size());
  const int64_t n = *n_steps_out;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t r = 0; r < B; ++r) out[size_t(r * n + s)] = result[size_t(s * B + r)];
  return out;
}

}  // namespace mambart
