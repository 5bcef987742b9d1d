"""GPU benchmark: mambart (CUDA backend) and HF transformers MambaForCausalLM timed in the same process.

Protocol of mamba_ssm's benchmarks/benchmark_generation_mamba_simple.py: random fp16 weights, a random prompt of
100 tokens, 100 generated tokens, greedy. Reported per shape (d_model x n_layer, vocab 50280):
  gen ms/tok    (prefill of 100 + 100 decode steps) / 100, the mamba_ssm protocol's figure
  dec ms/tok    decode only: (T(100 new) - T(1 new)) / 99
  floor         weight bytes / measured device copy bandwidth (read + write), % = floor / dec ms/tok
  b64 tok/s     batch 64, same prompt length, 64 * 100 / T
  prefill       one forward over 2048 / 8192 tokens (last logits only)
  HF ms/tok     transformers generate (fp16, torch on the GPU) / 100; ratio = HF / mambart gen ms/tok
Usage: python3 bench/bench_gpu.py [--shapes 130m,1.4b,2.8b] [--out DIR] [--no-hf]
Prints the table last; writes DIR/bench_gpu.json and DIR/BENCHMARKS_GPU.md."""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {"130m": (768, 24), "370m": (1024, 48), "790m": (1536, 48), "1.4b": (2048, 48), "2.8b": (2560, 64)}
VOCAB = 50280
# Targets of issue 4 (ms/token batch 1 decode, tok/s batch 64, prefill 8192 ms) and mamba_ssm's figures on an H100.
TARGETS = {"130m": dict(dec=0.15), "1.4b": dict(dec=1.15), "2.8b": dict(dec=2.2, b64=18000, p8192=90)}
MAMBA_SSM = {"130m": dict(gen=0.337, b64=74.8e3, p2048=15.9, p8192=14.2),
             "1.4b": dict(gen=2.33, b64=20.3e3, p2048=27.0, p8192=71.5),
             "2.8b": dict(gen=3.79, b64=12.6e3, p2048=41.9, p8192=131)}


def copy_bandwidth(torch) -> float:
    """Device-to-device copy, bytes read + written per second (median of 20 after warm-up)."""
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    ts = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        b.copy_(a)
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    del a, b
    return 2 * n / statistics.median(ts)


def make_checkpoint(torch, name: str, folder: Path):
    from transformers import MambaConfig, MambaForCausalLM

    d, n = SHAPES[name]
    cfg = MambaConfig(vocab_size=VOCAB, hidden_size=d, num_hidden_layers=n, state_size=16, expand=2, conv_kernel=4,
                      use_bias=False, use_conv_bias=True, residual_in_fp32=True, tie_word_embeddings=True,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = MambaForCausalLM(cfg).to(torch.float16).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():  # random, non-degenerate weights (A_log kept: -A = 1..16)
            if p.dim() >= 2 and not pname.endswith("A_log"):
                p.normal_(0, 0.02)
    model.save_pretrained(folder)
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied head counted once
    return model, n_bytes


def timed(fn, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


# Decode variants timed next to the default (auto: the persistent decode step for d_model > 1024, else the
# per-layer kernels): each forced on / off. Only knobs read at backend creation can be variants here.
VARIANTS = {
    "per-layer": {"MAMBART_CUDA_PERSISTENT": "0"},
    "persistent": {"MAMBART_CUDA_PERSISTENT": "1"},
    "persistent-no-state-prefetch": {"MAMBART_CUDA_PERSISTENT": "1", "MAMBART_STEP_PREFETCH_STATE": "0"},
}


# Prefill variants timed after the default (knobs read per launch): the scan cut into time segments
# (MAMBART_SCAN_SEGMENTS, scan.cu; default one segment), the scalar conv1d prefill kernel (default: 16-byte path).
PREFILL_VARIANTS = {**{f"segments {v}": {"MAMBART_SCAN_SEGMENTS": v} for v in ("2", "3", "4", "auto")},
                    "conv scalar": {"MAMBART_CONV_VEC": "0"}}


def bench_decode_variant(mambart, folder: Path, env: dict, prompt_len=100, gen=100, reps=3) -> float:
    """Decode ms/token at batch 1 with a backend created under `env` (e.g. MAMBART_CUDA_FUSED=0)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s = mambart.Session(str(folder), device="cuda")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    prompt = np.random.default_rng(0).integers(0, VOCAB, size=(1, prompt_len))
    st = s.new_state(1)

    def run(n):
        st.reset()
        return s.generate(prompt, max_new_tokens=n, stop_tokens=[], state=st)

    run(gen)
    t_gen, t_one = timed(lambda: run(gen), reps), timed(lambda: run(1), reps)
    del s, st
    gc.collect()
    return (t_gen - t_one) / (gen - 1) * 1e3


def step_timing(mambart, folder: Path, batch=1) -> str:
    """Per-stage times of the persistent decode step (MAMBART_STEP_TIMING), written when the backend goes away."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
        bench_decode_variant(mambart, folder, {"MAMBART_STEP_TIMING": f.name, "MAMBART_CUDA_PERSISTENT": "1"},
                             gen=10, reps=1)
        gc.collect()
        return Path(f.name).read_text()


def bench_b64_composed(mambart, folder: Path, prompt_len=100, gen=100) -> float:
    """Batch-64 tok/s (prefill + gen, as b64_tok_s) with the batched decode step off (MAMBART_CUDA_BATCHED=0: the
    ops composed per layer, as before it existed)."""
    os.environ["MAMBART_CUDA_BATCHED"] = "0"
    try:
        s = mambart.Session(str(folder), device="cuda")
    finally:
        os.environ.pop("MAMBART_CUDA_BATCHED", None)
    p64 = np.random.default_rng(1).integers(0, VOCAB, size=(64, prompt_len))
    st64 = s.new_state(64)

    def run():
        st64.reset()
        return s.generate(p64, max_new_tokens=gen, stop_tokens=[], state=st64)

    run()
    t = timed(run, 3)
    del s, st64
    gc.collect()
    return 64 * gen / t


def bench_mambart(mambart, folder: Path, prompt_len=100, gen=100, reps=5):
    s = mambart.Session(str(folder), device="cuda")
    rng = np.random.default_rng(0)
    r = {}
    prompt = rng.integers(0, VOCAB, size=(1, prompt_len))
    st = s.new_state(1)

    def run(n, p=prompt, state=st):
        state.reset()
        return s.generate(p, max_new_tokens=n, stop_tokens=[], state=state)

    out = run(gen)  # warm-up: loads cuBLAS, captures the decode graph
    assert out.shape == (1, gen), out.shape
    t_gen = timed(lambda: run(gen), reps)
    t_one = timed(lambda: run(1), reps)
    r["gen_ms"] = t_gen / gen * 1e3
    r["dec_ms"] = (t_gen - t_one) / (gen - 1) * 1e3
    r["prefill100_ms"] = t_one * 1e3
    p64 = rng.integers(0, VOCAB, size=(64, prompt_len))
    st64 = s.new_state(64)
    run(gen, p64, st64)
    t64 = timed(lambda: run(gen, p64, st64), 3)
    r["b64_tok_s"] = 64 * gen / t64
    t64_1 = timed(lambda: run(1, p64, st64), 3)
    r["b64_dec_tok_s"] = 64 * (gen - 1) / (t64 - t64_1)
    for L in (2048, 8192):
        ids = rng.integers(0, VOCAB, size=(1, L))
        stp = s.new_state(1)

        def pf():
            stp.reset()
            s.forward(ids, state=stp, logits="last")

        pf()
        r[f"p{L}_ms"] = timed(pf, 3) * 1e3
        if L == 8192:  # prefill variants (env read per launch)
            r["p8192_variants"] = {}
            for v, env in PREFILL_VARIANTS.items():
                os.environ.update(env)
                try:
                    pf()
                    r["p8192_variants"][v] = timed(pf, 3) * 1e3
                finally:
                    for k in env:
                        os.environ.pop(k, None)
    del s, st, st64
    gc.collect()
    return r


def bench_hf(torch, model, prompt_len=100, gen=100):
    ids = torch.randint(0, VOCAB, (1, prompt_len), device="cuda")
    kw = dict(max_new_tokens=gen, min_new_tokens=gen, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        model.generate(ids, **{**kw, "max_new_tokens": 5, "min_new_tokens": 5})
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(ids, **kw)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
    assert out.shape[1] == prompt_len + gen
    return dt / gen * 1e3


def fmt_table(rows, device, bw):
    lines = [f"Device: {device}; copy bandwidth {bw / 1e9:.0f} GB/s (read+write). fp16, random weights, vocab {VOCAB}, "
             "prompt 100, 100 new tokens, greedy.", "",
             "Decode variants (ms/token, batch 1): " + "; ".join(
                 f"{n} default {r['dec_ms']:.3f}, " + ", ".join(f"{v} {r['variants'][v]:.3f}" for v in r.get("variants", {}))
                 for n, r in rows.items()) + "; b64 decode-only tok/s: " + ", ".join(
                 f"{n} {r['b64_dec_tok_s']:.0f}" for n, r in rows.items()) + "; b64 tok/s with the batched decode "
             "step off (MAMBART_CUDA_BATCHED=0): " + ", ".join(f"{n} {r['b64_composed_tok_s']:.0f}" for n, r in rows.items()),
             "", "Prefill 8192 variants (ms): " + "; ".join(
                 f"{n} default {r['p8192_ms']:.1f}, " + ", ".join(f"{v} {t:.1f}" for v, t in r.get("p8192_variants", {}).items())
                 for n, r in rows.items()), "",
             "| shape | gen ms/tok | dec ms/tok | floor ms | % floor | b64 tok/s | prefill 2048 / 8192 ms | HF ms/tok | "
             "HF / mambart | mamba_ssm gen ms/tok (H100, issue) | target |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        hf = r.get("hf_ms")
        t = TARGETS.get(name, {})
        tgt = ", ".join(f"{k}<={v}" if k != "b64" else f"b64>={v}" for k, v in t.items()) or "-"
        ms = MAMBA_SSM.get(name, {}).get("gen")
        hf_s = "-" if hf is None else f"{hf:.2f}"
        ratio = "-" if hf is None else f"{hf / r['gen_ms']:.1f}x"
        lines.append(
            f"| {name} | {r['gen_ms']:.3f} | {r['dec_ms']:.3f} | {r['floor_ms']:.3f} | {100 * r['floor_ms'] / r['dec_ms']:.0f}% | "
            f"{r['b64_tok_s']:.0f} | {r['p2048_ms']:.1f} / {r['p8192_ms']:.1f} | "
            f"{hf_s} | {ratio} | "
            f"{'-' if ms is None else ms} | {tgt} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="130m,1.4b,2.8b")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--no-hf", action="store_true")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each timed batch-1 generate (median)")
    args = ap.parse_args()
    import torch

    import mambart

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    bw = copy_bandwidth(torch)
    print(f"copy bandwidth: {bw / 1e9:.0f} GB/s", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for name in args.shapes.split(","):
            folder = Path(tmp) / name
            model, n_bytes = make_checkpoint(torch, name, folder)
            try:
                r = bench_mambart(mambart, folder, reps=args.reps)
                r["variants"] = {v: bench_decode_variant(mambart, folder, env) for v, env in VARIANTS.items()}
                r["b64_composed_tok_s"] = bench_b64_composed(mambart, folder)
                print(f"{name}: " + step_timing(mambart, folder), flush=True)
            except Exception as e:  # keep the other shapes' numbers
                print(f"{name}: mambart FAILED: {type(e).__name__}: {e}", flush=True)
                continue
            r["weight_bytes"] = n_bytes
            r["floor_ms"] = n_bytes / bw * 1e3
            if not args.no_hf:
                r["hf_ms"] = bench_hf(torch, model)
            del model
            gc.collect()
            torch.cuda.empty_cache()
            rows[name] = r
            print(name, json.dumps(r, default=lambda v: round(v, 4)), flush=True)
            import shutil
            shutil.rmtree(folder, ignore_errors=True)
    table = fmt_table(rows, device, bw)
    (out / "bench_gpu.json").write_text(json.dumps(dict(device=device, copy_bw=bw, rows=rows), indent=1))
    (out / "BENCHMARKS_GPU.md").write_text(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main()
