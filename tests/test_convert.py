"""The converter (mambart.convert, tools/convert): every input layout, every output dtype, safety, CLI.

Tolerances (max|a-b| / max|b| of the logits vs transformers fp32 on the source; measured with
`PYTHONPATH=python python3 tools/convert/measure_parity.py` on mambart's CPU backend):
  - float32 (or the source dtype kept): <= 1e-5   (observed 1.3e-7 .. 2.2e-7)
  - float16 output:                     <= 2e-2   (observed 2.1e-4 .. 6.3e-4)
  - bfloat16 output:                    <= 2e-2   (observed 2.1e-3 .. 5.0e-3)
The fp16/bf16 error is the rounding of the projection weights; A, D, dt bias, conv and norms stay fp32.
"""
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import ckpt_utils as cu  # noqa: E402
import reference_numpy as rn  # noqa: E402
from mambart.convert import ConvertError, convert, info, main_convert, main_info  # noqa: E402
from mambart.convert.dtypes import f32_to_bf16, to_f32  # noqa: E402
from mambart.convert.safetensors_io import open_safetensors, save_file  # noqa: E402
from mambart.convert.torch_bin import load_bin  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOL = {None: 1e-5, "float32": 1e-5, "float16": 2e-2, "bfloat16": 2e-2}
L = 16


def _runtime_logits(path, ids):
    import mambart

    return mambart.Session(str(path), device="cpu").forward(np.asarray(ids, dtype=np.int64))


# --- source checkpoints ------------------------------------------------------------------------------------------
# Each case builds (model, folder): `model` is the torch reference whose fp32 logits the converted folder must
# reproduce; `folder` is the checkpoint as a user would have it.

SMALL = dict(vocab_size=67, hidden_size=24, state_size=8, num_hidden_layers=2)
UNTIED_BIAS = dict(hidden_size=20, state_size=5, conv_kernel=3, time_step_rank=3, use_bias=True,
                   use_conv_bias=False, tie_word_embeddings=False, residual_in_fp32=False)


def _hf_st(d):
    m = cu.make_hf_model(1, **SMALL)
    return m, cu.save_hf(m, d)


def _hf_st_sharded(d):
    m = cu.make_hf_model(2, **SMALL)
    return m, cu.save_hf(m, d, max_shard_size="20KB")


def _hf_st_untied_bias(d):
    m = cu.make_hf_model(3, **{**SMALL, **UNTIED_BIAS})
    return m, cu.save_hf(m, d)


def _hf_bin(d):
    m = cu.make_hf_model(4, **SMALL)
    return m, cu.save_hf_bin(m, d)


def _hf_bin_sharded_untied(d):
    m = cu.make_hf_model(5, **{**SMALL, **UNTIED_BIAS})
    return m, cu.save_hf_bin(m, d, n_shards=3)


def _hf_bin_bf16(d):
    # stored in bf16: the reference is the fp32 model holding the same bf16-rounded weights
    m = cu.make_hf_model(6, **SMALL).to(torch.bfloat16).to(torch.float32)
    return m, cu.save_hf_bin(m, d, dtype=torch.bfloat16)


def _ss(d):
    m = cu.make_hf_model(7, **{**SMALL, "vocab_size": 64})  # 61 padded to a multiple of 8
    return m, cu.save_state_spaces(m, d, vocab_size=61, pad_vocab_size_multiple=8)


def _ss_unpadded_rows(d):
    m = cu.make_hf_model(8, **{**SMALL, "vocab_size": 64})
    with torch.no_grad():
        m.backbone.embeddings.weight[61:] = 0  # the converter pads the 61 stored rows with zeros
    return m, cu.save_state_spaces(m, d, vocab_size=61, pad_vocab_size_multiple=8, store_rows=61)


def _ss_layernorm_untied(d):
    m = cu.make_layernorm_model(9, **{**SMALL, **UNTIED_BIAS, "vocab_size": 70})
    return m, cu.save_state_spaces(m, d, rms_norm=False, vocab_size=70, pad_vocab_size_multiple=1)


def _ss_legacy(d):
    m = cu.make_hf_model(10, **SMALL)
    return m, cu.save_state_spaces(m, d, vocab_size=67, pad_vocab_size_multiple=1, legacy=True)


CASES = {
    "hf-safetensors": _hf_st,
    "hf-safetensors-sharded": _hf_st_sharded,
    "hf-safetensors-untied-bias": _hf_st_untied_bias,
    "hf-bin": _hf_bin,
    "hf-bin-sharded-untied": _hf_bin_sharded_untied,
    "hf-bin-bf16": _hf_bin_bf16,
    "state-spaces": _ss,
    "state-spaces-unpadded-rows": _ss_unpadded_rows,
    "state-spaces-layernorm-untied": _ss_layernorm_untied,
    "state-spaces-legacy-format": _ss_legacy,
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """name -> (folder, ids, transformers fp32 logits), built once per module."""
    root = tmp_path_factory.mktemp("sources")
    out = {}
    for i, (name, build) in enumerate(CASES.items()):
        model, folder = build(root / name)
        vocab = json.loads((folder / "config.json").read_text())["vocab_size"]  # unpadded for state-spaces
        ids = np.random.default_rng(100 + i).integers(0, vocab, L)
        out[name] = (folder, ids, cu.hf_logits(model, ids))
    return out


def _as_safetensors(folder, dst):
    """The runtime loads safetensors only: the same checkpoint (same names, layout and config) with its .bin
    file(s) rewritten as one model.safetensors, or `folder` itself when it already is safetensors."""
    from safetensors.torch import save_file as st_save

    bins = sorted(folder.glob("*.bin"))
    if not bins:
        return folder
    dst.mkdir()
    sd = {}
    for b in bins:
        sd.update(torch.load(b, weights_only=True))
    st_save({k: v.contiguous().clone() for k, v in sd.items()}, str(dst / "model.safetensors"))
    (dst / "config.json").write_bytes((folder / "config.json").read_bytes())
    return dst


@pytest.mark.parametrize("dtype", [None, "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", list(CASES))
def test_converted_logits_match_transformers(sources, case, dtype, tmp_path):
    src, ids, ref = sources[case]
    dst = convert(src, tmp_path / "out", dtype=dtype)

    cfg, params = rn.load_folder(dst)
    err = cu.rel_err(rn.forward(params, cfg, ids), ref)
    assert err <= TOL[dtype], f"numpy reference on converted {case} {dtype}: rel err {err:.2e}"

    got = _runtime_logits(dst, ids)
    assert got.dtype == np.float32 and got.shape == ref.shape
    err = cu.rel_err(got, ref)
    assert err <= TOL[dtype], f"mambart on converted {case} {dtype}: rel err {err:.2e}"


@pytest.mark.parametrize("case", list(CASES))
def test_converted_equals_direct_load(sources, case, tmp_path):
    src, ids, ref = sources[case]
    dst = convert(src, tmp_path / "out")
    converted = _runtime_logits(dst, ids)
    direct = _runtime_logits(_as_safetensors(src, tmp_path / "direct"), ids)
    n = direct.shape[-1]  # a direct load of unpadded rows has the unpadded width; the converter pads with zeros
    assert converted.shape[-1] >= n and not converted[:, n:].any()
    assert cu.rel_err(converted[:, :n], direct) <= 1e-5


def test_output_layout(sources, tmp_path):
    src, _, _ = sources["state-spaces-layernorm-untied"]
    dst = convert(src, tmp_path / "out", dtype="bf16")
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["model_type"] == "mamba" and cfg["architectures"] == ["MambaForCausalLM"]
    assert cfg["mambart"]["format_version"] == 1 and cfg["mambart"]["dtype"] == "bfloat16"
    assert cfg["mambart"]["rms_norm"] is False and cfg["tie_word_embeddings"] is False
    assert cfg["mambart"]["source"].startswith("state-spaces:")
    assert cfg["eos_token_id"] is None  # state-spaces configs carry no token ids
    t = open_safetensors(dst / "model.safetensors")
    di, dc, ds = cfg["intermediate_size"], cfg["conv_kernel"], cfg["state_size"]
    assert t["backbone.layers.0.mixer.conv1d.weight"].shape == (di, dc)
    assert t["backbone.layers.0.mixer.A"].shape == (di, ds)
    assert not any(n.endswith("A_log") for n in t)
    for name, x in t.items():
        proj = name.endswith(("proj.weight", "embeddings.weight")) or name == "lm_head.weight"
        assert x.dtype == ("BF16" if proj else "F32"), name
    assert "backbone.norm_f.bias" in t and "backbone.layers.1.norm.bias" in t
    assert (t["backbone.layers.1.mixer.A"].load() < 0).all()
    # the safetensors package reads our file
    st = pytest.importorskip("safetensors.torch")
    loaded = st.load_file(str(dst / "model.safetensors"))
    assert set(loaded) == set(t)
    for name in ("backbone.layers.0.mixer.D", "lm_head.weight"):
        np.testing.assert_array_equal(loaded[name].float().numpy(), to_f32(t[name].load(), t[name].dtype))


def test_tied_head_not_written_and_tokenizer_copied(sources, tmp_path):
    src, _, _ = sources["hf-safetensors"]
    (src / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"id": 0, "content": "<eos>"}]}))
    (src / "special_tokens_map.json").write_text(json.dumps({"eos_token": "<eos>"}))
    try:
        dst = convert(src, tmp_path / "out")
    finally:
        (src / "tokenizer.json").unlink()
        (src / "special_tokens_map.json").unlink()
    assert "lm_head.weight" not in open_safetensors(dst / "model.safetensors")
    assert (dst / "tokenizer.json").is_file() and (dst / "special_tokens_map.json").is_file()
    assert json.loads((dst / "config.json").read_text())["tie_word_embeddings"] is True


def test_state_spaces_eos_from_tokenizer_files(sources, tmp_path):
    src, _, _ = sources["state-spaces"]
    work = tmp_path / "ss"
    work.mkdir()
    for f in src.iterdir():
        (work / f.name).symlink_to(f)
    (work / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"id": 60, "content": "<|endoftext|>"}]}))
    (work / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "<|endoftext|>"}}))
    cfg = json.loads((convert(work, tmp_path / "out") / "config.json").read_text())
    assert cfg["eos_token_id"] == 60 and cfg["vocab_size"] == 64 and cfg["mambart"]["vocab_size_unpadded"] == 61


def test_reconvert_converted_folder(sources, tmp_path):
    src, ids, ref = sources["hf-safetensors-untied-bias"]
    a = convert(src, tmp_path / "a")
    b = convert(a, tmp_path / "b", dtype="float16")  # mambart layout in (A, 2-D conv), float16 out
    cfg, params = rn.load_folder(b)
    assert cu.rel_err(rn.forward(params, cfg, ids), ref) <= TOL["float16"]
    assert json.loads((b / "config.json").read_text())["mambart"]["source"].startswith("hf:")


def test_info(sources):
    src, _, _ = sources["hf-safetensors"]
    d = info(src)
    model = cu.make_hf_model(1, **SMALL)
    assert d["layout"] == "hf" and d["weights_format"] == "safetensors"
    assert d["n_params"] == sum(p.numel() for p in model.parameters())
    c = d["config"]
    assert d["state_bytes_per_sequence"] == c["n_layer"] * c["d_inner"] * (c["d_conv"] + c["d_state"]) * 4
    assert d["file_bytes"] == (src / "model.safetensors").stat().st_size
    for case in CASES:
        assert info(sources[case][0])["config"]["n_layer"] == 2


# --- readers -----------------------------------------------------------------------------------------------------

def _odd_state_dict():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 7, generator=g)
    return {
        "a": a, "slice": a[:, 2:5], "row": a[3], "t": a.t(), "half": torch.randn(4, 3, generator=g).half(),
        "bf16": torch.randn(2, 9, generator=g).bfloat16(), "bf16_t": torch.randn(3, 4, generator=g).bfloat16().t(),
        "empty": torch.zeros(0, 3), "param": torch.nn.Parameter(torch.randn(2, generator=g)),
    }


@pytest.mark.parametrize("fmt", ["zip", "legacy", "zip-deflated"])
def test_torch_bin_reader(tmp_path, fmt):
    sd = _odd_state_dict()
    path = tmp_path / "x.bin"
    torch.save(sd, path, _use_new_zipfile_serialization=fmt != "legacy")
    if fmt == "zip-deflated":  # compressed entries are read whole instead of memory-mapped
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp_path / "y.bin", "w", zipfile.ZIP_DEFLATED) as zout:
            for item in zin.infolist():
                zout.writestr(item.filename, zin.read(item.filename))
        path = tmp_path / "y.bin"
    got = load_bin(path)
    assert list(got) == list(sd)
    for name, ref in sd.items():
        arr = to_f32(got[name].load(), got[name].dtype)
        np.testing.assert_array_equal(arr, ref.detach().float().numpy(), err_msg=name)


def test_bf16_rounding_matches_torch():
    x = np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 100
    x[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 3.4e38]
    bits = np.array([0x3F808000, 0x3F818000, 0x3F80C000], np.uint32).view(np.float32)  # ties, odd/even
    x = np.concatenate([x, bits])
    want = torch.from_numpy(x).bfloat16().view(torch.int16).numpy().view(np.uint16)
    got = f32_to_bf16(x)
    finite = ~np.isnan(x)
    np.testing.assert_array_equal(got[finite], want[finite])
    assert np.isnan(to_f32(got[~finite], "BF16")).all()


@pytest.mark.parametrize("src,dst", [("F32", "BF16"), ("F32", "F16"), ("BF16", "F16"), ("F16", "F32")])
def test_chunked_cast(monkeypatch, src, dst):
    from mambart.convert import dtypes

    x = dtypes.cast(np.random.default_rng(2).standard_normal((13, 5)).astype(np.float32), "F32", src)
    whole = dtypes.cast(x, src, dst)
    monkeypatch.setattr(dtypes, "CHUNK", 7)  # large tensors are converted chunk by chunk
    chunked = dtypes.cast(x, src, dst)
    assert chunked.shape == whole.shape and chunked.dtype == whole.dtype
    np.testing.assert_array_equal(chunked, whole)


def test_safetensors_roundtrip_and_package_files(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file as st_save

    rng = np.random.default_rng(1)
    tensors = {"a": ("F32", rng.standard_normal((3, 4)).astype(np.float32)),
               "b": ("F16", rng.standard_normal(5).astype(np.float16)),
               "c": ("BF16", f32_to_bf16(rng.standard_normal((2, 2)).astype(np.float32))),
               "scalar": ("F32", np.array(3.5, np.float32)), "empty": ("F16", np.zeros((0, 4), np.float16))}
    save_file(tensors, tmp_path / "ours.safetensors")
    st_save({k: v for k, (_, v) in tensors.items() if k != "c"}, str(tmp_path / "theirs.safetensors"))
    with safe_open(str(tmp_path / "ours.safetensors"), "np") as f:  # the package reads ours
        for k in ("a", "b", "scalar", "empty"):
            np.testing.assert_array_equal(f.get_tensor(k), tensors[k][1])
    for fname in ("ours.safetensors", "theirs.safetensors"):
        got = open_safetensors(tmp_path / fname)
        for k, t in got.items():
            np.testing.assert_array_equal(t.load(), tensors[k][1])
    assert open_safetensors(tmp_path / "ours.safetensors")["c"].dtype == "BF16"


def test_progress_bar():
    import io

    from mambart.convert.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    plain, tty = io.StringIO(), Tty()
    for stream in (plain, tty):
        bar = Progress(1000, "conv", stream=stream, min_bytes=100)
        for _ in range(10):
            bar.update(100)
        bar.close()
    assert plain.getvalue().splitlines()[-1] == "conv: 100% of 0.00 GiB" and len(plain.getvalue().splitlines()) == 10
    assert tty.getvalue().startswith("\rconv [") and "100%" in tty.getvalue() and tty.getvalue().endswith("\n")
    quiet = io.StringIO()
    Progress(1000, stream=quiet, min_bytes=10**6).update(1000)  # small conversions print nothing
    assert quiet.getvalue() == ""


# --- refusals and errors -----------------------------------------------------------------------------------------

class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def _hf_config_folder(folder):
    folder.mkdir(parents=True, exist_ok=True)
    cu.make_hf_model(0, **SMALL).config.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["zip-os.system", "zip-eval", "legacy-os.system", "nested"])
def test_malicious_pickle_is_refused(tmp_path, kind):
    marker = tmp_path / "pwned"
    folder = _hf_config_folder(tmp_path / "evil")
    if kind.endswith("os.system"):
        payload = _Evil(os.system, f"touch {marker}")
    elif kind == "zip-eval":
        payload = _Evil(eval, f"open({str(marker)!r}, 'w').close()")
    else:  # hidden inside an otherwise plausible state dict
        payload = {"backbone.embeddings.weight": _Evil(os.system, f"touch {marker}")}
    data = pickle.dumps(payload, protocol=4 if kind == "zip-eval" else 2)  # GLOBAL and STACK_GLOBAL opcodes
    if kind.startswith("legacy"):
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + data)
    else:
        with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as z:
            z.writestr("archive/data.pkl", data)
            z.writestr("archive/byteorder", "little")
    refused = r"refusing to unpickle global '(posix|os|nt|builtins|__builtin__)\.(system|eval)'"
    with pytest.raises(ConvertError, match=refused):
        convert(folder, tmp_path / "out")
    with pytest.raises(ConvertError, match="refusing to unpickle"):
        info(folder)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_truncated_bin(sources, tmp_path):
    src, _, _ = sources["hf-bin"]
    folder = _hf_config_folder(tmp_path / "trunc")
    data = (src / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConvertError, match="truncated"):
        convert(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_legacy_bin(sources, tmp_path):
    src, _, _ = sources["state-spaces-legacy-format"]
    folder = tmp_path / "trunc"
    folder.mkdir()
    (folder / "config.json").write_bytes((src / "config.json").read_bytes())
    data = (src / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[:-100])
    with pytest.raises(ConvertError, match="truncated"):
        convert(folder, tmp_path / "out")


def test_truncated_safetensors(sources, tmp_path):
    src, _, _ = sources["hf-safetensors"]
    folder = _hf_config_folder(tmp_path / "trunc")
    data = (src / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-64])
    with pytest.raises(ConvertError, match="truncated"):
        convert(folder, tmp_path / "out")


def test_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConvertError, match="huggingface-cli download state-spaces/mamba-130m"):
        convert("state-spaces/mamba-130m", "out")


def test_existing_destination(sources, tmp_path):
    src, ids, ref = sources["hf-safetensors"]
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    with pytest.raises(ConvertError, match="already exists.*--force"):
        convert(src, dst)
    assert (dst / "old.txt").exists()
    convert(src, dst, force=True)
    assert not (dst / "old.txt").exists() and (dst / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or old folders left
    with pytest.raises(ConvertError, match="must not be the source"):
        convert(src, src, force=True)


def test_failed_conversion_leaves_nothing(sources, tmp_path, monkeypatch):
    from mambart.convert import safetensors_io

    src, _, _ = sources["hf-safetensors"]
    calls = []
    real = safetensors_io.SafetensorsWriter.write

    def failing_write(self, name, arr):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("No space left on device (simulated)")
        return real(self, name, arr)

    monkeypatch.setattr(safetensors_io.SafetensorsWriter, "write", failing_write)
    with pytest.raises(OSError, match="simulated"):
        convert(src, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("variant", ["model_type", "ssm_cfg", "tensors"])
def test_mamba2_refused(tmp_path, variant):
    folder = tmp_path / "m2"
    folder.mkdir()
    if variant == "model_type":
        cfg = {"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100}
    elif variant == "ssm_cfg":
        cfg = {"d_model": 64, "n_layer": 2, "vocab_size": 100, "ssm_cfg": {"layer": "Mamba2"}}
    else:  # a Mamba-2 checkpoint behind a Mamba-1-looking config
        cfg = {"d_model": 8, "n_layer": 1, "vocab_size": 16}
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file({"backbone.layers.0.mixer.dt_bias": ("F32", np.ones(4, np.float32)),
               "backbone.layers.0.mixer.norm.weight": ("F32", np.ones(32, np.float32))},
              folder / "model.safetensors")
    with pytest.raises(ConvertError, match="Mamba-2 is not supported yet"):
        convert(folder, tmp_path / "out")


def _copy_with(src, folder, edit):
    """A copy of the safetensors checkpoint at `src` with its tensor dict changed by edit(dict)."""
    folder.mkdir()
    (folder / "config.json").write_bytes((src / "config.json").read_bytes())
    tensors = {n: (t.dtype, np.array(t.load())) for n, t in open_safetensors(src / "model.safetensors").items()}
    edit(tensors)
    save_file(tensors, folder / "model.safetensors")
    return folder


def test_missing_tensor(sources, tmp_path):
    src, _, _ = sources["hf-safetensors"]
    folder = _copy_with(src, tmp_path / "m", lambda t: t.pop("backbone.layers.1.mixer.D"))
    with pytest.raises(ConvertError, match=r"'backbone\.layers\.1\.mixer\.D' is missing"):
        convert(folder, tmp_path / "out")


def test_wrong_shape(sources, tmp_path):
    src, _, _ = sources["hf-safetensors"]

    def edit(t):
        t["backbone.layers.0.mixer.x_proj.weight"] = ("F32", np.ones((18, 40), np.float32))

    folder = _copy_with(src, tmp_path / "m", edit)
    with pytest.raises(ConvertError, match=r"x_proj\.weight': expected shape \(18, 48\), found \(18, 40\)"):
        convert(folder, tmp_path / "out")


def test_unexpected_tensor(sources, tmp_path):
    src, _, _ = sources["hf-safetensors"]

    def edit(t):
        t["backbone.layers.2.norm.weight"] = ("F32", np.ones(24, np.float32))

    folder = _copy_with(src, tmp_path / "m", edit)
    with pytest.raises(ConvertError, match=r"unexpected tensors.*layers\.2\.norm\.weight"):
        convert(folder, tmp_path / "out")


def test_bad_config_values(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    save_file({"x": ("F32", np.ones(1, np.float32))}, folder / "model.safetensors")
    for cfg, msg in [({"model_type": "mamba", "num_hidden_layers": 2, "vocab_size": 10}, "missing field 'hidden_size'"),
                     ({"model_type": "llama"}, "model_type 'llama' is not supported"),
                     ({"foo": 1}, "unknown architecture"),
                     ({"d_model": -3, "n_layer": 1, "vocab_size": 5}, "'d_model' must be an integer")]:
        (folder / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(ConvertError, match=msg):
            convert(folder, tmp_path / "out")


# --- command line ------------------------------------------------------------------------------------------------

def test_cli_main_functions(sources, tmp_path, capsys):
    src, _, _ = sources["state-spaces"]
    assert main_convert([str(src), str(tmp_path / "out"), "--dtype", "fp16", "-q"]) == 0
    assert main_convert([str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main_convert(["state-spaces/mamba-2.8b", str(tmp_path / "o2")]) == 2
    assert "huggingface-cli download" in capsys.readouterr().err
    assert main_info([str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "layout:        mambart" in out and "per sequence" in out and "float16" in out
    assert main_info([str(src), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layout"] == "state-spaces"
    assert main_info([str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit) as e:
        main_convert(["--help"])
    assert e.value.code == 0
    with pytest.raises(SystemExit) as e:
        main_convert([str(src), str(tmp_path / "o3"), "--dtype", "int8"])
    assert e.value.code == 2


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    import mambart

    pkg_parent = str(Path(mambart.__path__[-1]).parent)  # the python/ folder this test imports mambart from
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [pkg_parent])
    return env


def test_cli_subprocesses(sources, tmp_path):
    src, _, _ = sources["hf-bin"]
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)  # noqa: E731
    r = run(sys.executable, "-m", "mambart.convert", str(src), str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a" / "model.safetensors").is_file()
    r = run(sys.executable, "-m", "mambart.convert", str(tmp_path / "missing"), str(tmp_path / "b"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr
    r = run(sys.executable, str(REPO / "tools" / "convert" / "convert.py"), str(src), str(tmp_path / "c"),
            "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "c" / "config.json").read_text())["mambart"]["dtype"] == "bfloat16"


NO_TORCH = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "transformers", "safetensors"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, Block())
from mambart.convert import main_convert, main_info
rc = main_convert(sys.argv[1:3] + ["-q"]) or main_info([sys.argv[2]])
assert not any(m.split(".")[0] in ("torch", "transformers", "safetensors") for m in sys.modules)
sys.exit(rc)
"""


@pytest.mark.parametrize("case", ["state-spaces", "hf-bin-sharded-untied", "hf-safetensors-sharded"])
def test_converts_without_torch(sources, tmp_path, case):
    src, ids, ref = sources[case]
    r = subprocess.run([sys.executable, "-c", NO_TORCH, str(src), str(tmp_path / "out")], capture_output=True,
                       text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert cu.rel_err(_runtime_logits(tmp_path / "out", ids), ref) <= 1e-5
