"""Threads and interrupts (issue 7 item 5).

- One Session used by 8 Python threads at once (each call with its own state), and one model shared by several
  sessions (Session.share()), give bitwise the same results as running the calls one after another.
- The GIL is released during compute: another Python thread keeps running during a forward, and 2 threads on
  2 cores run 2 forwards faster than 1 thread runs them in turn (the speedup is recorded; asserted > 1.3x only
  with >= 2 usable cores and a machine that is not already oversubscribed).
- Ctrl-C (SIGINT) during a long prefill raises KeyboardInterrupt within a fraction of a second and leaves the
  session usable.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import mambart

pytest.importorskip("transformers")
from ckpt_utils import make_hf_model, save_hf  # noqa: E402

N_THREADS = 8


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    return save_hf(make_hf_model(seed=41, num_hidden_layers=2, eos_token_id=100), tmp_path_factory.mktemp("conc"))


def _jobs(vocab):
    """Per thread: a prompt of its own length and a sampling seed."""
    rng = np.random.default_rng(7)
    return [(rng.integers(0, vocab, size=int(rng.integers(5, 40))), 1000 + i) for i in range(N_THREADS)]


def _work(session, ids, seed, state_session=None):
    """forward, greedy and sampled generation, each on its own fresh state (from state_session if given)."""
    mk = (state_session or session).new_state
    st = mk(1)
    logits = session.forward(ids[None], state=st)
    cont = session.forward(ids[None, :3], state=st)  # continues from the state
    greedy = session.generate(ids, max_new_tokens=12, state=mk(1))
    sampled = session.generate(ids, max_new_tokens=12, temperature=0.9, top_k=30, seed=seed, state=mk(1))
    return logits, cont, greedy, sampled, st.ssm


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.array_equal(x, y), "threaded result differs from the sequential one"


def _run_threads(fn, args):
    barrier = threading.Barrier(len(args))

    def go(a):
        barrier.wait()
        return fn(*a)

    with ThreadPoolExecutor(len(args)) as pool:
        return list(pool.map(go, args))


def test_one_session_many_threads(small_dir):
    s = mambart.Session(small_dir, device="cpu", threads=1)
    jobs = _jobs(s.config.vocab_size)
    sequential = [_work(s, ids, seed) for ids, seed in jobs]
    for _ in range(2):
        threaded = _run_threads(lambda ids, seed: _work(s, ids, seed), jobs)
        for seq, thr in zip(sequential, threaded):
            _assert_same(seq, thr)


def test_batched_state_rows_many_threads(small_dir):
    """Threads that run batches (B = 3) concurrently also match, row for row."""
    s = mambart.Session(small_dir, device="cpu", threads=1)
    rng = np.random.default_rng(8)
    batches = [rng.integers(0, s.config.vocab_size, size=(3, 17)) for _ in range(N_THREADS)]
    sequential = [s.forward(b) for b in batches]
    threaded = _run_threads(lambda b: s.forward(b), [(b,) for b in batches])
    for x, y in zip(sequential, threaded):
        assert np.array_equal(x, y)


def test_model_shared_by_sessions(small_dir):
    base = mambart.Session(small_dir, device="cpu", threads=1)
    sessions = [base] + [base.share() for _ in range(3)]
    assert all(t._model is base._model for t in sessions)
    jobs = _jobs(base.config.vocab_size)
    sequential = [_work(base, ids, seed) for ids, seed in jobs]
    # thread i uses session i % 4, with states made by session (i + 1) % 4 (states are interchangeable)
    args = [(sessions[i % 4], ids, seed, sessions[(i + 1) % 4]) for i, (ids, seed) in enumerate(jobs)]
    threaded = _run_threads(_work, args)
    for seq, thr in zip(sequential, threaded):
        _assert_same(seq, thr)
    # and an independently loaded session gives the same numbers
    other = mambart.Session(small_dir, device="cpu", threads=1)
    _assert_same(sequential[0], _work(other, *jobs[0]))


# ---- the GIL is released --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compute_session(tmp_path_factory):
    """A model and a prompt long enough that one forward takes >= ~0.4 s here (compute dominates)."""
    d = save_hf(make_hf_model(seed=42, hidden_size=128, num_hidden_layers=2), tmp_path_factory.mktemp("gil"))
    s = mambart.Session(d, device="cpu", threads=1)
    L = 64
    while True:
        ids = np.random.default_rng(9).integers(0, s.config.vocab_size, size=(1, L))
        t = time.perf_counter()
        s.forward(ids, logits="last")
        if time.perf_counter() - t >= 0.4 or L >= 8192:
            return s, ids
        L *= 2


def test_gil_released_during_forward(compute_session):
    """A pure-Python loop in the main thread keeps running while another thread computes."""
    s, ids = compute_session
    done = threading.Event()
    th = threading.Thread(target=lambda: (s.forward(ids, logits="last"), done.set()))
    spins = 0
    t0 = time.perf_counter()
    th.start()
    while not done.is_set():
        spins += 1
    th.join()
    elapsed = time.perf_counter() - t0
    # with the GIL held during compute the loop could only run in the gaps (a few switch intervals)
    assert spins > 10_000 and elapsed > 0.2, (spins, elapsed)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _speedup(fn, attempts=5):
    """Best over attempts of (fn(0); fn(1) in one thread) / (fn(0) || fn(1) in two threads)."""
    best = 0.0
    for _ in range(attempts):
        t = time.perf_counter()
        fn(0)
        fn(1)
        t_seq = time.perf_counter() - t
        ths = [threading.Thread(target=fn, args=(i,)) for i in range(2)]
        t = time.perf_counter()
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        best = max(best, t_seq / (time.perf_counter() - t))
        if best > 1.6:
            break
    return best


def _control(_):
    """Single-threaded work that releases the GIL (hashlib does for large buffers): what 2 threads can gain
    on this machine right now."""
    import hashlib

    buf = _control.buf
    for _ in range(3):
        hashlib.sha256(buf).digest()


_control.buf = b"\x5a" * (32 << 20)


def test_threads_run_in_parallel(compute_session, record_property):
    s, ids = compute_session
    states = [s.new_state(1) for _ in range(2)]

    def one(i):
        states[i].reset()
        s.forward(ids, state=states[i], logits="last")

    control = _speedup(_control)
    best = _speedup(one)
    record_property("speedup_2_threads", round(best, 3))
    record_property("control_speedup_2_threads", round(control, 3))
    print(f"\n2 threads vs 1: speedup {best:.2f}x (seqlen {ids.shape[1]}, {s.device}; control with hashlib "
          f"{control:.2f}x, usable cpus {_usable_cpus()})")
    if _usable_cpus() < 2:
        pytest.skip(f"one usable CPU: speedup {best:.2f}x not asserted")
    if control <= 1.3 and best <= 1.3:
        pytest.skip(f"this machine does not run 2 threads in parallel now (GIL-free control {control:.2f}x): "
                    f"speedup {best:.2f}x not asserted")
    assert best > 1.3, f"2 threads gave only {best:.2f}x over 1 (GIL-free control: {control:.2f}x)"


# ---- Ctrl-C ----------------------------------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import mambart
    s = mambart.Session(sys.argv[1], device="cpu", threads=1)
    short = np.arange(20) % s.config.vocab_size
    ref = s.forward(short)
    ids = np.random.default_rng(0).integers(0, s.config.vocab_size, size=int(sys.argv[2]), dtype=np.int32)
    print("READY", flush=True)
    t0 = time.time()
    try:
        s.forward(ids, logits="last")
        print("FINISHED", time.time() - t0, flush=True)
    except KeyboardInterrupt:
        print("CAUGHT", repr(time.time()), flush=True)
    print("USABLE", bool(np.array_equal(s.forward(short), ref)), flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child process is POSIX")
def test_ctrl_c_during_prefill(small_dir, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(mambart.__file__).parents[1]), env.get("PYTHONPATH", "")])
    # 6M tokens: ~15 s of prefill with the SIMD backend on one core here, minutes with the reference one, so
    # the signal lands mid-prefill
    p = subprocess.Popen([sys.executable, str(script), str(small_dir), str(6_000_000)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
        time.sleep(0.5)
        t_sent = time.time()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert "CAUGHT" in lines, out + err
    latency = float(lines["CAUGHT"]) - t_sent
    print(f"\nCtrl-C latency during prefill: {latency * 1000:.0f} ms")
    assert latency < 0.5, f"KeyboardInterrupt came {latency:.2f} s after SIGINT"
    assert lines["USABLE"] == "True"
