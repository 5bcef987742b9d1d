"""Prefill time of the selective-scan kernel variants, in one process on one model (the env knobs are read per
launch): the one-group kernel (MAMBART_SCAN_WS=0) and the warp-specialized one (MAMBART_SCAN_WS=1).
  python3 bench/scan_variants.py [SHAPE] [LAYERS] [TOKENS] [REPS]      (default: 2.8b 4 8192 7)
Prints the median forward time of each variant (last logits; the projections are the same in both, so the
difference is the scan's) and the ratio."""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_gpu  # noqa: E402


def main():
    shape = sys.argv[1] if len(sys.argv) > 1 else "2.8b"
    layers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 8192
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 7
    import torch

    import mambart

    d, _ = bench_gpu.SHAPES[shape]
    bench_gpu.SHAPES[shape] = (d, layers)
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = bench_gpu.make_checkpoint(torch, shape, Path(tmp) / "m")
        del model
        torch.cuda.empty_cache()
        s = mambart.Session(str(Path(tmp) / "m"), device="cuda")
        ids = np.random.default_rng(0).integers(0, bench_gpu.VOCAB, size=(1, tokens))
        res = {}
        for variant in ("0", "1", "0", "1"):  # interleaved: the second pass of each is the one kept
            os.environ["MAMBART_SCAN_WS"] = variant
            s.forward(ids, logits="last")  # warm-up
            res[variant] = bench_gpu.timed(lambda: s.forward(ids, logits="last"), reps) * 1e3
        os.environ.pop("MAMBART_SCAN_WS", None)
    print(f"scan variants, {shape} x {layers} layers, {tokens} tokens (forward ms, median of {reps}): "
          f"one-group {res['0']:.2f}, warp-specialized {res['1']:.2f}, ratio {res['0'] / res['1']:.2f}x")


if __name__ == "__main__":
    main()
