"""A plain numpy Mamba-1 forward pass, in float64, written for reading rather than speed.

It is the independent reference for checkpoints transformers cannot run (state-spaces rms_norm=false, i.e.
LayerNorm with bias) and a cross-check of the converter's output.

    cfg, params = load_folder("converted/")      # any mambart-layout folder (or a dict of arrays + cfg)
    logits = forward(params, cfg, ids)             # (L, vocab_size) float64

`params` uses mambart names and shapes (A, conv weight (d_inner, d_conv)); `normalize()` also accepts the
Hugging Face / state-spaces forms (A_log, conv weight (d_inner, 1, d_conv), backbone.embedding).
"""
import json
from pathlib import Path

import numpy as np


def silu(x):
    return x / (1.0 + np.exp(-x))


def softplus(x):
    return np.logaddexp(0.0, x)


def rms_norm(x, w, eps):
    # x * rsqrt(mean(x^2) + eps) * w
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def causal_conv1d(x, w, b):
    """x: (L, d_inner), w: (d_inner, d_conv), b: (d_inner,) or None -> (L, d_inner).
    y[t, c] = b[c] + sum_k w[c, k] * x[t - (d_conv - 1) + k, c], with x = 0 before the start."""
    L, d_conv = x.shape[0], w.shape[1]
    xp = np.concatenate([np.zeros((d_conv - 1, x.shape[1])), x])
    y = np.zeros_like(x) if b is None else np.tile(b, (L, 1))
    for k in range(d_conv):
        y = y + xp[k:k + L] * w[:, k]
    return y


def selective_scan(u, dt, A, B, C, D):
    """u, dt: (L, d_inner); A: (d_inner, d_state); B, C: (L, d_state); D: (d_inner,) -> y (L, d_inner).
    h = exp(dt * A) * h + dt * B * u;  y = h @ C + D * u."""
    h = np.zeros(A.shape)  # (d_inner, d_state)
    y = np.zeros(u.shape)
    for t in range(u.shape[0]):
        h = np.exp(dt[t][:, None] * A) * h + (dt[t] * u[t])[:, None] * B[t][None, :]
        y[t] = h @ C[t] + D * u[t]
    return y


def mixer(p, pre, h, cfg):
    """One Mamba-1 mixer on h: (L, d_model) -> (L, d_model)."""
    d_inner, d_state, dt_rank = cfg["d_inner"], cfg["d_state"], cfg["dt_rank"]
    xz = h @ p[pre + "in_proj.weight"].T + p.get(pre + "in_proj.bias", 0.0)  # (L, 2*d_inner)
    x, z = xz[:, :d_inner], xz[:, d_inner:]
    x = silu(causal_conv1d(x, p[pre + "conv1d.weight"], p.get(pre + "conv1d.bias")))
    x_dbl = x @ p[pre + "x_proj.weight"].T  # (L, dt_rank + 2*d_state)
    dt, B, C = x_dbl[:, :dt_rank], x_dbl[:, dt_rank:dt_rank + d_state], x_dbl[:, dt_rank + d_state:]
    dt = softplus(dt @ p[pre + "dt_proj.weight"].T + p[pre + "dt_proj.bias"])  # (L, d_inner)
    y = selective_scan(x, dt, p[pre + "A"], B, C, p[pre + "D"])
    y = y * silu(z)
    return y @ p[pre + "out_proj.weight"].T + p.get(pre + "out_proj.bias", 0.0)


def norm(p, name, x, cfg):
    if cfg["rms_norm"]:
        return rms_norm(x, p[name + ".weight"], cfg["norm_eps"])
    return layer_norm(x, p[name + ".weight"], p[name + ".bias"], cfg["norm_eps"])


def forward(params, cfg, ids):
    """ids: 1-D ints -> logits (L, vocab_size) float64. cfg needs n_layer, d_inner, d_state, dt_rank, rms_norm,
    norm_eps, tie_embeddings."""
    p = normalize(params)
    x = p["backbone.embeddings.weight"][np.asarray(ids)]  # (L, d_model)
    for i in range(cfg["n_layer"]):
        pre = f"backbone.layers.{i}."
        x = x + mixer(p, pre + "mixer.", norm(p, pre + "norm", x, cfg), cfg)
    x = norm(p, "backbone.norm_f", x, cfg)
    head = p["backbone.embeddings.weight"] if cfg["tie_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def normalize(params):
    """float64 copies in mambart names/shapes: A from A_log, 2-D conv weights, backbone.embeddings."""
    out = {}
    for name, arr in params.items():
        arr = np.asarray(arr, dtype=np.float64)
        if name.endswith(".A_log"):
            name, arr = name[:-len("_log")], -np.exp(arr)
        elif name.endswith("conv1d.weight") and arr.ndim == 3:
            arr = arr[:, 0, :]
        elif name == "backbone.embedding.weight":
            name = "backbone.embeddings.weight"
        out[name] = arr
    return out


def load_folder(path):
    """(cfg, params as float64) of a mambart-layout folder, read with mambart's own numpy safetensors reader."""
    from mambart.convert.dtypes import to_f32
    from mambart.convert.safetensors_io import open_safetensors

    path = Path(path)
    raw = json.loads((path / "config.json").read_text())
    extra = raw.get("mambart", {})
    cfg = {
        "n_layer": raw["num_hidden_layers"], "d_inner": raw["intermediate_size"], "d_state": raw["state_size"],
        "dt_rank": raw["time_step_rank"], "rms_norm": extra.get("rms_norm", True),
        "norm_eps": raw["layer_norm_epsilon"], "tie_embeddings": raw["tie_word_embeddings"],
    }
    tensors = open_safetensors(path / "model.safetensors")
    params = {n: to_f32(t.load(), t.dtype).astype(np.float64) for n, t in tensors.items()}
    return cfg, params
