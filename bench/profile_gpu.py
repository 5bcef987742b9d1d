"""Kernel-level profile target for ncu: one phase of mambart on a random fp16 model.
  python3 bench/profile_gpu.py SHAPE PHASE [BATCH] [LAYERS] [TOKENS]
PHASE: decode (TOKENS steps of a decode from a one-token prompt, so every launch is decode-shaped; graphs are
turned off so ncu sees plain launches) or prefill (one forward of TOKENS tokens, default 4096 = one CUDA chunk).
LAYERS overrides n_layer (a few layers suffice for per-kernel times). Only the phase itself is profiled: run ncu
with --profile-from-start off (cudaProfilerStart/Stop bracket the phase). bench/ncu_table.py turns ncu's raw
CSV into a per-kernel table. Example (what tools/gpu_check.sh's profile stage runs):
  ncu --profile-from-start off --clock-control none --csv --page raw --metrics gpu__time_duration.sum \\
      python3 bench/profile_gpu.py 2.8b prefill 1 2 4096 > p.csv && python3 bench/ncu_table.py p.csv"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_gpu  # noqa: E402


def main():
    shape, phase = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    layers = int(sys.argv[4]) if len(sys.argv) > 4 and int(sys.argv[4]) > 0 else None
    tokens = int(sys.argv[5]) if len(sys.argv) > 5 else (4096 if phase == "prefill" else 4)
    if phase == "decode":
        os.environ.setdefault("MAMBART_CUDA_GRAPHS", "0")
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
            ids = rng.integers(0, bench_gpu.VOCAB, size=(batch, 1))
            s.generate(ids, max_new_tokens=2, stop_tokens=[])  # warm-up (cuBLAS load, workspaces)
            torch.cuda.synchronize()
            torch.cuda.profiler.start()
            s.generate(ids, max_new_tokens=tokens, stop_tokens=[])
        else:
            ids = rng.integers(0, bench_gpu.VOCAB, size=(batch, tokens))
            s.forward(ids[:, :16], logits="last")  # warm-up
            torch.cuda.synchronize()
            torch.cuda.profiler.start()
            s.forward(ids, logits="last")
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()
