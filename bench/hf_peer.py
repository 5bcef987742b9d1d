"""HF transformers peer for bench_cpu (run as a child process; prints RESULT {json}). Kept out of the package so
that mambart never imports torch.

    python bench/hf_peer.py PATH --dtype f32 --threads 2 --pp 128 --tg 32
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 50280


def _child_hf(a) -> dict:
    import numpy as np
    import torch
    from transformers import MambaForCausalLM

    torch.set_num_threads(a.threads)
    dt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    try:
        model = MambaForCausalLM.from_pretrained(a.path, dtype=dt).eval()
    except TypeError:
        model = MambaForCausalLM.from_pretrained(a.path, torch_dtype=dt).eval()
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(1, VOCAB, (1, a.pp)))
    with torch.inference_mode():
        model(ids[:, :32])
        t = time.perf_counter()
        model(ids)
        pp = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(ids[:, :1], max_new_tokens=a.tg, min_new_tokens=a.tg, do_sample=False)
        tg = time.perf_counter() - t
        assert out.shape[1] == a.tg + 1
    return dict(pp_tok_s=a.pp / pp, tg_tok_s=a.tg / tg)



def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--dtype", default="f32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pp", type=int, default=128)
    p.add_argument("--tg", type=int, default=32)
    p.add_argument("--reps", type=int, default=1)
    a = p.parse_args()
    print("RESULT " + json.dumps(_child_hf(a)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
