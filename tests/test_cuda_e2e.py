"""End to end on CUDA: logits against the CPU backend and transformers, greedy tokens against the CPU backend,
state after a CUDA prefill against stepping, batched generation (CUDA-graph decode) against single rows.
Tolerances (max |a - b| / max |b|): fp32 1e-4, fp16/bf16 2e-2. Skips at module level without a CUDA device."""
import numpy as np
import pytest

import mambart
import mambart._core as core

if not core.cuda_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

from ckpt_utils import hf_logits, make_hf_model, rel_err, save_hf  # noqa: E402

CONFIGS = {
    "base": {},
    "odd": dict(hidden_size=40, state_size=8, conv_kernel=3, num_hidden_layers=2, vocab_size=97, use_bias=True,
                use_conv_bias=False, time_step_rank=5),
    "untied_no_fp32_resid": dict(tie_word_embeddings=False, residual_in_fp32=False, state_size=24),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def model_dir(request, tmp_path_factory):
    model = make_hf_model(seed=10 + list(CONFIGS).index(request.param), **CONFIGS[request.param])
    folder = save_hf(model, tmp_path_factory.mktemp("cuda_" + request.param))
    return request.param, model, folder


@pytest.fixture(params=["auto", "persistent"])
def decode_mode(request, monkeypatch):
    """The decode path picked by size (small test models: per-layer kernels) or forced to the persistent decode
    step (MAMBART_CUDA_PERSISTENT=1; used where it applies: d_state % 16 == 0, 16-byte rows)."""
    if request.param == "persistent":
        monkeypatch.setenv("MAMBART_CUDA_PERSISTENT", "1")
    return request.param


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("float16", 2e-2), ("bfloat16", 2e-2)])
def test_logits_match_cpu_and_transformers(model_dir, dtype, tol):
    name, model, folder = model_dir
    ids = np.random.default_rng(1).integers(0, model.config.vocab_size, size=(2, 29))
    ref = hf_logits(model, ids)
    s = mambart.Session(folder, device="cuda", dtype=dtype)
    assert s.device.startswith("cuda")
    out = s.forward(ids)
    assert out.shape == ref.shape and out.dtype == np.float32
    e_hf = rel_err(out, ref)
    cpu = mambart.Session(folder, device="cpu").forward(ids)
    e_cpu = rel_err(out, cpu)
    print(f"CUDA_PARITY {name} {dtype} vs_hf={e_hf:.3e} vs_cpu={e_cpu:.3e}")
    assert e_hf <= tol and e_cpu <= tol


def test_greedy_tokens_equal_cpu(model_dir, decode_mode):
    _, model, folder = model_dir
    prompt = np.random.default_rng(2).integers(0, model.config.vocab_size, size=9)
    want = mambart.Session(folder, device="cpu").generate(prompt, max_new_tokens=32, stop_tokens=[])
    got = mambart.Session(folder, device="cuda").generate(prompt, max_new_tokens=32, stop_tokens=[])
    np.testing.assert_array_equal(got, want)


def test_state_after_prefill_equals_stepping(model_dir, decode_mode):
    _, model, folder = model_dir
    s = mambart.Session(folder, device="cuda")
    ids = np.random.default_rng(3).integers(0, model.config.vocab_size, size=(2, 37))
    a = s.new_state(2)
    la = s.forward(ids, state=a)
    b = s.new_state(2)
    steps = [s.forward(ids[:, t:t + 1], state=b) for t in range(ids.shape[1])]
    assert rel_err(a.conv, b.conv) <= 1e-5
    assert rel_err(a.ssm, b.ssm) <= 1e-4
    assert rel_err(la[:, -1], steps[-1][:, 0]) <= 1e-4


def test_batched_generate_equals_single_rows(model_dir, decode_mode):
    """Batch decode runs through a recorded CUDA graph; each row must equal generating it alone."""
    _, model, folder = model_dir
    s = mambart.Session(folder, device="cuda")
    prompts = np.random.default_rng(4).integers(0, model.config.vocab_size, size=(3, 11))
    batch = s.generate(prompts, max_new_tokens=20, stop_tokens=[])
    for r in range(3):
        np.testing.assert_array_equal(batch[r], s.generate(prompts[r], max_new_tokens=20, stop_tokens=[]))
    # same seed, same sampled tokens
    a = s.generate(prompts, max_new_tokens=10, temperature=0.8, top_k=20, top_p=0.9, seed=7, stop_tokens=[])
    b = s.generate(prompts, max_new_tokens=10, temperature=0.8, top_k=20, top_p=0.9, seed=7, stop_tokens=[])
    np.testing.assert_array_equal(a, b)


def test_batched_decode_equals_cpu(model_dir):
    """Batch > 8 decode (the batched step where it applies: base config; composed otherwise) against the CPU backend:
    logits of forward steps (fp32 1e-4) and greedy tokens of generate (the decode step recorded in a CUDA graph)."""
    _, model, folder = model_dir
    rows = 12
    ids = np.random.default_rng(7).integers(0, model.config.vocab_size, size=(rows, 9))
    gpu, cpu = mambart.Session(folder, device="cuda"), mambart.Session(folder, device="cpu")
    a, b = gpu.new_state(rows), cpu.new_state(rows)
    gpu.forward(ids[:, :5], state=a)
    cpu.forward(ids[:, :5], state=b)
    for t in range(5, 9):
        assert rel_err(gpu.forward(ids[:, t:t + 1], state=a), cpu.forward(ids[:, t:t + 1], state=b)) <= 1e-4
    assert rel_err(a.ssm, b.ssm) <= 1e-4
    want = cpu.generate(ids, max_new_tokens=12, stop_tokens=[])
    np.testing.assert_array_equal(gpu.generate(ids, max_new_tokens=12, stop_tokens=[]), want)


@pytest.mark.parametrize("segments", ["1", "4"])
def test_prefill_longer_than_a_chunk(tmp_path, monkeypatch, segments):
    """5000 tokens: two CUDA chunks, the scan in one segment or in time segments (MAMBART_SCAN_SEGMENTS)."""
    monkeypatch.setenv("MAMBART_SCAN_SEGMENTS", segments)
    model = make_hf_model(seed=5)
    folder = save_hf(model, tmp_path / "m")
    ids = np.random.default_rng(5).integers(0, model.config.vocab_size, size=(1, 5000))
    s = mambart.Session(folder, device="cuda")
    st = s.new_state(1)
    gpu = s.forward(ids, state=st)
    c = mambart.Session(folder, device="cpu")
    cst = c.new_state(1)
    cpu = c.forward(ids, state=cst)
    assert rel_err(gpu[:, -50:], cpu[:, -50:]) <= 1e-4
    assert rel_err(st.ssm, cst.ssm) <= 1e-4


def test_unknown_cuda_index_raises():
    with pytest.raises(RuntimeError, match="does not exist"):
        core._OpRunner("cuda:99")


def test_sampled_tokens_equal_cpu(model_dir, decode_mode):
    """The recorded decode loop (ids fed back on the device, sampler in the graph with its step read from a device
    counter) draws with the same (seed, row, step) as the CPU backend: fp32 sampled tokens agree. Two calls on one
    session reuse the recording and restart the counter; the penalty path (sampler outside the graph) agrees too."""
    _, model, folder = model_dir
    prompts = np.random.default_rng(6).integers(0, model.config.vocab_size, size=(3, 7))
    kw = dict(max_new_tokens=16, temperature=0.9, top_k=30, top_p=0.95, stop_tokens=[])
    cpu = mambart.Session(folder, device="cpu")
    gpu = mambart.Session(folder, device="cuda")
    for seed in (3, 4):
        want = cpu.generate(prompts, seed=seed, **kw)
        np.testing.assert_array_equal(gpu.generate(prompts, seed=seed, **kw), want)
        np.testing.assert_array_equal(gpu.generate(prompts, seed=seed, **kw), want)
    pen = dict(max_new_tokens=12, repetition_penalty=1.3, stop_tokens=[])
    np.testing.assert_array_equal(gpu.generate(prompts, **pen), cpu.generate(prompts, **pen))
