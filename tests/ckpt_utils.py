"""Random small Mamba-1 checkpoints for tests, in every layout mambart reads (torch/transformers: tests only).

    model = make_hf_model({"use_bias": True}, seed=1)  # MambaForCausalLM, fp32, every parameter perturbed
    save_hf_safetensors(model, tmp / "hf")             # config.json + model.safetensors (or shards)
    save_hf_bin(model, tmp / "bin")                    # pytorch_model.bin (or shards + index), old HF style
    save_state_spaces(model, tmp / "ss")               # mamba_ssm names + config.json
    model = make_layernorm_model({...}, seed=2)        # norms swapped for nn.LayerNorm (rms_norm=false)

Freshly initialized models are too symmetric to catch index mistakes (A_log rows equal, D = 1, norms = 1), so
every parameter gets noise.
"""
import json
import os
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL_CONFIG = dict(vocab_size=67, hidden_size=24, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
                    time_step_rank="auto", use_bias=False, use_conv_bias=True, residual_in_fp32=True,
                    tie_word_embeddings=True, layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0,
                    pad_token_id=0)


@torch.no_grad()
def perturb(model, seed, scale=0.2):
    """Adds N(0, scale^2) noise to every parameter (also breaks the A_log/D/norm symmetry of a fresh model)."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def make_hf_model(overrides=None, seed=0):
    """A random fp32 MambaForCausalLM in eval mode, SMALL_CONFIG updated with `overrides`, all params perturbed."""
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    cfg = MambaConfig(**{**SMALL_CONFIG, **(overrides or {})})
    model = MambaForCausalLM(cfg).eval()
    return perturb(model, seed + 1000)


def make_layernorm_model(overrides=None, seed=0):
    """Like make_hf_model, with every RMSNorm replaced by nn.LayerNorm (random weight and bias): the forward pass
    of a state-spaces model with rms_norm=false. It is saved with save_state_spaces(..., rms_norm=False)."""
    model = make_hf_model(overrides, seed)
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


def hf_state_dict(model):
    """The state dict transformers would save: lm_head dropped when tied, tensors contiguous."""
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def save_hf_safetensors(model, folder, max_shard_size=None):
    """save_pretrained as safetensors (sharded when max_shard_size, e.g. "20KB", is given)."""
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kw)
    return Path(folder)


def _save_shards(sd, folder, base, n_shards):
    """torch.save `sd` as n_shards files named like transformers' old .bin shards, plus the index."""
    names = list(sd)
    per = -(-len(names) // n_shards)
    weight_map, total = {}, 0
    for i in range(n_shards):
        fname = f"{base}-{i + 1:05d}-of-{n_shards:05d}.bin"
        part = {n: sd[n] for n in names[i * per:(i + 1) * per]}
        torch.save(part, folder / fname)
        weight_map.update({n: fname for n in part})
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / f"{base}.bin.index.json").write_text(json.dumps(index, indent=2))


def save_hf_bin(model, folder, n_shards=1, dtype=None, legacy=False):
    """config.json + pytorch_model.bin (or n_shards shards + pytorch_model.bin.index.json), as transformers < 5
    wrote them with save_pretrained(safe_serialization=False). dtype: cast the floats (e.g. torch.bfloat16)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    sd = hf_state_dict(model)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    if n_shards > 1:
        _save_shards(sd, folder, "pytorch_model", n_shards)
    else:
        torch.save(sd, folder / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)
    return folder


def state_spaces_config(model, rms_norm=True, pad_vocab_size_multiple=8, vocab_size=None):
    c = model.config
    return {
        "d_model": c.hidden_size, "n_layer": c.num_hidden_layers,
        "vocab_size": vocab_size or c.vocab_size,
        "ssm_cfg": {"d_state": c.state_size, "d_conv": c.conv_kernel, "expand": c.expand,
                    "dt_rank": c.time_step_rank, "bias": c.use_bias, "conv_bias": c.use_conv_bias},
        "rms_norm": rms_norm, "residual_in_fp32": c.residual_in_fp32, "fused_add_norm": True,
        "pad_vocab_size_multiple": pad_vocab_size_multiple, "tie_embeddings": c.tie_word_embeddings,
    }


def save_state_spaces(model, folder, rms_norm=True, vocab_size=None, pad_vocab_size_multiple=8, store_rows=None,
                      legacy=False):
    """A state-spaces (mamba_ssm MambaLMHeadModel) checkpoint of `model`: torch.save of the renamed state dict
    (lm_head.weight always present, sharing the embedding's storage when tied) + a mamba_ssm config.json.

    vocab_size: the config's (unpadded) vocab_size; the model's rows must equal it padded to the multiple.
    store_rows: save only the first store_rows rows of the embedding / lm_head (the converter pads them back);
    the caller zeroes the model's rows beyond it first so that the reference matches.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {}
    for k, v in model.state_dict().items():
        sd[k.replace("backbone.embeddings.", "backbone.embedding.")] = v.detach().clone()
    emb = sd["backbone.embedding.weight"]
    if store_rows is not None:
        emb = sd["backbone.embedding.weight"] = emb[:store_rows].clone()
    if model.config.tie_word_embeddings:
        sd["lm_head.weight"] = emb  # same storage, as torch.save writes a tied model
    elif store_rows is not None:
        sd["lm_head.weight"] = sd["lm_head.weight"][:store_rows].clone()
    torch.save(sd, folder / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)
    cfg = state_spaces_config(model, rms_norm, pad_vocab_size_multiple, vocab_size)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return folder


@torch.no_grad()
def hf_logits(model, ids):
    """transformers' fp32 logits (L, vocab) as float64 numpy for 1-D ids."""
    out = model(torch.as_tensor(ids, dtype=torch.long)[None]).logits[0]
    return out.double().numpy()


def rel_err(a, b):
    """max|a - b| / max|b|, the tolerance measure used in mambart's tests."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
