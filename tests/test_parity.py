"""End-to-end parity against transformers.MambaForCausalLM (fp32): logits, greedy tokens, states.

Tolerance: max|a - b| / max|b| <= 1e-5 for logits (fp32, different summation order)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import mambart
from ckpt_utils import hf_cache_states, hf_greedy, hf_logits, make_hf_model, rel_err, save_hf, to_state_spaces

CONFIGS = {
    "base": {},
    "odd_sizes": dict(hidden_size=37, vocab_size=97, state_size=7, num_hidden_layers=2, time_step_rank=5),
    "bias_no_conv_bias": dict(use_bias=True, use_conv_bias=False),
    "conv3_untied_no_fp32_residual": dict(conv_kernel=3, tie_word_embeddings=False, residual_in_fp32=False),
    "conv2_expand3_state1": dict(conv_kernel=2, expand=3, state_size=1, hidden_size=24),
    "conv5_rank_auto_wide": dict(conv_kernel=5, hidden_size=80, num_hidden_layers=2, state_size=17),
}
DEVICES = ["cpu", "ref"]


@pytest.fixture(scope="module", params=list(CONFIGS))
def model_dir(request, tmp_path_factory):
    model = make_hf_model(seed=list(CONFIGS).index(request.param), **CONFIGS[request.param])
    folder = save_hf(model, tmp_path_factory.mktemp(request.param))
    return request.param, model, folder


@pytest.mark.parametrize("device", DEVICES)
def test_logits_match_transformers(model_dir, device):
    name, model, folder = model_dir
    rng = np.random.default_rng(1)
    ids = rng.integers(0, model.config.vocab_size, size=(2, 29))
    ref = hf_logits(model, ids)
    s = mambart.Session(folder, device=device)
    out = s.forward(ids)
    assert out.dtype == np.float32 and out.shape == ref.shape
    err = rel_err(out, ref)
    print(f"PARITY {name} {device} max_rel_logit_err={err:.3e}")
    assert err <= 1e-5
    # a 1-D input gives (L, vocab)
    single = s.forward(ids[0].tolist())
    assert single.shape == ref.shape[1:] and rel_err(single, ref[0]) <= 1e-5


def test_greedy_tokens_match_transformers(model_dir):
    name, model, folder = model_dir
    prompt = np.random.default_rng(2).integers(0, model.config.vocab_size, size=9)
    expected = hf_greedy(model, prompt, 32)
    got = mambart.Session(folder, device="cpu").generate(prompt, max_new_tokens=32, stop_tokens=[])
    assert got.dtype == np.int64 and got.shape == (32,)
    np.testing.assert_array_equal(got, expected)


def test_prefill_then_steps_equals_long_forward(model_dir):
    _, model, folder = model_dir
    s = mambart.Session(folder, device="cpu")
    ids = np.random.default_rng(3).integers(0, model.config.vocab_size, size=(3, 40))
    full = s.forward(ids)
    state = s.new_state(3)
    parts = [s.forward(ids[:, :17], state=state)]
    for t in range(17, 23):
        parts.append(s.forward(ids[:, t : t + 1], state=state))
    parts.append(s.forward(ids[:, 23:], state=state))
    assert rel_err(np.concatenate(parts, axis=1), full) <= 1e-5


def test_state_after_prefill_equals_transformers_cache(model_dir):
    _, model, folder = model_dir
    ids = np.random.default_rng(4).integers(0, model.config.vocab_size, size=(2, 21))
    conv_ref, ssm_ref = hf_cache_states(model, ids)
    s = mambart.Session(folder, device="cpu")
    state = s.new_state(2)
    s.forward(ids, state=state)
    conv, ssm = state.conv, state.ssm
    for layer in range(model.config.num_hidden_layers):
        assert rel_err(conv[layer], conv_ref[layer]) <= 1e-5
        assert rel_err(ssm[layer], ssm_ref[layer]) <= 1e-5
    # stepping token by token leaves the same state as the prefill
    stepped = s.new_state(2)
    for t in range(ids.shape[1]):
        s.forward(ids[:, t : t + 1], state=stepped)
    assert rel_err(stepped.ssm, ssm) <= 1e-5 and rel_err(stepped.conv, conv) <= 1e-6


def test_state_spaces_layout_same_logits(tmp_path):
    model = make_hf_model(seed=5)
    hf_dir = save_hf(model, tmp_path / "hf")
    ss_dir = to_state_spaces(hf_dir, tmp_path / "ss", pad_vocab_size_multiple=8)
    s = mambart.Session(ss_dir, device="cpu")
    assert s.config.vocab_size == 104 and s.config.layout == "state-spaces"
    ids = np.random.default_rng(6).integers(0, 101, size=(1, 19))
    out = s.forward(ids)
    assert out.shape == (1, 19, 104)
    assert rel_err(out[..., :101], hf_logits(model, ids)) <= 1e-5


def test_prefill_longer_than_a_chunk(tmp_path):
    model = make_hf_model(seed=7, num_hidden_layers=2, hidden_size=16)
    folder = save_hf(model, tmp_path)
    ids = np.random.default_rng(8).integers(0, 101, size=(1, 1500))  # > 1024-token chunks
    s = mambart.Session(folder, device="cpu")
    assert rel_err(s.forward(ids, logits="last"), hf_logits(model, ids)[:, -1]) <= 1e-5


def test_sharded_checkpoint(tmp_path):
    model = make_hf_model(seed=9)
    folder = save_hf(model, tmp_path, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").exists()
    ids = np.random.default_rng(10).integers(0, 101, size=(1, 12))
    assert rel_err(mambart.Session(folder, device="cpu").forward(ids), hf_logits(model, ids)) <= 1e-5


def _round_projections(model, dtype):
    """A copy of `model` whose projection weights (and embedding/head) are rounded through `dtype`, the
    SSM parameters and norms kept in fp32: what mambart computes with half-precision projections."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(("proj.weight", "embeddings.weight", "lm_head.weight")):
                p.copy_(p.to(dtype).float())
    return m


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoint(tmp_path, dtype):
    """An fp16/bf16 checkpoint is used as stored (fp32 compute): equal to HF on the rounded weights."""
    model = make_hf_model(seed=12)
    half = _round_projections(model, dtype)
    stored = make_hf_model(seed=12)
    stored.load_state_dict(half.state_dict())
    folder = save_hf(stored.to(dtype), tmp_path)
    s = mambart.Session(folder, device="cpu")
    assert s.dtype == {torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype]
    ids = np.random.default_rng(13).integers(0, 101, size=(1, 21))
    # HF rounds A_log, D, norms... too when the whole model is stored in half precision
    ref = hf_logits(stored.float(), ids)
    assert rel_err(s.forward(ids), ref) <= 1e-5


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_conversion_at_load(tmp_path, dtype):
    model = make_hf_model(seed=14)
    folder = save_hf(model, tmp_path)
    s = mambart.Session(folder, device="cpu", dtype=dtype)
    assert s.dtype == dtype
    ids = np.random.default_rng(15).integers(0, 101, size=(1, 16))
    ref = hf_logits(_round_projections(model, getattr(torch, dtype)), ids)
    assert rel_err(s.forward(ids), ref) <= 1e-5
    assert rel_err(s.forward(ids), hf_logits(model, ids)) <= 2e-2
