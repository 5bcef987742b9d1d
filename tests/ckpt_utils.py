"""Random checkpoints for tests: HF MambaForCausalLM models with every parameter perturbed (a fresh HF
model has symmetric parameters that can hide indexing bugs; see shared/TESTING_NOTES.md)."""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np

BASE = dict(vocab_size=101, hidden_size=48, state_size=16, num_hidden_layers=3, expand=2, conv_kernel=4,
            time_step_rank="auto", use_bias=False, use_conv_bias=True, residual_in_fp32=True,
            tie_word_embeddings=True, layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def make_hf_model(seed: int = 0, **overrides):
    """A random MambaForCausalLM (fp32, eval mode) with all parameters perturbed by noise."""
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    cfg = MambaConfig(**{**BASE, **overrides})
    model = MambaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.rand_like(p) * 8 + 0.5))  # distinct decay rates per channel/state
            elif name.endswith("dt_proj.bias"):
                p.copy_(torch.randn_like(p) * 0.5 - 2.0)
            else:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def save_hf(model, folder, **kwargs) -> Path:
    folder = Path(folder)
    model.save_pretrained(folder, **kwargs)
    return folder


def hf_logits(model, ids: np.ndarray) -> np.ndarray:
    """Uncached full forward: (B, L, vocab) float32 for ids (B, L)."""
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(ids), dtype=torch.long)).logits.float().numpy()


def hf_greedy(model, ids: np.ndarray, n: int) -> np.ndarray:
    """Greedy continuation by argmax of uncached full forwards (avoids HF's cached-generate quirks)."""
    seq = np.asarray(ids).reshape(1, -1)
    out = []
    for _ in range(n):
        nxt = int(hf_logits(model, seq)[0, -1].argmax())
        out.append(nxt)
        seq = np.concatenate([seq, [[nxt]]], axis=1)
    return np.array(out)


def hf_cache_states(model, ids: np.ndarray):
    """(conv, ssm) per layer from HF's cache after a forward over ids (works with transformers 4.x and 5.x)."""
    import torch

    with torch.no_grad():
        cache = model(torch.as_tensor(np.asarray(ids), dtype=torch.long), use_cache=True).cache_params
    n = model.config.num_hidden_layers
    if hasattr(cache, "layers"):
        return ([cache.layers[i].conv_states[0].numpy() for i in range(n)],
                [cache.layers[i].recurrent_states[0].numpy() for i in range(n)])
    return ([cache.conv_states[i].numpy() for i in range(n)], [cache.ssm_states[i].numpy() for i in range(n)])


def rel_err(a, b) -> float:
    """max |a - b| / max |b|: the relative error used by every parity test."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def to_state_spaces(hf_folder, out_folder, pad_vocab_size_multiple: int = 8, rms_norm: bool = True) -> Path:
    """Rewrites an HF checkpoint in the original state-spaces (mamba_ssm) layout: renamed tensors,
    mamba_ssm config.json, embedding (and lm_head) rows padded to the multiple."""
    from safetensors.numpy import load_file, save_file

    hf_folder, out_folder = Path(hf_folder), Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((hf_folder / "config.json").read_text())
    w = load_file(str(hf_folder / "model.safetensors"))
    vocab = cfg["vocab_size"]
    padded = -(-vocab // pad_vocab_size_multiple) * pad_vocab_size_multiple
    out = {}
    for k, v in w.items():
        k2 = k.replace("backbone.embeddings.", "backbone.embedding.")
        if k2 in ("backbone.embedding.weight", "lm_head.weight"):
            v = np.concatenate([v, np.zeros((padded - vocab, v.shape[1]), v.dtype)])
        out[k2] = np.ascontiguousarray(v)
    if cfg.get("tie_word_embeddings", True):
        out["lm_head.weight"] = out["backbone.embedding.weight"].copy()
    save_file(out, str(out_folder / "model.safetensors"))
    ss = {
        "d_model": cfg["hidden_size"], "n_layer": cfg["num_hidden_layers"], "vocab_size": vocab,
        "ssm_cfg": {"d_state": cfg["state_size"], "d_conv": cfg["conv_kernel"], "expand": cfg["expand"],
                    "dt_rank": cfg["time_step_rank"], "bias": cfg["use_bias"], "conv_bias": cfg["use_conv_bias"]},
        "rms_norm": rms_norm, "residual_in_fp32": cfg["residual_in_fp32"], "fused_add_norm": True,
        "pad_vocab_size_multiple": pad_vocab_size_multiple, "tie_embeddings": cfg.get("tie_word_embeddings", True),
    }
    (out_folder / "config.json").write_text(json.dumps(ss))
    return out_folder
