"""CPU benchmark of mambart on the standard Mamba-1 shapes with random weights, with peers in the same run.

Reports per (shape, weight dtype, threads): prompt processing (pp512 tok/s: forward of 512 tokens, last logits
only), decode (tg128 tok/s: 128 single-token steps from an empty state, greedy), the bandwidth floor (the most
decode tok/s that the measured single-pass read bandwidth allows, given the weight bytes one step reads), peak
RSS against the weight file size, and, in the same run, HF transformers `MambaForCausalLM` on the CPU (when
torch + transformers are importable; same threads) and llama.cpp's `llama-bench -p 512 -n 128 -t T` (when
--llama-bench and --gguf-dir are given; GGUF files are matched by shape and dtype in their names, e.g.
mamba-130m-f16.gguf). Each measurement runs in a fresh subprocess, so the peak RSS is its own.

Quick run (< 3 minutes on 2 cores), writing the "## CPU" section of docs/BENCHMARKS.md:
    python bench/bench_cpu.py --shapes 130m --dtypes f32,f16,bf16 --threads 2
More: --shapes 130m,370m,1.4b  --threads 1,2  --hf-shapes 130m --hf-dtypes f32  --pp 512 --tg 128
      --llama-bench /path/llama-bench --gguf-dir DIR  --workdir DIR (keep checkpoints)  --no-md  --md PATH
Also reachable as `mambart bench [options]` (same options) after `pip install .`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import bench_utils as common

# Run from a source checkout (bench/bench_cpu.py), the repo root holds docs/ and python/.
REPO = Path(os.environ.get("MAMBART_REPO", Path.cwd()))
HF_PEER = REPO / "bench" / "hf_peer.py"


# ---- child processes: one measurement each ---------------------------------------------------------------

def _child_mambart(a) -> dict:
    import numpy as np

    common.reset_peak_rss()
    import mambart

    base_rss = common.current_rss_mb()  # the interpreter and numpy, before the model
    t = time.perf_counter()
    s = mambart.Session(a.path, device="cpu", threads=a.threads)
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    ids = rng.integers(1, common.VOCAB, a.pp)
    s.forward(ids[:32], state=s.new_state(), logits="last")  # warm up (pages, pool, caches)
    pp = []
    for _ in range(a.reps):
        st = s.new_state()
        t = time.perf_counter()
        s.forward(ids, state=st, logits="last")
        pp.append(time.perf_counter() - t)
    tg = []
    for _ in range(a.reps):
        t = time.perf_counter()
        out = s.generate(ids[:1], max_new_tokens=a.tg, stop_tokens=[])
        tg.append(time.perf_counter() - t)
        assert len(out) == a.tg
    return dict(pp_tok_s=a.pp / min(pp), tg_tok_s=a.tg / min(tg), load_s=load_s,
                peak_rss_mb=common.peak_rss_since_reset_mb(), base_rss_mb=base_rss)


def _child_main(argv) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["mambart"])
    p.add_argument("path")
    p.add_argument("--dtype", default="f32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pp", type=int, default=512)
    p.add_argument("--tg", type=int, default=128)
    p.add_argument("--reps", type=int, default=2)
    a = p.parse_args(argv)
    res = _child_mambart(a)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


def _run_child(args: list, timeout: float = 1800) -> dict:
    # The HF peer lives in the repository (bench/hf_peer.py) so that the package never imports torch.
    cmd = ([sys.executable, str(HF_PEER), *map(str, args[1:])] if args[0] == "hf"
           else [sys.executable, "-m", "mambart.bench_cpu", "--_child", *map(str, args)])
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark child failed ({' '.join(cmd)}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")


def _have_hf() -> bool:
    """HF transformers can be timed: torch and transformers installed and bench/hf_peer.py present."""
    import importlib.util

    return HF_PEER.exists() and all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


# ---- llama.cpp ---------------------------------------------------------------------------------------------

def _find_gguf(gguf_dir: Path, shape: str, dtype: str):
    """The GGUF file whose name has the shape and the dtype as separate words, e.g. mamba-130m-f16.gguf."""
    for f in sorted(gguf_dir.glob("*.gguf")):
        words = re.split(r"[^a-z0-9.]+", f.name.lower()[:-5])
        if shape.lower() in words and dtype in words:
            return f
    return None


def _llama_bench(binary: str, gguf: Path, threads: int, pp: int, tg: int) -> dict:
    cmd = [binary, "-m", str(gguf), "-p", str(pp), "-n", str(tg), "-t", str(threads), "-o", "json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    res = {}
    for row in json.loads(r.stdout):
        if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            res["pp_tok_s"] = row["avg_ts"]
        elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            res["tg_tok_s"] = row["avg_ts"]
    return res


# ---- driver ------------------------------------------------------------------------------------------------

def _fmt(v, nd=0):
    return "–" if v is None else f"{v:.{nd}f}"


def _ratio(a, b):
    return None if not a or not b else a / b


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_child"]:
        return _child_main(argv[1:])
    ap = argparse.ArgumentParser(prog="bench_cpu.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="130m", help=f"comma list of {', '.join(common.SHAPES)}")
    ap.add_argument("--dtypes", default="f32,f16,bf16", help="comma list of f32, f16, bf16 (stored weight dtype)")
    ap.add_argument("--threads", default=None, help="comma list of thread counts (default: physical cores)")
    ap.add_argument("--pp", type=int, default=512, help="prompt length for prompt processing")
    ap.add_argument("--tg", type=int, default=128, help="tokens for decode")
    ap.add_argument("--reps", type=int, default=2, help="repetitions per measurement (best is kept)")
    ap.add_argument("--hf-shapes", default="130m", help="shapes to run HF transformers on ('' = none)")
    ap.add_argument("--hf-dtypes", default="f32", help="dtypes to run HF transformers on")
    ap.add_argument("--hf-pp", type=int, default=128, help="HF prompt length (its CPU path is slow; rates compare)")
    ap.add_argument("--hf-tg", type=int, default=32, help="HF decode tokens")
    ap.add_argument("--no-hf", action="store_true", help="skip HF transformers")
    ap.add_argument("--llama-bench", default=None, help="path of a llama-bench binary")
    ap.add_argument("--gguf-dir", default=None, help="folder of GGUF files of the same shapes")
    ap.add_argument("--workdir", default=None, help="keep the random checkpoints here (default: a temp dir)")
    ap.add_argument("--bandwidth-mb", type=int, default=1024, help="array size for the read-bandwidth probe")
    default_md = REPO / "docs" / "BENCHMARKS.md"
    ap.add_argument("--md", default=str(default_md) if default_md.exists() else None,
                    help="markdown file whose '## CPU' section is replaced (default: ./docs/BENCHMARKS.md if present)")
    ap.add_argument("--no-md", action="store_true", help="do not write the markdown file")
    a = ap.parse_args(argv)

    shapes = [s for s in a.shapes.split(",") if s]
    dtypes = [d for d in a.dtypes.split(",") if d]
    for s in shapes:
        if s not in common.SHAPES:
            ap.error(f"unknown shape {s!r}")
    for d in dtypes:
        if d not in common.DTYPES:
            ap.error(f"unknown dtype {d!r}")
    threads = [int(t) for t in a.threads.split(",")] if a.threads else [_physical_cores()]
    hf_shapes = [] if a.no_hf or not _have_hf() else [s for s in a.hf_shapes.split(",") if s]
    hf_dtypes = [d for d in a.hf_dtypes.split(",") if d]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {common.machine_description()}\nload average before: {load:.2f}", flush=True)
    bw = {th: common.read_bandwidth_gbs(a.bandwidth_mb, threads=th) for th in threads}
    print("read bandwidth (numpy max, per thread count): " + ", ".join(f"{t}: {v:.1f} GB/s" for t, v in bw.items()),
          flush=True)

    tmp = None
    work = Path(a.workdir) if a.workdir else Path(tmp := tempfile.mkdtemp(prefix="mambart-bench-cpu-"))
    rows = []
    try:
        for shape in shapes:
            for dtype in dtypes:
                path = work / f"{shape}-{dtype}"
                if not (path / "model.safetensors").exists():
                    t = time.perf_counter()
                    common.write_random_checkpoint(path, shape, dtype)
                    print(f"wrote {path} ({time.perf_counter() - t:.1f} s)", flush=True)
                file_mb = (path / "model.safetensors").stat().st_size / 2**20
                wbytes = common.weight_bytes_per_token(shape, dtype)
                for th in threads:
                    r = _run_child(["mambart", path, "--dtype", dtype, "--threads", th, "--pp", a.pp, "--tg", a.tg,
                                    "--reps", a.reps])
                    row = dict(shape=shape, dtype=dtype, threads=th, file_mb=file_mb, **r)
                    row["floor_tok_s"] = bw[th] * 1e9 / wbytes
                    if shape in hf_shapes and dtype in hf_dtypes:
                        try:
                            row["hf"] = _run_child(["hf", path, "--dtype", dtype, "--threads", th, "--pp", a.hf_pp,
                                                    "--tg", a.hf_tg])
                        except Exception as e:  # a peer failing must not lose our numbers
                            print(f"HF run failed: {e}", file=sys.stderr)
                    if a.llama_bench and a.gguf_dir:
                        g = _find_gguf(Path(a.gguf_dir), shape, dtype)
                        if g is not None:
                            try:
                                row["llama"] = _llama_bench(a.llama_bench, g, th, a.pp, a.tg)
                                row["llama_file"] = g.name
                            except Exception as e:
                                print(f"llama-bench failed: {e}", file=sys.stderr)
                    rows.append(row)
                    _print_row(row)
    finally:
        if tmp:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cmd = "python bench/bench_cpu.py " + " ".join(shlex.quote(x) for x in argv)
    md = _markdown(rows, bw, load, load_after, cmd, a)
    print("\n" + md)
    if not a.no_md and a.md:
        common.replace_section(a.md, "CPU", md)
        print(f"updated the CPU section of {a.md}")
    return 0


def _physical_cores() -> int:
    try:
        cores = set()
        for d in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
            cores.add(((d / "physical_package_id").read_text().strip(), (d / "core_id").read_text().strip()))
        if cores:
            return min(len(cores), len(os.sched_getaffinity(0)))
    except Exception:
        pass
    return os.cpu_count() or 1


def _print_row(r):
    s = (f"{r['shape']:>5} {r['dtype']:>4} t={r['threads']}: pp{''} {r['pp_tok_s']:.0f} tok/s, tg {r['tg_tok_s']:.1f} "
         f"tok/s (floor {r['floor_tok_s']:.1f}, {r['tg_tok_s'] / r['floor_tok_s']:.0%}), peak RSS "
         f"{r['peak_rss_mb']:.0f} MB / file {r['file_mb']:.0f} MB")
    if "hf" in r:
        s += f" | HF pp {r['hf']['pp_tok_s']:.0f} tg {r['hf']['tg_tok_s']:.1f}"
    if "llama" in r:
        s += f" | llama.cpp pp {r['llama'].get('pp_tok_s', 0):.0f} tg {r['llama'].get('tg_tok_s', 0):.1f}"
    print(s, flush=True)


def _cache_note() -> str:
    """The last-level cache size: a model smaller than it decodes from cache, above the DRAM floor."""
    try:
        for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"), reverse=True):
            if (idx / "type").read_text().strip() in ("Unified", "Data"):
                size = (idx / "size").read_text().strip()
                return (f"Last-level cache: {size}; weights smaller than that (130m in f16/bf16) are read from "
                        "cache during decode, so tg can exceed the DRAM floor.")
    except OSError:
        pass
    return ""


def _markdown(rows, bw, load, load_after, cmd, a) -> str:
    lines = [
        f"Machine: {common.machine_description()}.",
        "Read bandwidth (numpy max over " + f"{a.bandwidth_mb} MB, split among the threads): "
        + ", ".join(f"{t} thread(s) {v:.1f} GB/s" for t, v in bw.items()) + ". "
        + _cache_note() + " "
        f"Load average {load:.2f} before, {load_after:.2f} after (the machine is shared; higher load means "
        "lower numbers).",
        "",
        f"Command: `{cmd}`",
        "",
        f"pp{a.pp}: forward of {a.pp} tokens from an empty state, last-position logits only. tg{a.tg}: {a.tg} "
        "greedy single-token steps from an empty state (`generate`). Floor: decode tok/s that the read "
        "bandwidth allows for the weight bytes one step reads (all projections + lm_head); tg/floor is the "
        "fraction reached. HF transformers (`MambaForCausalLM`, torch threads = threads) runs "
        f"pp{a.hf_pp} / tg{a.hf_tg} (its CPU path is slow; tok/s rates are compared). RSS/file: peak resident memory of the whole process (Python + numpy included) over "
        "the weight file size; (RSS − base)/file leaves out the interpreter's own memory (base = RSS before "
        "loading the model). Best of the repetitions; random weights (see mambart/bench_utils.py).",
        "",
        f"| shape | weights | threads | pp{a.pp} tok/s | tg{a.tg} tok/s | floor tok/s | tg/floor | peak RSS MB | "
        "file MB | RSS/file | (RSS − base)/file | HF pp / tg tok/s | vs HF pp / tg | llama.cpp pp / tg tok/s | vs llama.cpp pp / tg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        hf, ll = r.get("hf", {}), r.get("llama", {})
        lines.append(
            f"| {r['shape']} | {r['dtype']} | {r['threads']} | {r['pp_tok_s']:.0f} | {r['tg_tok_s']:.1f} | "
            f"{r['floor_tok_s']:.1f} | {r['tg_tok_s'] / r['floor_tok_s']:.0%} | {r['peak_rss_mb']:.0f} | "
            f"{r['file_mb']:.0f} | {r['peak_rss_mb'] / r['file_mb']:.2f} | "
            f"{(r['peak_rss_mb'] - r['base_rss_mb']) / r['file_mb']:.2f} | "
            f"{_fmt(hf.get('pp_tok_s'))} / {_fmt(hf.get('tg_tok_s'), 1)} | "
            f"{_fmt(_ratio(r['pp_tok_s'], hf.get('pp_tok_s')), 1)}× / {_fmt(_ratio(r['tg_tok_s'], hf.get('tg_tok_s')), 1)}× | "
            f"{_fmt(ll.get('pp_tok_s'))} / {_fmt(ll.get('tg_tok_s'), 1)} | "
            f"{_fmt(_ratio(r['pp_tok_s'], ll.get('pp_tok_s')), 2)}× / {_fmt(_ratio(r['tg_tok_s'], ll.get('tg_tok_s')), 2)}× |")
    if not any("llama" in r for r in rows):
        lines += ["", "llama.cpp was not run here (pass --llama-bench and --gguf-dir). The issue's anchor for "
                  "130m at 2 threads on the CI machine: f32 pp512 266 / tg128 40, f16 286 / 80, q8_0 277 / 103 tok/s."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
