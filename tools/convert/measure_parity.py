#!/usr/bin/env python3
"""Prints the max relative logit error (max|a-b|/max|b|) of converted checkpoints against transformers fp32, for
every source case of tests/test_convert.py and every output dtype. Needs torch + transformers (test extras).

    PYTHONPATH=python python3 tools/convert/measure_parity.py            # mambart.Session on the outputs
    PYTHONPATH=python python3 tools/convert/measure_parity.py --numpy    # tests/reference_numpy.py instead
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

import ckpt_utils as cu  # noqa: E402
import reference_numpy as rn  # noqa: E402
import test_convert as tc  # noqa: E402
from mambart.convert import convert  # noqa: E402


def logits(folder, ids, use_numpy):
    if use_numpy:
        cfg, params = rn.load_folder(folder)
        return rn.forward(params, cfg, ids)
    import mambart

    return mambart.Session(str(folder), device="cpu").forward(ids)


def main():
    use_numpy = "--numpy" in sys.argv
    dtypes = (None, "float16", "bfloat16")
    print(f"{'source':32s} " + " ".join(f"{d or 'keep':>9s}" for d in dtypes))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, (name, build) in enumerate(tc.CASES.items()):
            model, folder = build(root / name)
            ids = np.random.default_rng(100 + i).integers(0, 61, tc.L)
            ref = cu.hf_logits(model, ids)
            errs = [cu.rel_err(logits(convert(folder, root / f"{name}-{d}", dtype=d, progress=False), ids,
                                      use_numpy), ref) for d in dtypes]
            print(f"{name:32s} " + " ".join(f"{e:9.1e}" for e in errs))


if __name__ == "__main__":
    main()
