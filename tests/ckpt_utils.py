"""Random Mamba-1 checkpoints for tests, in every layout mambart reads (torch/transformers: tests only).

    model = make_hf_model(seed=1, use_bias=True)      # MambaForCausalLM, fp32, every parameter perturbed
    save_hf(model, tmp / "hf")                        # config.json + model.safetensors (save_pretrained kwargs)
    save_hf_bin(model, tmp / "bin", n_shards=3)       # pytorch_model.bin (+ shards + index), old HF style
    save_state_spaces(model, tmp / "ss")              # mamba_ssm names + config.json, torch.save'd .bin
    to_state_spaces(tmp / "hf", tmp / "ss2")          # the same layout as safetensors, from an HF folder
    model = make_layernorm_model(seed=2)              # norms swapped for nn.LayerNorm (rms_norm=false)
    hf_logits(model, ids), rel_err(a, b)

A freshly initialized model is too symmetric to catch index mistakes (A_log rows equal, D = 1, norms = 1), so
every parameter is perturbed (see shared/TESTING_NOTES.md).
"""
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
    """A random MambaForCausalLM (fp32, eval mode), BASE updated with `overrides`, all parameters perturbed."""
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


def make_layernorm_model(seed: int = 0, **overrides):
    """make_hf_model with every RMSNorm replaced by nn.LayerNorm (random weight and bias): the forward pass of a
    state-spaces model with rms_norm=false. Save it with save_state_spaces(..., rms_norm=False)."""
    import torch

    model = make_hf_model(seed, **overrides)
    d, eps = model.config.hidden_size, model.config.layer_norm_epsilon
    g = torch.Generator().manual_seed(seed + 2000)

    def layer_norm():
        ln = torch.nn.LayerNorm(d, eps=eps)
        with torch.no_grad():
            ln.weight.copy_(1 + 0.2 * torch.randn(d, generator=g))
            ln.bias.copy_(0.2 * torch.randn(d, generator=g))
        return ln

    for layer in model.backbone.layers:
        layer.norm = layer_norm()
    model.backbone.norm_f = layer_norm()
    return model.eval()


def save_hf(model, folder, **kwargs) -> Path:
    """save_pretrained (safetensors); e.g. max_shard_size="20KB" for a sharded checkpoint with an index."""
    folder = Path(folder)
    model.save_pretrained(folder, **kwargs)
    return folder


def _hf_state_dict(model):
    """The state dict transformers saves: lm_head dropped when tied, tensors contiguous."""
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def _save_bin_shards(sd, folder, n_shards):
    """torch.save `sd` as n_shards files named like transformers' .bin shards, plus pytorch_model.bin.index.json."""
    import torch

    names = list(sd)
    per = -(-len(names) // n_shards)
    weight_map, total = {}, 0
    for i in range(n_shards):
        fname = f"pytorch_model-{i + 1:05d}-of-{n_shards:05d}.bin"
        part = {n: sd[n] for n in names[i * per:(i + 1) * per]}
        torch.save(part, folder / fname)
        weight_map.update({n: fname for n in part})
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))


def save_hf_bin(model, folder, n_shards: int = 1, dtype=None, legacy: bool = False) -> Path:
    """config.json + pytorch_model.bin (or n_shards shards + index), as transformers < 5 wrote them with
    save_pretrained(safe_serialization=False). dtype: cast the tensors (e.g. torch.bfloat16); legacy: torch's
    pre-1.6 non-zip format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    sd = _hf_state_dict(model)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    if n_shards > 1:
        _save_bin_shards(sd, folder, n_shards)
    else:
        import torch

        torch.save(sd, folder / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)
    return folder


def _state_spaces_config(c, vocab_size, pad_vocab_size_multiple, rms_norm):
    """mamba_ssm MambaConfig fields for an HF MambaConfig `c`."""
    return {
        "d_model": c["hidden_size"], "n_layer": c["num_hidden_layers"], "vocab_size": vocab_size,
        "ssm_cfg": {"d_state": c["state_size"], "d_conv": c["conv_kernel"], "expand": c["expand"],
                    "dt_rank": c["time_step_rank"], "bias": c["use_bias"], "conv_bias": c["use_conv_bias"]},
        "rms_norm": rms_norm, "residual_in_fp32": c["residual_in_fp32"], "fused_add_norm": True,
        "pad_vocab_size_multiple": pad_vocab_size_multiple, "tie_embeddings": c.get("tie_word_embeddings", True),
    }


def save_state_spaces(model, folder, rms_norm: bool = True, vocab_size=None, pad_vocab_size_multiple: int = 8,
                      store_rows=None, legacy: bool = False) -> Path:
    """A state-spaces (mamba_ssm MambaLMHeadModel) checkpoint of `model`: torch.save of the renamed state dict
    (lm_head.weight always present, sharing the embedding's storage when tied) + a mamba_ssm config.json.

    vocab_size: the config's unpadded vocab_size (default: the model's); the model's rows must equal it padded
    to the multiple. store_rows: save only the first rows of the embedding / lm_head (the converter pads them
    back with zeros; zero the model's rows beyond it first so that it stays the reference).
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k.replace("backbone.embeddings.", "backbone.embedding."): v.detach().clone()
          for k, v in model.state_dict().items()}
    if store_rows is not None:
        sd["backbone.embedding.weight"] = sd["backbone.embedding.weight"][:store_rows].clone()
        if not model.config.tie_word_embeddings:
            sd["lm_head.weight"] = sd["lm_head.weight"][:store_rows].clone()
    if model.config.tie_word_embeddings:
        sd["lm_head.weight"] = sd["backbone.embedding.weight"]  # one storage, as torch.save writes a tied model
    torch.save(sd, folder / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)
    cfg = _state_spaces_config(model.config.to_dict(), vocab_size or model.config.vocab_size,
                               pad_vocab_size_multiple, rms_norm)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return folder


def to_state_spaces(hf_folder, out_folder, pad_vocab_size_multiple: int = 8, rms_norm: bool = True) -> Path:
    """Rewrites an HF checkpoint in the original state-spaces (mamba_ssm) layout as safetensors: renamed tensors,
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
    ss = _state_spaces_config(cfg, vocab, pad_vocab_size_multiple, rms_norm)
    (out_folder / "config.json").write_text(json.dumps(ss))
    return out_folder


def hf_logits(model, ids: np.ndarray) -> np.ndarray:
    """Uncached full forward, float32: (B, L, vocab) for ids (B, L), (L, vocab) for ids (L,)."""
    import torch

    ids = np.asarray(ids)
    with torch.no_grad():
        out = model(torch.as_tensor(ids.reshape(-1, ids.shape[-1]), dtype=torch.long)).logits.float().numpy()
    return out[0] if ids.ndim == 1 else out


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
