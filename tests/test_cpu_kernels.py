"""The "cpu" backend's kernels, on every ISA path this machine has (generic always; avx2, avx512 when present),
against the scalar reference ("ref") on random inputs of odd sizes, through mambart._core._OpRunner.

Tolerances: fp32 outputs within 1e-5 of the reference, relative to the largest reference magnitude (the
summation order differs); embedding rows exactly; sampling picks exactly the reference token.
Run: HF_HUB_OFFLINE=1 python -m pytest tests/test_cpu_kernels.py -q
"""
import numpy as np
import pytest

from mambart import _core

RTOL = 1e-5
ISAS = ["generic", "avx2", "avx512"]


def _runner(isa, threads):
    try:
        return _core._OpRunner("cpu", isa=isa, threads=threads)
    except ValueError as e:  # this CPU lacks the ISA
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def ref():
    return _core._OpRunner("ref")


@pytest.fixture(params=[(isa, t) for isa in ISAS for t in (1, 2)], ids=lambda p: f"{p[0]}-t{p[1]}")
def cpu(request):
    return _runner(*request.param)


def _close(got, want, rtol=RTOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = max(np.abs(want).max(initial=0.0), 1e-30)
    err = np.abs(got - want).max(initial=0.0) / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol}"


def _weights(rng, shape, dtype, scale=0.2):
    """Random weights as the bits of `dtype` (uint16 for F16/BF16) plus the dtype name."""
    w = (rng.standard_normal(shape) * scale).astype(np.float32)
    if dtype == "F32":
        return w
    if dtype == "F16":
        return w.astype(np.float16).view(np.uint16)
    u = w.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # bf16, round to nearest even


def test_isa_selection():
    with pytest.raises(ValueError):
        _core._OpRunner("cpu", isa="sse9")
    assert _core._OpRunner("cpu", isa="generic").name == "cpu"
    assert _core._OpRunner("cpu").name == "cpu"


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
@pytest.mark.parametrize("M", [1, 3, 4, 17, 64])
@pytest.mark.parametrize("N,K", [(1, 1), (7, 13), (80, 96), (257, 77), (130, 300)])
def test_matmul(cpu, ref, dtype, M, N, K):
    rng = np.random.default_rng(M * 1000 + N + K)
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = _weights(rng, (N, K), dtype)
    bias = rng.standard_normal(N).astype(np.float32) if (M + N) % 2 else None
    _close(cpu.matmul(x, w, bias, "F32", dtype, "F32"), ref.matmul(x, w, bias, "F32", dtype, "F32"))


@pytest.mark.parametrize("dim", [1, 7, 33, 768])
@pytest.mark.parametrize("rms", [True, False])
def test_add_norm(cpu, ref, dim, rms):
    rng = np.random.default_rng(dim)
    res = (rng.standard_normal((5, dim)) * 3).astype(np.float32)
    delta = rng.standard_normal((5, dim)).astype(np.float32)
    w = rng.standard_normal(dim).astype(np.float32)
    b = None if rms else rng.standard_normal(dim).astype(np.float32)
    for d in (delta, None):
        r1, o1 = cpu.add_norm(res, d, w, b, rms, 1e-5, "F32")
        r2, o2 = ref.add_norm(res, d, w, b, rms, 1e-5, "F32")
        _close(r1, r2)
        _close(o1, o2)


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_embed(cpu, ref, dtype):
    rng = np.random.default_rng(3)
    table = _weights(rng, (50, 37), dtype, 1.0)
    ids = rng.integers(0, 50, 9).astype(np.int32)
    np.testing.assert_array_equal(cpu.embed(ids, table, dtype), ref.embed(ids, table, dtype))


@pytest.mark.parametrize("d_conv", [2, 3, 4])
@pytest.mark.parametrize("seqlen", [1, 3, 17])
@pytest.mark.parametrize("d_inner", [5, 24, 67])
def test_conv1d(cpu, ref, d_conv, seqlen, d_inner):
    rng = np.random.default_rng(d_conv * 100 + seqlen * 10 + d_inner)
    x = rng.standard_normal((2, seqlen, d_inner)).astype(np.float32)
    st = rng.standard_normal((2, d_inner, d_conv)).astype(np.float32)
    w = rng.standard_normal((d_inner, d_conv)).astype(np.float32)
    b = rng.standard_normal(d_inner).astype(np.float32) if d_inner % 2 else None
    o1, s1 = cpu.conv1d(x, st, w, b, "F32")
    o2, s2 = ref.conv1d(x, st, w, b, "F32")
    _close(o1, o2)
    _close(s1, s2)


@pytest.mark.parametrize("d_state", [1, 16, 17])
@pytest.mark.parametrize("seqlen", [1, 3, 20])
@pytest.mark.parametrize("d_inner", [5, 48, 70])
def test_scan(cpu, ref, d_state, seqlen, d_inner):
    rng = np.random.default_rng(d_state * 1000 + seqlen * 100 + d_inner)
    f = lambda *s, scale=1.0: (rng.standard_normal(s) * scale).astype(np.float32)  # noqa: E731
    x, dt, z = f(2, seqlen, d_inner), f(2, seqlen, d_inner), f(2, seqlen, d_inner)
    B, C = f(2, seqlen, d_state), f(2, seqlen, d_state)
    A = -np.exp(f(d_inner, d_state))
    D, dt_bias, st = f(d_inner), f(d_inner, scale=0.5), f(2, d_inner, d_state)
    full = (d_inner + seqlen) % 2 == 0  # optional inputs present or absent
    args = (x, dt, B, C, z if full else None, A, D if full else None, dt_bias if full else None, st, "F32")
    y1, s1 = cpu.scan(*args)
    y2, s2 = ref.scan(*args)
    _close(y1, y2)
    _close(s1, s2)


@pytest.mark.parametrize(
    "temperature,top_k,top_p,min_p,penalty",
    [(0.0, 0, 1.0, 0.0, 1.0), (0.0, 0, 1.0, 0.0, 1.3), (1.0, 0, 1.0, 0.0, 1.0), (0.7, 40, 1.0, 0.0, 1.0),
     (1.2, 0, 0.9, 0.0, 1.0), (0.9, 50, 0.8, 0.05, 1.2), (1.0, 1, 1.0, 0.0, 1.0)])
def test_sample(cpu, ref, temperature, top_k, top_p, min_p, penalty):
    rng = np.random.default_rng(11)
    rows, vocab = 3, 5003
    history = rng.integers(0, vocab, (rows, 10)).astype(np.int32)
    history_len = np.array([10, 3, 0], np.int64)
    for step in range(10):
        logits = (rng.standard_normal((rows, vocab)) * 2).astype(np.float32)
        logits[:, [17, 4000]] = 9.0  # a tie: the lower index wins
        kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, repetition_penalty=penalty,
                  history=history, history_len=history_len, seed=99, step=step)
        np.testing.assert_array_equal(cpu.sample(logits, **kw), ref.sample(logits, **kw))
