"""Bad input raises a Python exception naming the problem; the process never crashes."""
import json
import struct

import numpy as np
import pytest

import mambart

safetensors_numpy = pytest.importorskip("safetensors.numpy")
pytest.importorskip("transformers")
from ckpt_utils import make_hf_model, save_hf


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    return save_hf(make_hf_model(seed=11, num_hidden_layers=2), tmp_path_factory.mktemp("good"))


def _copy_with(good_dir, dst, tensors=None, config=None):
    dst.mkdir()
    cfg = json.loads((good_dir / "config.json").read_text())
    if config:
        cfg.update(config)
    (dst / "config.json").write_text(json.dumps(cfg))
    w = safetensors_numpy.load_file(str(good_dir / "model.safetensors"))
    if tensors:
        tensors(w)
    safetensors_numpy.save_file(w, str(dst / "model.safetensors"))
    return dst


def test_missing_tensor(good_dir, tmp_path):
    d = _copy_with(good_dir, tmp_path / "m", tensors=lambda w: w.pop("backbone.layers.1.mixer.x_proj.weight"))
    with pytest.raises(ValueError, match=r"missing tensor 'backbone.layers.1.mixer.x_proj.weight'"):
        mambart.Session(d, device="cpu")


def test_wrong_shape(good_dir, tmp_path):
    def shrink(w):
        w["backbone.layers.0.mixer.out_proj.weight"] = w["backbone.layers.0.mixer.out_proj.weight"][:, :50].copy()

    d = _copy_with(good_dir, tmp_path / "m", tensors=shrink)
    with pytest.raises(ValueError, match=r"out_proj.weight': expected \(48, 96\) F32, got \(48, 50\)"):
        mambart.Session(d, device="cpu")


def test_truncated_file(good_dir, tmp_path):
    d = _copy_with(good_dir, tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) - 1000])
    with pytest.raises(ValueError, match="model.safetensors"):
        mambart.Session(d, device="cpu")


def test_header_length_beyond_file(good_dir, tmp_path):
    d = _copy_with(good_dir, tmp_path / "m")
    data = bytearray((d / "model.safetensors").read_bytes())
    data[:8] = struct.pack("<Q", len(data) * 10)
    (d / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="header"):
        mambart.Session(d, device="cpu")


def test_unknown_dtype(good_dir, tmp_path):
    d = _copy_with(good_dir, tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = data[8 : 8 + n].replace(b'"F32"', b'"Q7X"', 1)
    (d / "model.safetensors").write_bytes(data[:8] + header + data[8 + n :])
    with pytest.raises(ValueError, match="Q7X"):
        mambart.Session(d, device="cpu")


def test_integer_dtype_tensor_rejected(good_dir, tmp_path):
    def to_int(w):
        w["backbone.norm_f.weight"] = w["backbone.norm_f.weight"].astype(np.int32)

    d = _copy_with(good_dir, tmp_path / "m", tensors=to_int)
    with pytest.raises(ValueError, match=r"backbone.norm_f.weight.*I32"):
        mambart.Session(d, device="cpu")


def test_unknown_model_type(good_dir, tmp_path):
    d = _copy_with(good_dir, tmp_path / "m", config={"model_type": "llama"})
    with pytest.raises(ValueError, match="llama"):
        mambart.Session(d, device="cpu")


def test_mamba2_rejected(good_dir, tmp_path):
    d = _copy_with(good_dir, tmp_path / "m", config={"model_type": "mamba2"})
    with pytest.raises(ValueError, match="Mamba-2"):
        mambart.Session(d, device="cpu")


def test_missing_path():
    with pytest.raises(FileNotFoundError):
        mambart.Session("/nonexistent/model", device="cpu")


def test_unknown_device(good_dir):
    with pytest.raises(ValueError, match="unknown device"):
        mambart.Session(good_dir, device="tpu")


def test_cuda_unavailable_is_clear(good_dir):
    if mambart.cuda_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="CUDA"):
        mambart.Session(good_dir, device="cuda")


@pytest.mark.parametrize(
    "ids, exc, pattern",
    [
        ([1, 2, 101], ValueError, "101.*out of range"),
        ([1, -1, 2], ValueError, "-1.*out of range"),
        ([], ValueError, "empty"),
        (np.zeros((2, 0), np.int64), ValueError, "empty"),
        (np.array([1.5, 2.0]), TypeError, "integers"),
        (np.array([True, False]), TypeError, "integers"),
        ("hello", ValueError, "tokenizer"),
        ([[1, 2], [3]], ValueError, None),
        ([2**40], ValueError, "out of range"),
        (np.ones((1, 2, 3), np.int64), ValueError, "shape"),
    ],
)
def test_bad_ids(good_dir, ids, exc, pattern):
    s = mambart.Session(good_dir, device="cpu")
    if isinstance(ids, list) and ids and isinstance(ids[0], list) and len({len(r) for r in ids}) > 1:
        # ragged rows are valid input: each row is processed on its own
        out = s.forward(ids)
        assert [o.shape for o in out] == [(2, 101), (1, 101)]
        return
    with pytest.raises(exc, match=pattern):
        s.forward(ids)
    with pytest.raises(exc, match=pattern):
        s.generate(ids, max_new_tokens=2)
    # the session stays usable
    assert s.forward([1, 2, 3]).shape == (3, 101)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(top_p=1.5), "top_p"),
        (dict(top_p=0.0), "top_p"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_k=-2), "top_k"),
        (dict(min_p=2.0), "min_p"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
    ],
)
def test_bad_generation_options(good_dir, kwargs, pattern):
    s = mambart.Session(good_dir, device="cpu")
    with pytest.raises(ValueError, match=pattern):
        s.generate([1, 2, 3], **kwargs)


def test_state_mismatch(good_dir):
    s = mambart.Session(good_dir, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        s.forward(np.ones((2, 3), np.int64), state=s.new_state(1))
    with pytest.raises(ValueError):
        s.new_state(0)


class _DLPackOnly:
    """An array exposing only the DLPack protocol (as JAX/CuPy arrays do), backed by numpy."""

    def __init__(self, a):
        self._a = np.ascontiguousarray(a)

    def __dlpack__(self, **kw):
        return self._a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_ids_from_dlpack_and_torch(good_dir):
    s = mambart.Session(good_dir, device="cpu")
    ids = np.array([[1, 5, 9, 2]], np.int64)
    ref = s.forward(ids)
    assert np.array_equal(s.forward(_DLPackOnly(ids)), ref)
    torch = pytest.importorskip("torch")
    assert np.array_equal(s.forward(torch.tensor(ids)), ref)
