"""Resources (issue 7 item 6).

- An allocation that cannot be satisfied (a state or an output of terabytes) raises MemoryError naming the size
  asked for; never std::bad_alloc or a terminate; the session stays usable.
- Loading and dropping a model 100 times grows neither memory (RSS) nor open files nor mappings.

The huge allocations rely on the kernel refusing them (Linux overcommit modes 0 and 2 refuse a single request
larger than RAM + swap); with vm.overcommit_memory = 1 a terabyte request could succeed lazily and then be
touched, so those tests skip there.
"""
from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest

import mambart

pytest.importorskip("transformers")
from ckpt_utils import make_hf_model, save_hf  # noqa: E402

LINUX = Path("/proc/self/status").exists()


def _overcommit_always() -> bool:
    try:
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1"
    except OSError:
        return False


huge_alloc = pytest.mark.skipif(not LINUX or _overcommit_always(),
                                reason="needs Linux with vm.overcommit_memory != 1 (see module docstring)")


# ---- allocation failures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wide_state_dir(tmp_path_factory):
    """d_state = 256, d_inner = 128, 8 layers: ~1 MiB of state per sequence, ~1.1 TB for 2^20 sequences."""
    return save_hf(make_hf_model(seed=51, hidden_size=64, num_hidden_layers=8, state_size=256),
                   tmp_path_factory.mktemp("wide"))


@huge_alloc
def test_huge_state_raises_memory_error(wide_state_dir):
    s = mambart.Session(wide_state_dir, device="cpu", threads=1)
    c = s.config
    batch = 2**20
    conv_bytes = c.n_layer * batch * c.d_inner * c.d_conv * 4
    ssm_bytes = c.n_layer * batch * c.d_inner * c.d_state * 4
    with pytest.raises(MemoryError) as e:
        s.new_state(batch_size=batch)
    msg = str(e.value)
    assert "bytes" in msg and (str(ssm_bytes) in msg or str(conv_bytes) in msg), msg
    assert "bad_alloc" not in msg
    # still usable
    ids = np.random.default_rng(0).integers(0, c.vocab_size, size=(2, 9))
    assert np.isfinite(s.forward(ids, state=s.new_state(2))).all()


@pytest.fixture(scope="module")
def big_vocab_dir(tmp_path_factory):
    """vocab 2^17 with a tiny body: logits of 2^22 tokens would take 2 TiB."""
    return save_hf(make_hf_model(seed=52, vocab_size=2**17, hidden_size=16, num_hidden_layers=1),
                   tmp_path_factory.mktemp("bigvocab"))


@huge_alloc
def test_huge_logits_raise_memory_error(big_vocab_dir):
    s = mambart.Session(big_vocab_dir, device="cpu", threads=1)
    B, L = 64, 2**16
    ids = np.random.default_rng(1).integers(0, s.config.vocab_size, size=(B, L), dtype=np.int32)
    want = B * L * s.config.vocab_size * 4
    with pytest.raises(MemoryError, match=str(want)):
        s.forward(ids)
    out = s.forward(ids[:1, :5], logits="last")
    assert out.shape == (1, s.config.vocab_size) and np.isfinite(out).all()


@pytest.mark.gpu
@pytest.mark.skipif(not mambart._core.cuda_available(), reason="no CUDA device")
def test_huge_device_state_raises_memory_error(wide_state_dir):
    s = mambart.Session(wide_state_dir, device="cuda")
    with pytest.raises(MemoryError, match="bytes"):
        s.new_state(batch_size=2**20)
    assert np.isfinite(s.forward(np.arange(5) % s.config.vocab_size)).all()


# ---- load / drop ------------------------------------------------------------------------------------------------

def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _n_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _n_maps(path: Path) -> int:
    needle = str(path.resolve())
    return sum(needle in line for line in Path("/proc/self/maps").read_text().splitlines())


@pytest.fixture(scope="module")
def medium_dir(tmp_path_factory):
    """~1 MB of fp32 weights: a leaked copy per load would show as ~100 MB after 100 loads."""
    return save_hf(make_hf_model(seed=53, hidden_size=128, num_hidden_layers=2), tmp_path_factory.mktemp("medium"))


@pytest.mark.skipif(not LINUX, reason="reads /proc/self")
@pytest.mark.parametrize("dtype", [None, "float16"])  # None: weights used in place from the mmap; float16: copies
def test_load_and_drop_100_times(medium_dir, dtype):
    ids = np.random.default_rng(2).integers(0, 101, size=(1, 8))
    weights = medium_dir / "model.safetensors"

    def cycle():
        s = mambart.Session(medium_dir, device="cpu", threads=1, dtype=dtype)
        st = s.new_state(1)
        s.forward(ids, state=st)
        s.generate(ids[0], max_new_tokens=2, state=st.copy())
        del s, st

    for _ in range(5):  # warm up allocator pools and lazy imports
        cycle()
    gc.collect()
    rss0, fds0 = _rss_kib(), _n_fds()
    assert _n_maps(weights) == 0
    for _ in range(100):
        cycle()
    gc.collect()
    rss1, fds1 = _rss_kib(), _n_fds()
    assert fds1 == fds0, f"open files grew from {fds0} to {fds1}"
    assert _n_maps(weights) == 0, "the weights file is still mapped after the sessions were dropped"
    # tolerance: 8 MiB of allocator noise (the weights are ~1 MiB, so a per-load leak would be ~100 MiB)
    assert rss1 - rss0 < 8 * 1024, f"RSS grew by {(rss1 - rss0) / 1024:.1f} MiB over 100 loads"


@pytest.mark.skipif(not LINUX, reason="reads /proc/self")
def test_state_keeps_model_alive_then_releases(medium_dir):
    """A state outliving its session keeps the mapping; dropping it releases the mapping."""
    weights = medium_dir / "model.safetensors"
    s = mambart.Session(medium_dir, device="cpu", threads=1)
    st = s.new_state(1)
    ref = s.forward(np.arange(6), state=s.new_state(1))
    del s
    gc.collect()
    assert _n_maps(weights) >= 1
    assert np.array_equal(st._session.forward(np.arange(6), state=st), ref)
    del st
    gc.collect()
    assert _n_maps(weights) == 0
