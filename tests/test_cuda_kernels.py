"""Every CUDA kernel against the scalar reference ("ref") through mambart._core._OpRunner, on random inputs, for
fp32 / fp16 / bf16 and several shapes, odd ones included. Inputs are rounded to the dtype first, so both backends
see identical bits. Tolerances (max |cuda - ref| / max |ref|): fp32 1e-5 (1e-4 for long scans: fast exp and the
split of d_state over lanes reorder the rounding), fp16/bf16 1e-2 (outputs rounded to 8-11 mantissa bits).
Skips at module level when no CUDA device is usable."""
import os
import zlib

import numpy as np
import pytest

import mambart._core as core

if not core.cuda_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

DTYPES = ["F32", "F16", "BF16"]
TOL = {"F32": 1e-5, "F16": 1e-2, "BF16": 1e-2}


def to_bits(a: np.ndarray, dt: str) -> np.ndarray:
    """float array -> the array handed to the op runner (float32, or uint16 bit patterns)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dt == "F32":
        return a
    if dt == "F16":
        return a.astype(np.float16).view(np.uint16)
    u = a.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bits(a: np.ndarray, dt: str) -> np.ndarray:
    if dt == "F32" or a.dtype == np.float32:
        return np.asarray(a, np.float32)
    if dt == "F16":
        return a.view(np.float16).astype(np.float32)
    return (a.astype(np.uint32) << 16).view(np.float32)


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.isfinite(a).all(), "non-finite output"
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.fixture(scope="module")
def ref():
    return core._OpRunner("ref")


@pytest.fixture(scope="module")
def cuda():
    return core._OpRunner("cuda")


@pytest.fixture(scope="module")
def cuda_fallback():
    """A second CUDA backend that never uses cuBLAS (the built-in GEMM)."""
    old = os.environ.get("MAMBART_CUBLAS")
    os.environ["MAMBART_CUBLAS"] = "0"
    try:
        r = core._OpRunner("cuda")
        yield r
    finally:
        if old is None:
            os.environ.pop("MAMBART_CUBLAS", None)
        else:
            os.environ["MAMBART_CUBLAS"] = old


def rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("T,d", [(1, 7), (5, 48), (3, 2560)])
def test_embed(ref, cuda, dt, T, d):
    g = rng("embed", dt, T, d)
    table = to_bits(g.standard_normal((97, d)), dt)
    ids = g.integers(0, 97, size=T).astype(np.int32)
    a, b = cuda.embed(ids, table, dt), ref.embed(ids, table, dt)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("rows,dim", [(1, 7), (5, 48), (2, 768), (3, 2560), (1, 5000)])
@pytest.mark.parametrize("rms", [True, False])
@pytest.mark.parametrize("with_delta", [True, False])
def test_add_norm(ref, cuda, dt, rows, dim, rms, with_delta):
    g = rng("norm", dt, rows, dim, rms, with_delta)
    resid = (g.standard_normal((rows, dim)) * 3).astype(np.float32)
    delta = to_bits(g.standard_normal((rows, dim)), dt) if with_delta else None
    w = (1 + 0.2 * g.standard_normal(dim)).astype(np.float32)
    bias = None if rms else (0.1 * g.standard_normal(dim)).astype(np.float32)
    ra, oa = cuda.add_norm(resid, delta, w, bias, rms, 1e-5, dt)
    rb, ob = ref.add_norm(resid, delta, w, bias, rms, 1e-5, dt)
    assert rel(ra, rb) <= 1e-6
    assert rel(from_bits(oa, dt), from_bits(ob, dt)) <= TOL[dt]


MATMUL_SHAPES = [(1, 1, 5), (1, 37, 48), (1, 192, 1000), (2, 256, 160), (3, 100, 77), (8, 515, 64), (9, 33, 48),
                 (70, 130, 160), (257, 64, 1000)]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("M,N,K", MATMUL_SHAPES)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("y_f32", [False, True])
def test_matmul(ref, cuda, cuda_fallback, dt, M, N, K, with_bias, y_f32):
    g = rng("mm", dt, M, N, K, with_bias, y_f32)
    x = to_bits(g.standard_normal((M, K)), dt)
    w = to_bits(g.standard_normal((N, K)) / np.sqrt(K), dt)
    bias = g.standard_normal(N).astype(np.float32) if with_bias else None
    yd = "F32" if y_f32 else dt
    want = from_bits(ref.matmul(x, w, bias, dt, dt, yd), yd)
    tol = TOL[yd] if not y_f32 else (1e-5 if dt == "F32" else 1e-5 * 10)
    for runner in (cuda, cuda_fallback):
        got = from_bits(runner.matmul(x, w, bias, dt, dt, yd), yd)
        assert got.shape == want.shape
        assert rel(got, want) <= tol, runner.name()


def test_matmul_model_sizes(ref, cuda):
    """Decode GEMV at the shapes of the 130m model (in_proj, x_proj, dt_proj, out_proj), fp16."""
    for N, K in [(3072, 768), (80, 1536), (1536, 48), (768, 1536)]:
        g = rng("mm_model", N, K)
        x = to_bits(g.standard_normal((1, K)), "F16")
        w = to_bits(g.standard_normal((N, K)) / np.sqrt(K), "F16")
        got = from_bits(cuda.matmul(x, w, None, "F16", "F16", "F16"), "F16")
        want = from_bits(ref.matmul(x, w, None, "F16", "F16", "F16"), "F16")
        assert rel(got, want) <= 1e-2


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("batch,seqlen,d_inner", [(1, 1, 5), (3, 1, 130), (2, 3, 64), (1, 17, 33), (2, 100, 96),
                                                  (1, 300, 512)])  # d_inner % 8 == 0: the 16-byte prefill path
@pytest.mark.parametrize("d_conv", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv1d(ref, cuda, dt, batch, seqlen, d_inner, d_conv, with_bias):
    g = rng("conv", dt, batch, seqlen, d_inner, d_conv, with_bias)
    x = to_bits(g.standard_normal((batch, seqlen, d_inner)), dt)
    st = g.standard_normal((batch, d_inner, d_conv)).astype(np.float32)
    w = (0.5 * g.standard_normal((d_inner, d_conv))).astype(np.float32)
    b = g.standard_normal(d_inner).astype(np.float32) if with_bias else None
    oa, sa = cuda.conv1d(x, st, w, b, dt)
    ob, sb = ref.conv1d(x, st, w, b, dt)
    assert rel(from_bits(oa, dt), from_bits(ob, dt)) <= TOL[dt]
    np.testing.assert_allclose(sa, sb, rtol=0, atol=0)


def scan_inputs(g, dt, batch, seqlen, d_inner, d_state, with_z, with_d):
    x = to_bits(g.standard_normal((batch, seqlen, d_inner)), dt)
    dtv = to_bits(g.standard_normal((batch, seqlen, d_inner)) * 0.5 - 1.0, dt)
    B = to_bits(g.standard_normal((batch, seqlen, d_state)), dt)
    C = to_bits(g.standard_normal((batch, seqlen, d_state)), dt)
    z = to_bits(g.standard_normal((batch, seqlen, d_inner)), dt) if with_z else None
    A = -np.exp(np.log(g.random((d_inner, d_state)) * 8 + 0.5)).astype(np.float32)
    D = g.standard_normal(d_inner).astype(np.float32) if with_d else None
    dt_bias = (g.standard_normal(d_inner) * 0.5 - 2).astype(np.float32) if with_d else None
    st = g.standard_normal((batch, d_inner, d_state)).astype(np.float32)
    return x, dtv, B, C, z, A, D, dt_bias, st


SCAN_SHAPES = [(1, 1, 5, 16), (3, 1, 130, 16), (2, 7, 64, 4), (1, 64, 33, 1), (2, 300, 96, 16), (1, 129, 40, 24),
               (1, 200, 64, 64), (1, 2000, 64, 16), (2, 1, 1536, 16), (2, 1, 70, 32), (1, 1, 33, 64),
               (3, 1, 20, 4), (1, 1000, 40, 32),
               # prefill kernel: token and channel counts off the tile sizes, several blocks, batch > 1
               (1, 700, 2050, 16), (2, 257, 1030, 32), (3, 70, 300, 64), (2, 129, 520, 8),
               # one token past a 128-token tile, one short of two, several with a short tail, d_inner off the
               # block, odd d_state
               (1, 129, 8, 16), (2, 255, 9, 16), (1, 1030, 141, 16), (2, 385, 27, 33), (1, 300, 15, 17)]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("batch,seqlen,d_inner,d_state", SCAN_SHAPES)
@pytest.mark.parametrize("with_z,with_d", [(True, True), (False, False)])
def test_scan(ref, cuda, dt, batch, seqlen, d_inner, d_state, with_z, with_d):
    g = rng("scan", dt, batch, seqlen, d_inner, d_state, with_z, with_d)
    check_scan(ref, cuda, g, dt, batch, seqlen, d_inner, d_state, with_z, with_d)


def check_scan(ref, cuda, g, dt, batch, seqlen, d_inner, d_state, with_z, with_d):
    """CUDA scan vs the reference on fresh inputs: state fp32 1e-5 (1e-4 beyond 100 tokens), y the same in fp32."""
    args = scan_inputs(g, dt, batch, seqlen, d_inner, d_state, with_z, with_d)
    ya, sa = cuda.scan(*args, dt)
    yb, sb = ref.scan(*args, dt)
    tol_state = 1e-4 if seqlen > 100 else 1e-5
    assert rel(sa, sb) <= tol_state
    assert rel(from_bits(ya, dt), from_bits(yb, dt)) <= (tol_state if dt == "F32" else TOL[dt])


@pytest.mark.parametrize("lanes", ["4", "8", "16"])
@pytest.mark.parametrize("batch,seqlen,d_inner,d_state", [(2, 150, 300, 16), (1, 97, 70, 32), (2, 40, 50, 64),
                                                          (1, 65, 33, 3),
                                                          # 16-byte rows: the cp.async tile path at every lane count
                                                          (1, 300, 512, 16)])
def test_scan_prefill_lanes(ref, cuda, monkeypatch, lanes, batch, seqlen, d_inner, d_state):
    """Each lanes-per-channel variant of the prefill kernel (forced with MAMBART_SCAN_LANES, read per launch)."""
    monkeypatch.setenv("MAMBART_SCAN_LANES", lanes)
    for dt in ("F32", "BF16"):
        g = rng("scan_lanes", lanes, batch, seqlen, d_inner, d_state, dt)
        check_scan(ref, cuda, g, dt, batch, seqlen, d_inner, d_state, True, True)


@pytest.mark.parametrize("segments", ["2", "3", "auto"])
@pytest.mark.parametrize("lanes", ["4", "8", "16"])
@pytest.mark.parametrize("batch,seqlen,d_inner,d_state", [(2, 300, 512, 16), (1, 97, 70, 13), (1, 1100, 256, 16),
                                                          (1, 64, 40, 16)])
def test_scan_prefill_segments(ref, cuda, monkeypatch, segments, lanes, batch, seqlen, d_inner, d_state):
    """The prefill scan cut into time segments (MAMBART_SCAN_SEGMENTS, read per launch; scan_prefill.cuh): the local
    pass, then the segment pass from the rebuilt states. auto asks for 2 segments on (1, 1100, 256, 16)."""
    monkeypatch.setenv("MAMBART_SCAN_LANES", lanes)
    monkeypatch.setenv("MAMBART_SCAN_SEGMENTS", segments)
    for dt in ("F32", "F16"):
        g = rng("scan_segments", segments, lanes, batch, seqlen, d_inner, d_state, dt)
        check_scan(ref, cuda, g, dt, batch, seqlen, d_inner, d_state, True, True)


def test_scan_prefill_equals_steps(cuda):
    """The prefill scan leaves the same state and outputs as stepping token by token (fp32)."""
    g = rng("scan_steps")
    batch, L, di, ds = 2, 333, 64, 16
    x, dtv, B, C, z, A, D, dtb, st = scan_inputs(g, "F32", batch, L, di, ds, True, True)
    y_all, s_all = cuda.scan(x, dtv, B, C, z, A, D, dtb, st, "F32")
    s = st
    ys = []
    for t in range(L):
        sl = slice(t, t + 1)
        y, s = cuda.scan(np.ascontiguousarray(x[:, sl]), np.ascontiguousarray(dtv[:, sl]),
                         np.ascontiguousarray(B[:, sl]), np.ascontiguousarray(C[:, sl]),
                         np.ascontiguousarray(z[:, sl]), A, D, dtb, s, "F32")
        ys.append(y)
    assert rel(s_all, s) <= 1e-4
    assert rel(y_all, np.concatenate(ys, axis=1)) <= 1e-4


def test_scan_unsupported_d_state(cuda):
    g = rng("scan_bad")
    args = scan_inputs(g, "F32", 1, 3, 8, 65, False, False)
    with pytest.raises(ValueError, match="d_state"):
        cuda.scan(*args, "F32")


@pytest.mark.parametrize("vocab", [7, 1000, 50280])
def test_sample_greedy(ref, cuda, vocab):
    g = rng("greedy", vocab)
    logits = g.standard_normal((5, vocab)).astype(np.float32)
    logits[1, 3] = logits[1, 5] = logits[1].max() + 1  # a tie: lowest index wins
    a = cuda.sample(logits, 0.0, 0, 1.0, 0.0, 1.0, None, None, 0, 0)
    b = ref.sample(logits, 0.0, 0, 1.0, 0.0, 1.0, None, None, 0, 0)
    np.testing.assert_array_equal(a, b)
    assert a[1] == 3


def test_sample_penalty_greedy(ref, cuda):
    g = rng("penalty")
    rows, vocab, H = 4, 3000, 50
    logits = g.standard_normal((rows, vocab)).astype(np.float32) * 2
    hist = g.integers(0, vocab, size=(rows, H)).astype(np.int32)
    hist[:, 1] = hist[:, 0]  # duplicates are penalized once
    hist[:, :5] = logits.argmax(1)[:, None]
    hl = np.array([H, 10, 1, 0], dtype=np.int64)
    for pen in (1.3, 0.7):
        a = cuda.sample(logits, 0.0, 0, 1.0, 0.0, pen, hist, hl, 0, 0)
        b = ref.sample(logits, 0.0, 0, 1.0, 0.0, pen, hist, hl, 0, 0)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("vocab", [100, 50280])
@pytest.mark.parametrize("temperature,top_k,top_p,min_p", [(1.0, 0, 1.0, 0.0), (0.7, 40, 1.0, 0.0),
                                                           (1.0, 0, 0.9, 0.0), (1.3, 50, 0.8, 0.05),
                                                           (1.0, 1, 1.0, 0.0), (0.5, 0, 1.0, 0.1)])
def test_sample_draw_matches_reference(ref, cuda, vocab, temperature, top_k, top_p, min_p):
    """The draw follows the reference's order (descending probability), so the same (seed, row, step) picks the
    same token except when u lands within float rounding of a boundary: >= 95% of rows must agree."""
    g = rng("draw", vocab, temperature, top_k, top_p, min_p)
    rows = 64
    logits = (g.standard_normal((rows, vocab)) * 3).astype(np.float32)
    agree = 0
    for step in range(3):
        a = cuda.sample(logits, temperature, top_k, top_p, min_p, 1.0, None, None, 1234, step)
        b = ref.sample(logits, temperature, top_k, top_p, min_p, 1.0, None, None, 1234, step)
        assert ((a >= 0) & (a < vocab)).all()
        agree += int((a == b).sum())
    assert agree >= 0.95 * rows * 3, agree
    if top_k == 1:
        np.testing.assert_array_equal(a, logits.argmax(1))


# ---- fused decode layer (DecodeLayerParams) -------------------------------------------------------------------
# The CUDA override (fused kernels for batch <= 8, the composition otherwise) against the default composition of
# the reference ops. Compared: the residual's increment (out_proj of the layer) and both states. Tolerances:
# fp32 1e-4 (fast exp, reordered sums over four chained projections); fp16 / bf16 2e-2 (the same intermediates are
# rounded to the dtype on both sides, but a rounding flip early in the chain propagates).
LAYER_TOL = {"F32": 1e-4, "F16": 2e-2, "BF16": 2e-2}

# batch, d_model, d_inner, d_state, dt_rank, d_conv, rms, biases
LAYER_SHAPES = [
    (1, 64, 128, 16, 4, 4, True, False),
    (3, 96, 192, 16, 8, 4, True, True),
    (8, 256, 512, 16, 16, 4, True, False),
    (2, 40, 80, 32, 3, 3, False, True),     # LayerNorm, odd dt_rank (scalar dt_proj path)
    (1, 33, 70, 16, 5, 2, True, True),      # unaligned rows (scalar GEMV path, padded prologue rows)
    (9, 64, 128, 16, 4, 4, True, False),    # batch > 8: the batched step (composed with MAMBART_CUDA_FUSED=0)
    (2, 48, 96, 4, 4, 4, True, False),      # d_state 4: composed as well
    (1, 768, 1536, 16, 48, 4, True, False), # mamba-130m sizes
    (8, 1536, 256, 16, 8, 4, True, False),  # fp32 prologue rows beyond 48 KB of shared memory
    (9, 48, 96, 4, 4, 4, True, False),      # batch > 8, d_state 4: composed
]


def layer_inputs(g, dt, batch, d_model, d_inner, d_state, dt_rank, d_conv, rms, biases):
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    nx = dt_rank + 2 * d_state
    w = lambda n, k, s=1.0: to_bits(g.standard_normal((n, k)) * s / np.sqrt(k), dt)
    opt = lambda n, s=0.1: f32(g.standard_normal(n) * s) if biases else None
    return dict(
        residual=f32(g.standard_normal((batch, d_model)) * 2),
        norm_w=f32(1 + 0.1 * g.standard_normal(d_model)),
        norm_b=None if rms else f32(0.1 * g.standard_normal(d_model)),
        in_proj_w=w(2 * d_inner, d_model), in_proj_b=opt(2 * d_inner),
        conv_w=f32(g.standard_normal((d_inner, d_conv)) * 0.5), conv_b=opt(d_inner),
        x_proj_w=w(nx, d_inner), dt_proj_w=w(d_inner, dt_rank, 0.5),
        dt_bias=f32(g.standard_normal(d_inner) * 0.5 - 2),
        A=f32(-np.exp(np.log(g.random((d_inner, d_state)) * 8 + 0.5))),
        D=f32(g.standard_normal(d_inner)),
        out_proj_w=w(d_model, d_inner), out_proj_b=opt(d_model),
        conv_state=f32(g.standard_normal((batch, d_inner, d_conv))),
        ssm_state=f32(g.standard_normal((batch, d_inner, d_state))),
        rms=rms, eps=1e-5, act=dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", LAYER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_decode_layer(ref, cuda, dt, shape):
    check_layer(ref, cuda, rng("decode_layer", dt, shape), dt, shape)


def check_layer(ref, runner, g, dt, shape, repeat=0):
    """runner's decode layer (repeat > 0: that many in a row through decode_layers) vs the reference on fresh inputs:
    the residual update and ssm state within LAYER_TOL, the conv state 1e-5 in fp32."""
    kw = layer_inputs(g, dt, *shape)
    res0 = kw["residual"].copy()
    ra, ca, sa = runner.decode_layer(**kw, repeat=repeat)
    rb, cb, sb = ref.decode_layer(**kw, repeat=repeat)
    tol = LAYER_TOL[dt]
    assert np.isfinite(ra).all() and np.isfinite(sa).all()
    assert rel(ra - res0, rb - res0) <= tol
    assert rel(ca, cb) <= (1e-5 if dt == "F32" else tol)
    assert rel(sa, sb) <= tol


def test_decode_layer_steps(ref, cuda):
    """Five fused steps in a row, the states fed back (fp32): errors stay at the one-step level."""
    g = rng("decode_layer_steps")
    kw = layer_inputs(g, "F32", 2, 64, 128, 16, 4, 4, True, True)
    ka, kb = dict(kw), dict(kw)
    for _ in range(5):
        x = g.standard_normal(kw["residual"].shape).astype(np.float32)
        ka["residual"] = kb["residual"] = x
        ra, ka["conv_state"], ka["ssm_state"] = cuda.decode_layer(**ka)
        rb, kb["conv_state"], kb["ssm_state"] = ref.decode_layer(**kb)
        assert rel(ra - x, rb - x) <= 1e-4
    assert rel(ka["ssm_state"], kb["ssm_state"]) <= 1e-4
    assert rel(ka["conv_state"], kb["conv_state"]) <= 1e-5


def runner_with_env(name: str, value: str, **more: str):
    """An _OpRunner("cuda") whose backend is created with os.environ[name] = value (and the `more` pairs; read at
    creation)."""
    env = {name: value, **more}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return core._OpRunner("cuda")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def cuda_persistent():
    """A CUDA backend with the persistent decode step forced on (by default it is used for d_model > 1024 only)."""
    return runner_with_env("MAMBART_CUDA_PERSISTENT", "1")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", LAYER_SHAPES + [(1, 2560, 5120, 16, 160, 4, True, False),
                                                  (4, 1024, 2048, 32, 64, 4, False, True)],
                         ids=lambda s: "x".join(map(str, s)))
def test_decode_layers_persistent(ref, cuda_persistent, dt, shape):
    """Three layers in a row through Backend::decode_layers (the persistent decode step where it applies: batch
    <= 8, aligned rows, d_state % 16 == 0) == the reference running decode_layer three times."""
    check_layer(ref, cuda_persistent, rng("decode_layers", dt, shape), dt, shape, repeat=3)


def test_decode_layers_persistent_repeatable(cuda_persistent):
    """The same inputs give bit-identical outputs run after run (no race between blocks)."""
    g = rng("decode_layers_repeat")
    kw = layer_inputs(g, "F16", 2, 768, 1536, 16, 48, 4, True, True)
    outs = [cuda_persistent.decode_layer(**kw, repeat=4) for _ in range(5)]
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def cuda_unfused():
    """A CUDA backend with the fused decode layer off (MAMBART_CUDA_FUSED=0): the ops composed, out_proj
    accumulated into the residual by the GEMV epilogue (batch <= 8) or cuBLAS (beta 1)."""
    return runner_with_env("MAMBART_CUDA_FUSED", "0")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [LAYER_SHAPES[1], LAYER_SHAPES[3], LAYER_SHAPES[5]], ids=lambda s: "x".join(map(str, s)))
def test_decode_layer_unfused(ref, cuda_unfused, dt, shape):
    check_layer(ref, cuda_unfused, rng("decode_layer_unfused", dt, shape), dt, shape)


# ---- batched decode step (batch 9..256, cuda/decode_batch.cpp) -------------------------------------------------
# conv step + x_proj in one kernel (fp32 atomics into the dt scratch), dt_proj + scan step in another, out_proj into
# an act-dtype delta that the next layer's add_norm adds (the last layer completes the residual itself).
# MAMBART_CUDA_BATCHED=1 makes the backend raise where the path does not apply, so every case here proves it ran.
# Shapes: rows off the 16-row tiles, d_inner off the 64/32-channel tiles and odd (unaligned x_proj rows), d_state 16
# to 64, dt_rank not a multiple of 8 (unaligned dt_proj rows), d_conv 1..4, LayerNorm, biases (an out_proj bias
# takes the last layer through the delta and an add_norm). The fp32 x_proj sums live in the dt scratch:
# d_inner * size(dtype) >= 4 (dt_rank + 2 d_state) (fp16: d_inner >= 2 dt_rank + 4 d_state).
BATCH_SHAPES = [
    (9, 64, 128, 16, 4, 4, True, False),
    (17, 96, 200, 32, 7, 3, False, True),     # LayerNorm, biases, d_state 32, odd dt_rank, d_conv 3
    (33, 72, 150, 16, 5, 2, True, True),      # unaligned rows, 3 row tiles (the last of 1 row)
    (20, 100, 301, 64, 9, 4, True, False),    # d_state 64, odd d_inner
    (11, 80, 230, 48, 6, 1, False, False),    # d_state 48, d_conv 1, LayerNorm, no biases
    (64, 256, 512, 16, 16, 4, True, False),   # 4 full row tiles
    (130, 128, 256, 16, 8, 4, True, True),    # 9 row tiles
]


@pytest.fixture(scope="module")
def cuda_batched():
    """A CUDA backend that must take the batched decode step for batch > 8 (MAMBART_CUDA_BATCHED=1)."""
    return runner_with_env("MAMBART_CUDA_BATCHED", "1")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("repeat", [0, 3])
def test_decode_batched(ref, cuda_batched, dt, shape, repeat):
    """One layer (decode_layer: its out_proj completes the residual) and three in a row through decode_layers (each
    layer's delta carried into the next one's add_norm) against the reference."""
    check_layer(ref, cuda_batched, rng("decode_batched", dt, shape, repeat), dt, shape, repeat=repeat)


def test_decode_batched_model_size(ref, cuda_batched):
    """mamba-2.8b sizes (fp16, two layers in a row) at batch 24: full and partial row tiles (batch 64, the shape the
    path is for, takes the scalar reference ~45 s)."""
    shape = (24, 2560, 5120, 16, 160, 4, True, False)
    check_layer(ref, cuda_batched, rng("decode_batched_2.8b"), "F16", shape, repeat=2)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [BATCH_SHAPES[0], BATCH_SHAPES[1]], ids=lambda s: "x".join(map(str, s)))
def test_decode_batched_builtin_gemm(ref, dt, shape):
    """Without cuBLAS (MAMBART_CUBLAS=0): in_proj / out_proj by the built-in GEMM, the last layer's out_proj into the
    delta, then an add_norm."""
    runner = runner_with_env("MAMBART_CUDA_BATCHED", "1", MAMBART_CUBLAS="0")
    check_layer(ref, runner, rng("decode_batched_gemm", dt, shape), dt, shape, repeat=2)


def test_decode_batched_unsupported(ref, cuda_batched, cuda):
    """MAMBART_CUDA_BATCHED=1 raises where the path does not apply (d_state 4); by default the ops are composed."""
    shape = (9, 48, 96, 4, 4, 4, True, False)
    kw = layer_inputs(rng("decode_batched_unsupported"), "F16", *shape)
    with pytest.raises(ValueError, match="d_state"):
        cuda_batched.decode_layer(**kw, repeat=2)
    check_layer(ref, cuda, rng("decode_batched_unsupported"), "F16", shape, repeat=2)
