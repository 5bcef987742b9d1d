"""Kernel-level profile target for ncu: one phase of mambart on a random fp16 model.
  python3 bench/profile_gpu.py SHAPE PHASE [BATCH] [LAYERS]
PHASE: decode (prompt 8, 6 new tokens; run with MAMBART_CUDA_GRAPHS=0 so ncu sees plain launches) or
prefill (one forward of 2048 tokens). LAYERS overrides n_layer (a few layers suffice for per-kernel times).
Example: ncu --print-summary per-kernel --metrics gpu__time_duration.sum python3 bench/profile_gpu.py 2.8b decode 1 2"""
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_gpu  # noqa: E402


def main():
    shape, phase = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    layers = int(sys.argv[4]) if len(sys.argv) > 4 else None
    import torch

    import mambart

    if layers:
        d, _ = bench_gpu.SHAPES[shape]
        bench_gpu.SHAPES[shape] = (d, layers)
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = bench_gpu.make_checkpoint(torch, shape, Path(tmp) / "m")
        del model
        torch.cuda.empty_cache()
        s = mambart.Session(str(Path(tmp) / "m"), device="cuda")
        rng = np.random.default_rng(0)
        if phase == "decode":
            s.generate(rng.integers(0, bench_gpu.VOCAB, size=(batch, 8)), max_new_tokens=6, stop_tokens=[])
        else:
            s.forward(rng.integers(0, bench_gpu.VOCAB, size=(batch, 2048)), logits="last")


if __name__ == "__main__":
    main()
