"""Generation features: sampling controls, seeds, ragged batches, state reuse, streaming, scores, hidden states."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import mambart
from mambart import _core
from ckpt_utils import hf_greedy, hf_logits, make_hf_model, rel_err, save_hf

V = 101


@pytest.fixture(scope="module")
def model_and_session(tmp_path_factory):
    model = make_hf_model(seed=21)
    folder = save_hf(model, tmp_path_factory.mktemp("gen"))
    return model, mambart.Session(folder, device="cpu")


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


# ---- sampling statistics (the reference sampler; every backend's sampler is checked against it) --------
@pytest.mark.parametrize("device", ["ref", "cpu"])
def test_sampling_follows_softmax(device):
    runner = _core._OpRunner(device)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 12)).astype(np.float32) * 2
    n = 4000
    counts = np.zeros(12)
    for step in range(n):
        counts[runner.sample(logits, temperature=0.7, seed=123, step=step)[0]] += 1
    expected = softmax(logits[0] / 0.7)
    # 4000 draws: standard error <= 0.008; allow 5 sigma
    assert np.abs(counts / n - expected).max() < 0.04


@pytest.mark.parametrize("device", ["ref", "cpu"])
def test_top_k_top_p_min_p_restrict_support(device):
    runner = _core._OpRunner(device)
    logits = np.log(np.array([[0.4, 0.3, 0.15, 0.1, 0.05]], np.float32))
    seen = lambda **kw: {int(runner.sample(logits, temperature=1.0, seed=7, step=s, **kw)[0]) for s in range(400)}
    assert seen(top_k=2) == {0, 1}
    assert seen(top_p=0.7) == {0, 1}          # 0.4 + 0.3 reaches 0.7
    assert seen(top_p=0.71) == {0, 1, 2}
    assert seen(min_p=0.3) == {0, 1, 2}       # 0.15 >= 0.3 * 0.4 = 0.12; 0.1 is not
    assert seen() == {0, 1, 2, 3, 4}
    assert int(runner.sample(logits, temperature=0.0)[0]) == 0


@pytest.mark.parametrize("device", ["ref", "cpu"])
def test_repetition_penalty_hf_semantics(device):
    runner = _core._OpRunner(device)
    logits = np.array([[2.0, 1.9, -0.5, -0.45]], np.float32)
    hist = np.array([[0, 3]], np.int32)
    # penalty 1.2: logit 2.0 -> 1.667 (< 1.9) and -0.45 -> -0.54 (< -0.5)
    got = runner.sample(logits, temperature=0.0, repetition_penalty=1.2, history=hist,
                        history_len=np.array([2], np.int64))
    assert int(got[0]) == 1


def test_same_seed_same_tokens(model_and_session):
    _, s = model_and_session
    kw = dict(max_new_tokens=24, temperature=1.0, top_p=0.95, stop_tokens=[])
    a = s.generate([5, 6, 7], seed=3, **kw)
    b = s.generate([5, 6, 7], seed=3, **kw)
    c = s.generate([5, 6, 7], seed=4, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_greedy_with_repetition_penalty_matches_hf_processor(model_and_session):
    model, s = model_and_session
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    proc = RepetitionPenaltyLogitsProcessor(1.3)
    seq = np.array([[3, 9, 27, 81]])
    expected = []
    for _ in range(12):
        scores = proc(torch.tensor(seq), torch.tensor(hf_logits(model, seq)[:, -1]))
        nxt = int(scores.argmax())
        expected.append(nxt)
        seq = np.concatenate([seq, [[nxt]]], axis=1)
    got = s.generate([3, 9, 27, 81], max_new_tokens=12, repetition_penalty=1.3, stop_tokens=[])
    np.testing.assert_array_equal(got, expected)


# ---- stop tokens, batches, ragged rows -------------------------------------------------------------------
def test_stop_token_included_and_stops(model_and_session):
    model, s = model_and_session
    prompt = [1, 2, 3, 4, 5]
    free = s.generate(prompt, max_new_tokens=20, stop_tokens=[])
    stop_at = int(free[5])
    first = int(np.argmax(free == stop_at))
    got = s.generate(prompt, max_new_tokens=20, stop_tokens=[stop_at])
    np.testing.assert_array_equal(got, free[: first + 1])


def test_ragged_batch_equals_single_rows(model_and_session):
    model, s = model_and_session
    rng = np.random.default_rng(5)
    rows = [rng.integers(0, V, size=n) for n in (3, 11, 7, 1)]
    batch = s.generate(rows, max_new_tokens=16, stop_tokens=[])
    assert batch.shape == (4, 16)
    for i, r in enumerate(rows):
        np.testing.assert_array_equal(batch[i], s.generate(r, max_new_tokens=16, stop_tokens=[]))
        np.testing.assert_array_equal(batch[i], hf_greedy(model, r, 16))
    logits = s.forward(rows)
    for i, r in enumerate(rows):
        assert rel_err(logits[i], s.forward(r)) <= 1e-6


def test_ragged_rows_stop_independently(model_and_session):
    _, s = model_and_session
    rows = [[1, 2, 3], [4, 5, 6, 7, 8]]
    free = s.generate(rows, max_new_tokens=12, stop_tokens=[])
    stop = int(free[0, 2])
    got = s.generate(rows, max_new_tokens=12, stop_tokens=[stop])
    k0 = int(np.argmax(free[0] == stop))
    np.testing.assert_array_equal(got[0, : k0 + 1], free[0, : k0 + 1])
    assert (got[0, k0 + 1 :] == -1).all()
    if stop not in free[1]:
        np.testing.assert_array_equal(got[1], free[1, : got.shape[1]])


def test_equal_length_batch_equals_rows(model_and_session):
    _, s = model_and_session
    ids = np.random.default_rng(6).integers(0, V, size=(3, 8))
    batch = s.generate(ids, max_new_tokens=10, temperature=0.9, seed=11, stop_tokens=[])
    assert batch.shape == (3, 10)
    greedy = s.generate(ids, max_new_tokens=10, stop_tokens=[])
    for i in range(3):
        np.testing.assert_array_equal(greedy[i], s.generate(ids[i], max_new_tokens=10, stop_tokens=[]))


# ---- state reuse -----------------------------------------------------------------------------------------
def test_state_save_load_roundtrip(model_and_session, tmp_path):
    _, s = model_and_session
    prefix, question = [7, 8, 9, 10, 11, 12], [13, 14]
    whole = s.generate(prefix + question, max_new_tokens=10, stop_tokens=[])
    st = s.new_state()
    s.forward(prefix, state=st)
    st.save(tmp_path / "prefix.npz")
    loaded = s.load_state(tmp_path / "prefix.npz")
    np.testing.assert_array_equal(loaded.ssm, st.ssm)
    np.testing.assert_array_equal(s.generate(question, max_new_tokens=10, stop_tokens=[], state=loaded), whole)
    # copies fork independently
    a, b = st.copy(), st.copy()
    np.testing.assert_array_equal(s.generate(question, max_new_tokens=10, stop_tokens=[], state=a), whole)
    np.testing.assert_array_equal(s.generate(question, max_new_tokens=10, stop_tokens=[], state=b), whole)


def test_state_load_checks_model(model_and_session, tmp_path):
    _, s = model_and_session
    s.new_state().save(tmp_path / "s.npz")
    other = mambart.Session(save_hf(make_hf_model(seed=1, hidden_size=32), tmp_path / "other"), device="cpu")
    with pytest.raises(ValueError, match="state was saved for a model"):
        other.load_state(tmp_path / "s.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="not a mambart state"):
        s.load_state(tmp_path / "junk.npz")


def test_generate_continues_from_state(model_and_session):
    _, s = model_and_session
    prompt = [2, 4, 6, 8]
    whole = s.generate(prompt, max_new_tokens=12, stop_tokens=[])
    st = s.new_state()
    first = s.generate(prompt, max_new_tokens=6, stop_tokens=[], state=st)
    # the state has consumed the prompt and all but the last returned token
    rest = s.generate([int(first[-1])], max_new_tokens=6, stop_tokens=[], state=st)
    np.testing.assert_array_equal(np.concatenate([first, rest]), whole)


def test_reset(model_and_session):
    _, s = model_and_session
    st = s.new_state()
    s.forward([1, 2, 3], state=st)
    assert np.abs(st.ssm).sum() > 0
    st.reset()
    assert np.abs(st.ssm).sum() == 0 and np.abs(st.conv).sum() == 0


# ---- streaming -------------------------------------------------------------------------------------------
def test_stream_equals_generate(model_and_session):
    _, s = model_and_session
    kw = dict(max_new_tokens=15, temperature=0.8, seed=5, stop_tokens=[])
    assert list(s.stream([1, 2, 3], **kw)) == s.generate([1, 2, 3], **kw).tolist()


def test_stream_can_be_abandoned(model_and_session):
    _, s = model_and_session
    it = s.stream([1, 2, 3], max_new_tokens=1000, stop_tokens=[])
    first = [next(it) for _ in range(3)]
    it.close()  # stops the worker; the session stays usable
    assert first == s.generate([1, 2, 3], max_new_tokens=3, stop_tokens=[]).tolist()


# ---- scores, hidden states, embeddings input ------------------------------------------------------------
def test_score_equals_hf_loss(model_and_session):
    model, s = model_and_session
    ids = np.random.default_rng(8).integers(0, V, size=(2, 30))
    lp = s.score(ids)
    assert lp.shape == (2, 29)
    with torch.no_grad():
        loss = float(model(torch.tensor(ids), labels=torch.tensor(ids)).loss)
    assert abs(-lp.mean() - loss) <= 1e-5 * max(1.0, abs(loss))


def test_embed_equals_hf_last_hidden_state(model_and_session):
    model, s = model_and_session
    ids = np.random.default_rng(9).integers(0, V, size=(2, 13))
    with torch.no_grad():
        ref = model.backbone(torch.tensor(ids)).last_hidden_state.numpy()
    out = s.embed(ids)
    assert out.shape == (2, 13, 48) and rel_err(out, ref) <= 1e-5


def test_inputs_embeds_equals_ids(model_and_session):
    model, s = model_and_session
    ids = np.random.default_rng(10).integers(0, V, size=17)
    table = model.backbone.embeddings.weight.detach().numpy()
    assert rel_err(s.forward(inputs_embeds=table[ids]), s.forward(ids)) <= 1e-6
    with pytest.raises(ValueError):
        s.forward(ids, inputs_embeds=table[ids])


def test_last_logits_only(model_and_session):
    _, s = model_and_session
    ids = np.random.default_rng(12).integers(0, V, size=(2, 9))
    assert rel_err(s.forward(ids, logits="last"), s.forward(ids)[:, -1]) <= 1e-6
