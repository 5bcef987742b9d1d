"""Prefill memory and time against prompt length (CPU): peak RSS stays flat because prefill runs in chunks
with a chunk-sized workspace and only the last position's logits are computed (logits="last").

    python bench/long_prompt.py --shape 130m --dtype f16 --lengths 512,4096,32768 --threads 2

Each length runs in a fresh process; writes the "## Long prompts" section of docs/BENCHMARKS.md."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import mambart  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), os.environ.get("PYTHONPATH")]))
from mambart import bench_utils as bu  # noqa: E402


def child(path, length, threads):
    import numpy as np

    import mambart

    s = mambart.Session(path, device="cpu", threads=threads)
    ids = np.random.default_rng(0).integers(0, bu.VOCAB, length)
    s.forward(ids[:64], logits="last")
    base = bu.current_rss_mb()
    bu.reset_peak_rss()
    t = time.perf_counter()
    s.forward(ids, logits="last")
    dt = time.perf_counter() - t
    print("RESULT " + json.dumps(dict(seconds=dt, peak_mb=bu.peak_rss_since_reset_mb(), base_mb=base)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="130m")
    ap.add_argument("--dtype", default="f16")
    ap.add_argument("--lengths", default="512,4096,32768")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--md", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._child:
        child(a._child[0], int(a._child[1]), int(a._child[2]))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = bu.write_random_checkpoint(Path(tmp) / a.shape, a.shape, a.dtype)
        for n in (int(x) for x in a.lengths.split(",")):
            out = subprocess.run([sys.executable, __file__, "--_child", str(path), str(n), str(a.threads)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))[7:])
            rows.append((n, r))
            print(n, r, flush=True)
    lines = [f"`python bench/long_prompt.py --shape {a.shape} --dtype {a.dtype} --lengths {a.lengths} "
             f"--threads {a.threads}` on {bu.machine_description()}", "",
             "| prompt tokens | prefill s | tok/s | RSS before MB | peak RSS during prefill MB |", "|---|---|---|---|---|"]
    for n, r in rows:
        lines.append(f"| {n} | {r['seconds']:.2f} | {n / r['seconds']:.0f} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} |")
    lines += ["", "Logits of the last position only (what `generate` uses); a full (L, vocab) logits array is "
              "returned only when asked (`logits=\"all\"`)."]
    print("\n".join(lines))
    if a.md:
        bu.replace_section(a.md, "Long prompts", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
