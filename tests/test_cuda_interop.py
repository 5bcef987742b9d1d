"""Device interop: `forward(..., device_output=True)` hands logits to torch/CuPy/JAX through DLPack without a copy,
and token ids are accepted from any DLPack or __cuda_array_interface__ object in CUDA memory.

The first tests run everywhere (CPU behavior, clear errors without CUDA, the DeviceArray wrapper); the rest need a
CUDA device and skip without one, each library's tests also when that library is not importable.
Tolerances (max |a - b| / max |b|): device vs host logits of the same CUDA session 1e-5 (the lm_head runs with
other row counts), CUDA vs CPU fp32 1e-4.
"""
import gc
import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX must not take the GPU's memory at import

import numpy as np
import pytest

import mambart
import mambart._core as core

HAVE_CUDA = core.cuda_available()
needs_cuda = pytest.mark.skipif(not HAVE_CUDA, reason="no usable CUDA device")


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    from ckpt_utils import make_hf_model, save_hf

    return save_hf(make_hf_model(seed=21, num_hidden_layers=2, vocab_size=103), tmp_path_factory.mktemp("interop"))


@pytest.fixture(scope="module")
def cpu(model_dir):
    return mambart.Session(model_dir, device="cpu")


def _ids(shape, seed=0, vocab=103):
    return np.random.default_rng(seed).integers(0, vocab, size=shape)


# ---- everywhere -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(17,), (3, 17)])
@pytest.mark.parametrize("logits", ["all", "last"])
def test_device_output_on_cpu_is_numpy(cpu, shape, logits):
    """On a CPU session the logits already are in the backend's memory: device_output gives numpy (DLPack too)."""
    ids = _ids(shape, seed=1)
    want = cpu.forward(ids, logits=logits)
    got = cpu.forward(ids, logits=logits, device_output=True)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == want.shape
    assert _rel(got, want) <= 1e-5
    assert hasattr(got, "__dlpack__")


def test_device_output_on_cpu_ragged_and_embeds(cpu):
    rows = [_ids(5, seed=2), _ids(9, seed=3)]
    got = cpu.forward(rows, device_output=True)
    assert isinstance(got, list) and [g.shape for g in got] == [(5, 103), (9, 103)]
    for g, r in zip(got, rows):
        assert _rel(g, cpu.forward(r)) <= 1e-5
    emb = np.random.default_rng(4).normal(size=(2, 6, cpu.config.d_model)).astype(np.float32)
    assert _rel(cpu.forward(inputs_embeds=emb, device_output=True), cpu.forward(inputs_embeds=emb)) <= 1e-5


def test_device_output_advances_state(cpu):
    ids = _ids((2, 12), seed=5)
    a, b = cpu.new_state(2), cpu.new_state(2)
    cpu.forward(ids, state=a)
    cpu.forward(ids, state=b, device_output=True)
    np.testing.assert_allclose(a.ssm, b.ssm, rtol=0, atol=0)
    assert a._core.n_tokens == b._core.n_tokens == 12


def test_core_device_output_is_for_logits_only(cpu):
    st = cpu.new_state(1)
    with pytest.raises(ValueError, match="logits only"):
        core.forward_device(st._core, np.ones((1, 3), np.int32), None, 0, "hidden_all")


class _CAIOnly:
    """An object exposing only __cuda_array_interface__ (like a Numba device array)."""

    def __init__(self, cai):
        self.__cuda_array_interface__ = cai


class _DLPackOn:
    """A host array that claims to live on another DLPack device."""

    def __init__(self, arr, device):
        self._arr, self._device = arr, device

    def __dlpack__(self, **kw):
        return self._arr.__dlpack__()

    def __dlpack_device__(self):
        return self._device


@pytest.mark.skipif(HAVE_CUDA, reason="checks the error without CUDA")
def test_cuda_array_interface_without_cuda_is_clear(cpu):
    cai = {"shape": (3,), "typestr": "<i8", "data": (0x7F0000001000, False), "version": 3, "strides": None}
    with pytest.raises(RuntimeError, match="ids: .*CUDA"):
        cpu.forward(_CAIOnly(cai))
    with pytest.raises(RuntimeError, match="CUDA"):
        core.cuda_to_host(0x7F0000001000, [3], [8], 8, 0)


def test_device_ids_dtype_and_device_errors(cpu):
    cai = {"shape": (3,), "typestr": "<f4", "data": (0x7F0000001000, False), "version": 3}
    with pytest.raises(TypeError, match="integers"):
        cpu.forward(_CAIOnly(cai))  # rejected before any copy
    with pytest.raises(ValueError, match="masked"):
        cpu.forward(_CAIOnly({**cai, "typestr": "<i4", "mask": object()}))
    with pytest.raises(ValueError, match="device type 10"):  # ROCm
        cpu.forward(_DLPackOn(np.arange(3), (10, 0)))
    # a host DLPack array still goes the host way
    ids = np.array([4, 8, 15, 16], np.int64)
    np.testing.assert_array_equal(cpu.forward(_DLPackOn(ids, (1, 0))), cpu.forward(ids))


def test_device_array_wrapper_describes_its_buffer():
    """DeviceArray's metadata, DLPack device and CUDA array interface describe the buffer it owns (no GPU needed:
    a made-up address that is never dereferenced)."""
    a = mambart.DeviceArray(None, 0x7F0000001000, 1, (3, 4))
    assert a.shape == (3, 4) and a.ndim == 2 and a.size == 12 and a.nbytes == 48 and a.dtype == np.float32
    assert a.__dlpack_device__() == (2, 1) and a.data_ptr == 0x7F0000001000
    cai = a.__cuda_array_interface__
    assert cai["shape"] == (3, 4) and cai["typestr"] == "<f4" and cai["data"] == (0x7F0000001000, False)
    assert "cuda:1" in repr(a) and len(a) == 3


# ---- CUDA ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu(model_dir):
    if not HAVE_CUDA:
        pytest.skip("no usable CUDA device")
    return mambart.Session(model_dir, device="cuda")


@needs_cuda
@pytest.mark.parametrize("shape", [(29,), (3, 29), (2, 1100)])  # 1100 > one prefill chunk
@pytest.mark.parametrize("logits", ["all", "last"])
def test_device_logits_equal_host(gpu, cpu, shape, logits):
    ids = _ids(shape, seed=6)
    out = gpu.forward(ids, logits=logits, device_output=True)
    want = gpu.forward(ids, logits=logits)
    assert isinstance(out, mambart.DeviceArray)
    assert out.shape == want.shape and out.dtype == np.float32
    assert out.__dlpack_device__() == (2, 0)
    got = out.numpy()
    assert _rel(got, want) <= 1e-5
    assert _rel(got, cpu.forward(ids, logits=logits)) <= 1e-4


@needs_cuda
def test_device_logits_ragged_and_embeds(gpu, cpu):
    rows = [_ids(5, seed=7), _ids(40, seed=8)]
    outs = gpu.forward(rows, device_output=True)
    assert [o.shape for o in outs] == [(5, 103), (40, 103)]
    for o, r in zip(outs, rows):
        assert _rel(o.numpy(), cpu.forward(r)) <= 1e-4
    emb = np.random.default_rng(9).normal(size=(7, gpu.config.d_model)).astype(np.float32)
    out = gpu.forward(inputs_embeds=emb, device_output=True)
    assert out.shape == (7, 103) and _rel(out.numpy(), cpu.forward(inputs_embeds=emb)) <= 1e-4


@needs_cuda
def test_torch_consumes_without_copy(gpu):
    torch = pytest.importorskip("torch")
    ids = _ids((2, 33), seed=10)
    out = gpu.forward(ids, device_output=True)
    t = torch.from_dlpack(out)
    assert t.is_cuda and t.device.index == 0 and t.dtype == torch.float32 and tuple(t.shape) == out.shape
    assert t.data_ptr() == out.data_ptr  # the same memory, not a copy
    assert torch.from_dlpack(out).data_ptr() == out.data_ptr
    assert _rel(t.cpu().numpy(), gpu.forward(ids)) <= 1e-5
    # torch reads it on a stream of its own
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        t2 = torch.from_dlpack(gpu.forward(ids, device_output=True)).clone()
    s.synchronize()
    assert _rel(t2.cpu().numpy(), gpu.forward(ids)) <= 1e-5


@needs_cuda
def test_cupy_consumes_without_copy(gpu):
    cp = pytest.importorskip("cupy")
    ids = _ids((2, 33), seed=11)
    out = gpu.forward(ids, device_output=True)
    c = cp.from_dlpack(out)
    assert c.shape == out.shape and c.dtype == cp.float32 and c.data.ptr == out.data_ptr
    assert _rel(cp.asnumpy(c), gpu.forward(ids)) <= 1e-5
    c2 = cp.asarray(out)  # through __cuda_array_interface__
    assert c2.data.ptr == out.data_ptr


@pytest.fixture
def jax_gpu():
    """jax (with jax.dlpack and jax.numpy loaded), skipping where it is missing or has no GPU backend."""
    jax = pytest.importorskip("jax")
    import jax.dlpack  # noqa: F401
    import jax.numpy  # noqa: F401

    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("JAX has no GPU backend here")
    return jax


@needs_cuda
def test_jax_consumes(gpu, jax_gpu):
    jax = jax_gpu
    ids = _ids((2, 33), seed=12)
    out = gpu.forward(ids, device_output=True)
    j = jax.dlpack.from_dlpack(out)
    assert j.shape == out.shape and str(j.dtype) == "float32"
    assert next(iter(j.devices())).platform == "gpu"
    assert j.unsafe_buffer_pointer() == out.data_ptr  # zero-copy import
    assert _rel(np.asarray(j), gpu.forward(ids)) <= 1e-5


@needs_cuda
def test_lifetime_after_session_is_gone(model_dir):
    torch = pytest.importorskip("torch")
    s = mambart.Session(model_dir, device="cuda")
    ids = _ids((2, 21), seed=13)
    want = s.forward(ids)
    out = s.forward(ids, device_output=True)
    kept = s.forward(ids, device_output=True)
    t = torch.from_dlpack(out)
    del s, out
    gc.collect()
    torch.cuda.synchronize()
    assert _rel(t.cpu().numpy(), want) <= 1e-5  # the consumer keeps the buffer (and its backend) alive
    assert _rel(kept.numpy(), want) <= 1e-5     # so does the DeviceArray alone
    del t, kept
    gc.collect()


@needs_cuda
def test_device_buffers_are_freed(gpu):
    torch = pytest.importorskip("torch")
    ids = _ids((8, 1024), seed=14)  # 8 * 1024 * 103 * 4 = 3.4 MB per output
    gpu.forward(ids, device_output=True)
    torch.cuda.synchronize()
    free0 = torch.cuda.mem_get_info()[0]
    for _ in range(40):
        t = torch.from_dlpack(gpu.forward(ids, device_output=True))
        del t
    gc.collect()
    free1 = torch.cuda.mem_get_info()[0]
    assert free0 - free1 < 40 * 3_374_592 // 4  # far less than 40 leaked outputs


@needs_cuda
@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_ids_from_torch_cuda(gpu, cpu, dtype):
    torch = pytest.importorskip("torch")
    ids = _ids((3, 19), seed=15)
    want = gpu.forward(ids)
    t = torch.tensor(ids, dtype=getattr(torch, dtype), device="cuda")
    np.testing.assert_array_equal(gpu.forward(t), want)
    np.testing.assert_array_equal(gpu.forward(t[1]), gpu.forward(ids[1]))
    np.testing.assert_array_equal(cpu.forward(t), cpu.forward(ids))  # a CPU session takes CUDA ids too
    wide = torch.tensor(_ids((3, 40), seed=16), dtype=getattr(torch, dtype), device="cuda")
    for view in (wide[:, ::2], wide.t()[:5].t(), wide[:, 3:20], wide[1:, 7:9].t()):
        assert not view.is_contiguous()
        np.testing.assert_array_equal(gpu.forward(view), gpu.forward(view.cpu().numpy()))
    toks = gpu.generate(t[0], max_new_tokens=5, stop_tokens=[])
    np.testing.assert_array_equal(toks, gpu.generate(ids[0], max_new_tokens=5, stop_tokens=[]))


@needs_cuda
def test_torch_device_ids_and_logits_round_trip(gpu):
    """Greedy decoding with everything on the device: argmax of device logits fed back as device ids."""
    torch = pytest.importorskip("torch")
    ids = _ids(9, seed=17)
    st = gpu.new_state()
    tok = torch.from_dlpack(gpu.forward(ids, state=st, logits="last", device_output=True)).argmax(-1)
    got = [int(tok)]
    for _ in range(5):
        tok = torch.from_dlpack(gpu.forward(tok[None], state=st, logits="last", device_output=True)).argmax(-1)
        got.append(int(tok))
    np.testing.assert_array_equal(got, gpu.generate(ids, max_new_tokens=6, stop_tokens=[]))


@needs_cuda
def test_ids_from_cupy(gpu):
    cp = pytest.importorskip("cupy")
    ids = _ids((2, 23), seed=18)
    want = gpu.forward(ids)
    for dtype in (cp.int64, cp.int32):
        c = cp.asarray(ids, dtype=dtype)
        np.testing.assert_array_equal(gpu.forward(c), want)  # DLPack
        np.testing.assert_array_equal(gpu.forward(_CAIOnly(c.__cuda_array_interface__)), want)  # array interface
        wide = cp.asarray(_ids((3, 41), seed=19), dtype=dtype)
        for view in (wide[:, ::3], wide.T[:6].T, wide[::-1, 5:30], wide[:, ::-2]):
            host = cp.asnumpy(view)
            np.testing.assert_array_equal(gpu.forward(view), gpu.forward(host))
            np.testing.assert_array_equal(gpu.forward(_CAIOnly(view.__cuda_array_interface__)), gpu.forward(host))


@needs_cuda
def test_ids_from_jax(gpu, jax_gpu):
    jnp = jax_gpu.numpy
    ids = _ids((2, 23), seed=20)
    np.testing.assert_array_equal(gpu.forward(jnp.asarray(ids, dtype=jnp.int32)), gpu.forward(ids))


@needs_cuda
def test_bad_device_ids(gpu):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="out of range"):
        gpu.forward(torch.tensor([1, 2, 103], device="cuda"))
    with pytest.raises(ValueError, match="out of range"):
        gpu.forward(torch.tensor([[1, -4]], device="cuda", dtype=torch.int32))
    with pytest.raises(TypeError, match="integers"):
        gpu.forward(torch.tensor([1.0, 2.0], device="cuda"))
    with pytest.raises(TypeError, match="integers"):
        gpu.forward(torch.tensor([1, 2], device="cuda", dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="empty"):
        gpu.forward(torch.zeros((1, 0), dtype=torch.int64, device="cuda"))
    host = np.arange(3, dtype=np.int64)  # a host address passed off as CUDA memory
    cai = {"shape": (3,), "typestr": "<i8", "data": (host.ctypes.data, False), "version": 3}
    with pytest.raises(ValueError, match="not CUDA memory"):
        gpu.forward(_CAIOnly(cai))
    cp = pytest.importorskip("cupy")
    with pytest.raises(TypeError, match="integers"):
        gpu.forward(_CAIOnly(cp.asarray([1.0, 2.0]).__cuda_array_interface__))
    with pytest.raises(ValueError, match="out of range"):
        gpu.forward(cp.asarray([5, 1000]))
