"""Shared benchmark helpers (numpy only; no torch): standard Mamba-1 shapes, a streaming random-checkpoint
writer (HF `model_type: "mamba"` layout, safetensors), peak RSS, single-pass read bandwidth, machine
description, and replacing one section of docs/BENCHMARKS.md."""
from __future__ import annotations

import json
import math
import os
import platform
import re
import resource
import struct
import time
from pathlib import Path

import numpy as np

# name -> (d_model, n_layer); vocab 50280, d_state 16, d_conv 4, expand 2 (the state-spaces/mamba-* shapes)
SHAPES = {"130m": (768, 24), "370m": (1024, 48), "790m": (1536, 48), "1.4b": (2048, 48), "2.8b": (2560, 64)}
VOCAB, D_STATE, D_CONV, EXPAND = 50280, 16, 4, 2
DTYPES = {"f32": ("F32", np.float32), "f16": ("F16", np.float16), "bf16": ("BF16", None)}


def shape_config(shape: str) -> dict:
    d_model, n_layer = SHAPES[shape]
    return dict(model_type="mamba", architectures=["MambaForCausalLM"], vocab_size=VOCAB, hidden_size=d_model,
                state_size=D_STATE, num_hidden_layers=n_layer, expand=EXPAND, intermediate_size=EXPAND * d_model,
                conv_kernel=D_CONV, time_step_rank=math.ceil(d_model / 16), use_bias=False, use_conv_bias=True,
                residual_in_fp32=True, tie_word_embeddings=True, layer_norm_epsilon=1e-5, hidden_act="silu",
                bos_token_id=0, eos_token_id=0, pad_token_id=0)


def tensor_specs(cfg: dict):
    """(name, shape, kind) of every tensor of an HF Mamba checkpoint; kind selects the random init."""
    d, di, ds, dc = cfg["hidden_size"], cfg["intermediate_size"], cfg["state_size"], cfg["conv_kernel"]
    r = cfg["time_step_rank"]
    yield "backbone.embeddings.weight", (cfg["vocab_size"], d), "embed"
    for i in range(cfg["num_hidden_layers"]):
        p = f"backbone.layers.{i}."
        yield p + "norm.weight", (d,), "ones"
        yield p + "mixer.A_log", (di, ds), "A_log"
        yield p + "mixer.D", (di,), "ones"
        yield p + "mixer.conv1d.weight", (di, 1, dc), "conv"
        yield p + "mixer.conv1d.bias", (di,), "small"
        yield p + "mixer.in_proj.weight", (2 * di, d), "proj"
        yield p + "mixer.x_proj.weight", (r + 2 * ds, di), "proj"
        yield p + "mixer.dt_proj.weight", (di, r), "proj"
        yield p + "mixer.dt_proj.bias", (di,), "dt_bias"
        yield p + "mixer.out_proj.weight", (d, di), "proj"
    yield "backbone.norm_f.weight", (d,), "ones"


class _Noise:
    """Cheap pseudo-random fill: slices of one random block at random offsets (values only need to be sane)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.block = self.rng.standard_normal(1 << 22).astype(np.float32)

    def normal(self, n: int) -> np.ndarray:
        out = np.empty(n, np.float32)
        pos = 0
        while pos < n:
            off = int(self.rng.integers(0, self.block.size // 2))
            take = min(n - pos, self.block.size - off)
            out[pos:pos + take] = self.block[off:off + take]
            pos += take
        return out


def _init(kind: str, shape, noise: _Noise) -> np.ndarray:
    n = int(np.prod(shape))
    if kind == "ones":
        v = 1.0 + 0.1 * noise.normal(n)
    elif kind == "A_log":
        v = np.log(np.tile(np.arange(1, shape[1] + 1, dtype=np.float32), shape[0])) + 0.05 * noise.normal(n)
    elif kind == "dt_bias":  # softplus^-1 of dt in ~[1e-3, 1e-1]
        dt = np.exp(noise.normal(n) * 0.8 - 4.0)
        v = dt + np.log(-np.expm1(-dt))
    elif kind == "proj":
        v = noise.normal(n) / math.sqrt(shape[-1])
    elif kind == "conv":
        v = noise.normal(n) * 0.3
    elif kind == "embed":
        v = noise.normal(n) * 0.5
    else:
        v = noise.normal(n) * 0.02
    return v.reshape(shape).astype(np.float32)


def _encode(v: np.ndarray, dtype: str) -> bytes:
    if dtype == "F32":
        return v.astype("<f4").tobytes()
    if dtype == "F16":
        return v.astype("<f2").tobytes()
    u = v.astype("<f4").view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()  # bf16, round to nearest even


def write_random_checkpoint(folder, shape: str, dtype: str = "f32", seed: int = 0) -> Path:
    """Writes config.json + model.safetensors for a random model of a standard shape, streaming tensor by
    tensor (never the whole model in memory). dtype: f32 / f16 / bf16 (every tensor stored so)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = shape_config(shape)
    st = DTYPES[dtype][0]
    specs = list(tensor_specs(cfg))
    es = 4 if st == "F32" else 2
    header, off = {}, 0
    for name, shp, _ in specs:
        nbytes = int(np.prod(shp)) * es
        header[name] = {"dtype": st, "shape": list(shp), "data_offsets": [off, off + nbytes]}
        off += nbytes
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    noise = _Noise(seed)
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, shp, kind in specs:
            f.write(_encode(_init(kind, shp, noise), st))
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    return folder


def weight_bytes_per_token(shape: str, dtype: str) -> int:
    """Bytes of weights one decode step reads: every layer's projections + the (tied) lm_head; the small fp32
    per-channel tensors and one embedding row are included too."""
    cfg = shape_config(shape)
    es = 4 if dtype == "f32" else 2
    total = 0
    for name, shp, kind in tensor_specs(cfg):
        n = int(np.prod(shp))
        if kind == "embed":
            total += n * es  # read as the lm_head
        elif kind == "proj":
            total += n * es
        else:
            total += n * 4  # small tensors are converted to fp32 at load
    return total


def read_bandwidth_gbs(mb: int = 1024, repeats: int = 3, threads: int = 1) -> float:
    """Read bandwidth (GB/s) of `threads` threads together: best of `repeats` passes of a max-reduction (little
    arithmetic per byte; numpy releases the GIL in it) over an array of `mb` MB split among the threads. The array
    should be well above the last-level cache, or this measures the cache."""
    import threading

    a = np.ones(mb * (1 << 20) // 4, np.float32)
    parts = np.array_split(a, threads)

    def one_pass() -> float:
        ts = [threading.Thread(target=p.max) for p in parts]
        t = time.perf_counter()
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        return a.nbytes / (time.perf_counter() - t) / 1e9

    one_pass()
    best = max(one_pass() for _ in range(repeats))
    del a, parts
    return best


def peak_rss_mb() -> float:
    """Peak resident set of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS counter of this process (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mb() -> float:
    """VmHWM (peak RSS since the last reset_peak_rss) in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def machine_description() -> str:
    model, flags, cores = platform.processor() or platform.machine(), set(), set()
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
        m = re.search(r"^model name\s*:\s*(.+)$", txt, re.M)
        if m:
            model = m.group(1).strip()
        m = re.search(r"^flags\s*:\s*(.+)$", txt, re.M)
        if m:
            flags = set(m.group(1).split())
        for blk in txt.split("\n\n"):
            p = re.search(r"^physical id\s*:\s*(\d+)", blk, re.M)
            c = re.search(r"^core id\s*:\s*(\d+)", blk, re.M)
            if c:
                cores.add((p.group(1) if p else "0", c.group(1)))
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_bf16", "avx512_fp16", "amx_tile")
            if f in flags]
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1048576:.0f} GiB RAM"
    except OSError:
        pass
    return (f"{model}, {len(cores) or os.cpu_count()} cores ({os.cpu_count()} logical), {mem}, "
            f"SIMD: {' '.join(simd) or 'baseline'}; {platform.system()} {platform.release()}")


def replace_section(md_path, title: str, body: str) -> None:
    """Replaces the `## {title}` section of a markdown file (up to the next `## `) with body, or appends it."""
    md_path = Path(md_path)
    text = md_path.read_text() if md_path.exists() else "# Benchmarks\n"
    head = f"## {title}"
    block = f"{head}\n\n{body.rstrip()}\n"
    pat = re.compile(rf"^{re.escape(head)}\s*$.*?(?=^## |\Z)", re.M | re.S)
    if pat.search(text):
        text = pat.sub(lambda _: block + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text.rstrip() + "\n")
