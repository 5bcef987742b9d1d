"""The installed package imports and runs with torch (and transformers) absent."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import sys, json, struct
    import importlib.abc

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("torch", "transformers", "safetensors"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    import mambart
    s = mambart.Session(sys.argv[1], device="cpu")
    logits = s.forward([1, 2, 3])
    toks = s.generate([1, 2, 3], max_new_tokens=5, stop_tokens=[])
    assert logits.shape == (3, 11) and toks.shape == (5,)
    assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules)
    print("OK", float(np.abs(logits).sum()))
    """
)


def write_safetensors(path: Path, tensors: dict) -> None:
    """A minimal safetensors writer (numpy only) so this test needs no torch to make its checkpoint."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, np.float32)
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def test_runs_without_torch(tmp_path):
    rng = np.random.default_rng(0)
    d, di, n, r, V, K = 8, 16, 4, 1, 11, 4
    t = {"backbone.embeddings.weight": rng.normal(size=(V, d)), "backbone.norm_f.weight": 1 + rng.normal(size=d) * 0.1}
    for i in range(2):
        p = f"backbone.layers.{i}."
        t.update({
            p + "norm.weight": 1 + rng.normal(size=d) * 0.1,
            p + "mixer.in_proj.weight": rng.normal(size=(2 * di, d)) * 0.3,
            p + "mixer.conv1d.weight": rng.normal(size=(di, 1, K)) * 0.3,
            p + "mixer.conv1d.bias": rng.normal(size=di) * 0.1,
            p + "mixer.x_proj.weight": rng.normal(size=(r + 2 * n, di)) * 0.3,
            p + "mixer.dt_proj.weight": rng.normal(size=(di, r)) * 0.3,
            p + "mixer.dt_proj.bias": rng.normal(size=di) * 0.1,
            p + "mixer.A_log": np.log(rng.uniform(0.5, 4, size=(di, n))),
            p + "mixer.D": rng.normal(size=di),
            p + "mixer.out_proj.weight": rng.normal(size=(d, di)) * 0.3,
        })
    write_safetensors(tmp_path / "model.safetensors", t)
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "mamba", "hidden_size": d, "num_hidden_layers": 2, "vocab_size": V, "state_size": n,
        "expand": 2, "conv_kernel": K, "time_step_rank": r, "eos_token_id": 0}))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK")
