#!/usr/bin/env python3
"""Train the small byte-level Mamba-1 model embedded in the mambart package.

The model is a Hugging Face ``MambaForCausalLM`` (so every HF-compatible loader, including
mambart's, reads it) trained on the CPU on the Python standard library's own source code.
It is a demo that produces Python-looking text, not a useful assistant.

Tokenizer: raw UTF-8 bytes (ids 0..255) plus one end-of-text token (id 256) that separates
files; vocab_size = 257 (no padding rows, so no id can be sampled that is not a byte or EOT).

Training uses a compact re-implementation of HF's MambaMixer forward (same parameters, the
parameters *are* the HF model's) with a selective scan written as a custom autograd function
(a sequential loop over time on whole (batch, d_inner, d_state) tensors, with a hand-written
reverse scan as backward). Before training it checks that its logits equal
MambaForCausalLM.forward's in fp32 (relative error < 1e-4).

Usage (what produced the shipped model; see python/mambart/models/default/MODEL_CARD.md):
    OMP_WAIT_POLICY=PASSIVE nice -n 10 python tools/train_default_model.py --threads 1 --max-minutes 34
One thread because the CPU was shared by several busy jobs: two threads then spent most of their time
waiting for each other (>30 s/step vs 3.6 s/step with one). ``--card-only`` rewrites MODEL_CARD.md
(samples from the saved model) without training. The LR schedule ends at --max-minutes or --steps,
whichever comes first, so a faster machine sees more steps with the same command.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F

EOT = 256
VOCAB_SIZE = 257


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- data

def stdlib_files() -> list[Path]:
    """All *.py files of the interpreter's standard library, minus tests and site-packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("test"))
        for f in sorted(filenames):
            if f.endswith(".py") and not f.startswith("test_"):
                out.append(Path(dirpath) / f)
    return out


def is_validation(path: Path, root: Path) -> bool:
    """Deterministic ~3% held-out slice of files (by hash of the relative path)."""
    rel = str(path.relative_to(root)).encode()
    return hashlib.sha1(rel).digest()[0] < 8


def build_corpus() -> tuple[np.ndarray, np.ndarray, int]:
    root = Path(sysconfig.get_paths()["stdlib"])
    train, val = [], []
    files = stdlib_files()
    for p in files:
        data = np.frombuffer(p.read_bytes(), dtype=np.uint8).astype(np.int16)
        chunk = np.concatenate([data, np.array([EOT], dtype=np.int16)])
        (val if is_validation(p, root) else train).append(chunk)
    return np.concatenate(train), np.concatenate(val), len(files)


# ----------------------------------------------------------------------------- fast forward

class SelectiveScan(torch.autograd.Function):
    """Selective scan of HF's mamba_selective_scan (without the D skip and the gate).

    delta, u: (batch, L, d_inner); A: (d_inner, d_state) (negative); B, C: (batch, L, d_state).
    h_t = exp(delta_t A) * h_{t-1} + (delta_t u_t) B_t,  h_{-1} = 0,  y_t = h_t C_t -> (batch, L, d_inner).
    Loops over time on (batch, d_inner, d_state) tensors (cache-resident, time-major layout) and
    recomputes exp(delta_t A) in the backward instead of storing it; only h is stored.
    """

    _buffers: dict = {}  # slot -> reused h buffer (avoids page-faulting a fresh 10-100 MB tensor each call)

    @staticmethod
    def forward(ctx, delta, u, A, B, C, slot=None):
        dl = delta.transpose(0, 1).contiguous()  # (L, batch, d_inner)
        xl = dl * u.transpose(0, 1)  # (L, batch, d_inner)
        bl = B.transpose(0, 1).contiguous()  # (L, batch, d_state)
        cl = C.transpose(0, 1).contiguous()  # (L, batch, d_state)
        L, batch, d_inner = dl.shape
        shape = (L, batch, d_inner, A.shape[1])
        H = SelectiveScan._buffers.get(slot) if slot is not None else None
        if H is None or H.shape != shape or H.dtype != dl.dtype:
            H = torch.empty(shape, dtype=dl.dtype)  # (L, batch, d_inner, d_state)
            if slot is not None:
                SelectiveScan._buffers[slot] = H
        h = torch.zeros(batch, d_inner, A.shape[1], dtype=dl.dtype)
        for t in range(L):
            h = torch.addcmul(h * torch.exp(dl[t, :, :, None] * A), xl[t, :, :, None], bl[t, :, None, :], out=H[t])
        y = torch.einsum("lbdn,lbn->bld", H, cl)
        ctx.save_for_backward(dl, xl, u, A, bl, cl)
        ctx.H = H  # not version-tracked: a reused buffer; valid until the next forward with this slot
        return y

    @staticmethod
    def backward(ctx, gy):
        dl, xl, u, A, bl, cl = ctx.saved_tensors
        H = ctx.H
        L, batch, d_inner = dl.shape
        gyl = gy.transpose(0, 1).contiguous()  # (L, batch, d_inner)
        gx = torch.empty_like(dl)  # dLoss/d(delta*u), (L, batch, d_inner)
        gdl = torch.zeros_like(dl)  # dLoss/ddelta through exp(delta A), (L, batch, d_inner)
        gb = torch.empty_like(bl)  # (L, batch, d_state)
        gA = torch.zeros(batch, d_inner, A.shape[1], dtype=dl.dtype)  # summed over batch at the end
        g = torch.zeros(batch, d_inner, A.shape[1], dtype=dl.dtype)  # dLoss/dh_t, (batch, d_inner, d_state)
        for t in range(L - 1, -1, -1):
            g = torch.addcmul(g, gyl[t, :, :, None], cl[t, :, None, :])
            gx[t] = torch.bmm(g, bl[t, :, :, None])[..., 0]
            gb[t] = torch.bmm(xl[t, :, None, :], g)[:, 0]
            dA = torch.exp(dl[t, :, :, None] * A)  # (batch, d_inner, d_state)
            if t > 0:
                gz = g * H[t - 1] * dA  # dLoss/d(delta_t A)
                gdl[t] = (gz * A).sum(-1)
                gA.addcmul_(gz, dl[t, :, :, None])
            g = g * dA
        gc = torch.einsum("lbd,lbdn->bln", gyl, H)
        gdelta = (gdl + gx * u.transpose(0, 1)).transpose(0, 1)
        gu = (gx * dl).transpose(0, 1)
        return gdelta, gu, gA.sum(0), gb.transpose(0, 1), gc, None


def rms_norm(x: torch.Tensor, norm) -> torch.Tensor:
    var = x.pow(2).mean(-1, keepdim=True)
    return norm.weight * (x * torch.rsqrt(var + norm.variance_epsilon))


def mixer_forward(m, h: torch.Tensor, slot: int = 0) -> torch.Tensor:
    """Same function as transformers' MambaMixer.forward without cache. h: (batch, L, d_model)."""
    L = h.shape[1]
    d_state, dt_rank = m.ssm_state_size, m.time_step_rank
    xz = F.linear(h, m.in_proj.weight, m.in_proj.bias)  # (batch, L, 2*d_inner)
    x, z = xz.chunk(2, dim=-1)
    x = F.conv1d(x.transpose(1, 2), m.conv1d.weight, m.conv1d.bias,
                 padding=m.conv_kernel_size - 1, groups=m.intermediate_size)[..., :L]
    u = F.silu(x).transpose(1, 2)  # (batch, L, d_inner)
    dt, Bm, Cm = torch.split(F.linear(u, m.x_proj.weight), [dt_rank, d_state, d_state], dim=-1)
    delta = F.softplus(F.linear(dt, m.dt_proj.weight, m.dt_proj.bias))  # (batch, L, d_inner)
    A = -torch.exp(m.A_log)  # (d_inner, d_state)
    y = SelectiveScan.apply(delta, u, A, Bm, Cm, slot)  # (batch, L, d_inner)
    y = (y + u * m.D) * F.silu(z)
    return F.linear(y, m.out_proj.weight, m.out_proj.bias)


def fast_logits(model, ids: torch.Tensor) -> torch.Tensor:
    bb = model.backbone
    h = bb.embeddings(ids)
    for i, layer in enumerate(bb.layers):
        h = h + mixer_forward(layer.mixer, rms_norm(h, layer.norm), slot=i)
    h = rms_norm(h, bb.norm_f)
    return F.linear(h, model.lm_head.weight)


def parity_check(model, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB_SIZE, (2, 96), generator=g)
    model.eval()
    with torch.no_grad():
        ref = model(ids).logits.float()
        got = fast_logits(model, ids)
    model.train()
    return ((got - ref).norm() / ref.norm()).item()


# ----------------------------------------------------------------------------- training

def make_model(args):
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=args.d_model, num_hidden_layers=args.n_layer,
        state_size=args.d_state, expand=2, conv_kernel=4, use_bias=False, use_conv_bias=True,
        tie_word_embeddings=True, residual_in_fp32=True, layer_norm_epsilon=1e-5,
        bos_token_id=EOT, eos_token_id=EOT, pad_token_id=EOT,
    )
    torch.manual_seed(args.seed)
    return MambaForCausalLM(cfg)


def batches(data: np.ndarray, batch: int, seq_len: int, rng: np.random.Generator):
    starts = rng.integers(0, len(data) - seq_len - 1, size=batch)
    x = np.stack([data[s:s + seq_len + 1] for s in starts]).astype(np.int64)
    t = torch.from_numpy(x)
    return t[:, :-1], t[:, 1:]


@torch.no_grad()
def eval_bpb(model, val: np.ndarray, seq_len: int, n_batches: int, batch: int) -> float:
    rng = np.random.default_rng(1234)  # same slice every time
    tot = 0.0
    for _ in range(n_batches):
        x, y = batches(val, batch, seq_len, rng)
        tot += F.cross_entropy(fast_logits(model, x).flatten(0, 1), y.flatten()).item()
    return tot / n_batches / math.log(2)


def lr_at(step: int, args, minutes: float = 0.0) -> float:
    """Linear warmup, then cosine decay over whichever runs out first: --steps or --max-minutes
    (the wall-clock budget, since this trains on a shared CPU of unknown speed)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = max((step - args.warmup) / max(1, args.steps - args.warmup), minutes / args.max_minutes)
    p = min(1.0, p)
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def save_model(model, out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    half = type(model)(model.config)
    half.load_state_dict(model.state_dict())
    half = half.to(torch.float16)
    half.config.torch_dtype = "float16"
    half.save_pretrained(out, safe_serialization=True)
    (out / "mambart_tokenizer.json").write_text(json.dumps({"type": "bytes", "eot_token_id": EOT}) + "\n")
    (out / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")


SAMPLE_PROMPTS = ["def fib(n):", "import os\n"]


def sample_texts(out: Path, max_new_tokens: int, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, mode, text) samples from the saved model, generated by transformers (fp32 on CPU)."""
    from transformers import MambaForCausalLM

    model = MambaForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    res = []
    for prompt in SAMPLE_PROMPTS:
        ids = torch.tensor([list(prompt.encode())])
        for mode, kw in (("greedy", dict(do_sample=False)), ("temperature 0.8", dict(do_sample=True, temperature=0.8))):
            torch.manual_seed(seed)
            gen = model.generate(ids, max_new_tokens=max_new_tokens, top_k=0, top_p=1.0, eos_token_id=EOT,
                                 pad_token_id=EOT, **kw)[0, ids.shape[1]:].tolist()
            text = bytes(i for i in gen if i < 256).decode("utf-8", errors="replace")
            res.append((prompt, mode, prompt + text))
    return res


def trained_parity(out: Path, seed: int) -> float:
    """Relative logit error of the training-time forward vs MambaForCausalLM on the saved weights."""
    from transformers import MambaForCausalLM

    model = MambaForCausalLM.from_pretrained(out, dtype=torch.float32)
    return parity_check(model, seed)


def write_model_card(out: Path, meta: dict, samples) -> None:
    n_bytes = (out / "model.safetensors").stat().st_size
    lines = [
        "# mambart default model (embedded demo)",
        "",
        "A tiny **byte-level Mamba-1** language model shipped inside the mambart package so that",
        "`mambart generate \"def fib(n):\"` works right after install, with no model path and no network.",
        "It is a **demo**, not a useful assistant: it has learned what Python source looks like",
        "(indentation, keywords, docstrings, common names), not how to write correct programs.",
        "",
        "## What it is",
        f"- Architecture: Hugging Face `MambaForCausalLM` (`model_type: mamba`), d_model={meta['d_model']}, "
        f"n_layer={meta['n_layer']}, d_state={meta['d_state']}, expand=2, d_conv=4, tied embeddings, RMSNorm.",
        f"- Parameters: {meta['params']:,}; stored as float16 safetensors: {n_bytes:,} bytes.",
        "- Tokenizer: UTF-8 bytes, ids 0..255, plus end-of-text id 256 (also bos/eos/pad); vocab_size = 257",
        "  (not padded, so only bytes and end-of-text can be sampled). Described by `mambart_tokenizer.json`.",
        "",
        "## Data",
        f"The `*.py` files of the CPython {meta['python']} standard library that ships with the interpreter",
        "(`sysconfig.get_paths()['stdlib']`), without `site-packages` and test folders/files; files joined with",
        f"the end-of-text id between them. {meta['n_files']} files; {meta['train_bytes']:,} training bytes and a held-out",
        f"slice of {meta['val_bytes']:,} bytes (files whose SHA-1 of the relative path starts with a byte < 8).",
        "",
        "## Training",
        f"- `{meta['command']}` (from the repository root; seed {meta['seed']}, torch {meta['torch']}).",
        f"- On a shared 2-core CPU: {meta['steps']} steps of {meta['batch']} x {meta['seq_len']} bytes "
        f"({meta['tokens_seen']:,} bytes seen, {meta['tokens_seen'] / meta['train_bytes']:.2f} epochs) in "
        f"{meta['train_minutes']} minutes; AdamW (betas 0.9/0.95, weight decay {meta['weight_decay']} on matrices), "
        f"peak LR {meta['lr']}, linear warmup then cosine decay over the wall-clock budget, grad clip 1.0.",
        f"- Final validation loss: **{meta['val_bits_per_byte']} bits per byte** (train EMA {meta['final_train_bpb_ema']}).",
        f"- The training forward is a compact re-implementation of transformers' MambaMixer; its logits match",
        f"  `MambaForCausalLM.forward` in fp32 with relative error {meta['parity_rel_err']:.1e} at init and "
        f"{meta['parity_trained_rel_err']:.1e} on the saved weights.",
        "",
        f"## Samples (transformers `generate`, fp32, {meta['sample_tokens']} new bytes, seed {meta['seed']})",
        "",
        "Like most tiny byte-level models, greedy decoding soon falls into a loop (repeated lines, or",
        "runs of spaces after `def fib(n):`); sampling with temperature ~0.8 (or greedy with",
        "repetition_penalty ~1.2) gives more varied Python-looking text. Demos should sample.",
        "",
    ]
    for prompt, mode, text in samples:
        lines += [f"Prompt {prompt!r}, {mode}:", "", "```python", text.rstrip("\n"), "```", ""]
    (out / "MODEL_CARD.md").write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="python/mambart/models/default")
    ap.add_argument("--ckpt", default="build/train/ckpt.pt", help="periodic training checkpoint")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=33.0,
                    help="wall-clock budget: the LR schedule ends and training stops (and saves) after this long")
    ap.add_argument("--bench", type=int, default=0, help="only time N training steps, then exit")
    ap.add_argument("--sample-tokens", type=int, default=200)
    ap.add_argument("--card-only", action="store_true",
                    help="only (re)write MODEL_CARD.md with fresh samples from the model saved in --out")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.card_only:
        meta = json.loads((out / "training_meta.json").read_text())
        cfg = json.loads((out / "config.json").read_text())
        for key, cfg_key in (("d_model", "hidden_size"), ("n_layer", "num_hidden_layers"), ("d_state", "state_size")):
            meta.setdefault(key, cfg[cfg_key])
        meta.setdefault("weight_decay", args.weight_decay)
        meta["sample_tokens"] = args.sample_tokens
        if "parity_trained_rel_err" not in meta:
            meta["parity_trained_rel_err"] = trained_parity(out, args.seed)
        (out / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        write_model_card(out, meta, sample_texts(out, args.sample_tokens, args.seed))
        log(f"wrote {out / 'MODEL_CARD.md'}")
        return 0
    t0 = time.time()
    train, val, n_files = build_corpus()
    log(f"corpus: {n_files} files, train {len(train)} bytes, val {len(val)} bytes")

    model = make_model(args)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: d_model={args.d_model} n_layer={args.n_layer} d_state={args.d_state} params={n_params}")
    err = parity_check(model, args.seed)
    log(f"parity check vs MambaForCausalLM.forward (fp32, random init): rel err {err:.2e}")
    if not err < 1e-4:
        log("parity check FAILED")
        return 1

    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "A_log" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "A_log" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    step = 0
    ckpt = Path(args.ckpt)
    if args.resume and ckpt.exists():
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        log(f"resumed from {ckpt} at step {step}")
    rng = np.random.default_rng(args.seed + step)

    model.train()
    t_train = time.time()
    loss_ema = None
    val_bpb = float("nan")
    while step < args.steps:
        for gp in opt.param_groups:
            gp["lr"] = lr_at(step, args, (time.time() - t0) / 60)
        x, y = batches(train, args.batch, args.seq_len, rng)
        loss = F.cross_entropy(fast_logits(model, x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bpb = loss.item() / math.log(2)
        loss_ema = bpb if loss_ema is None else 0.95 * loss_ema + 0.05 * bpb
        elapsed = time.time() - t_train
        if args.bench and step >= args.bench:
            log(f"bench: {step} steps in {elapsed:.1f}s = {elapsed / step:.2f} s/step, "
                f"{step * args.batch * args.seq_len / elapsed:.0f} tokens/s")
            return 0
        if step % 10 == 0:
            log(f"step {step}/{args.steps} lr {opt.param_groups[0]['lr']:.2e} train bpb {bpb:.3f} (ema {loss_ema:.3f}) "
                f"{elapsed / step:.2f} s/step")
        out_of_time = (time.time() - t0) / 60 > args.max_minutes
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            val_bpb = eval_bpb(model, val, args.seq_len, 8, args.batch)
            log(f"step {step} val bpb {val_bpb:.4f}")
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
        if out_of_time:
            log(f"time budget of {args.max_minutes} min reached at step {step}; stopping")
            break

    meta = {
        "steps": step, "batch": args.batch, "seq_len": args.seq_len,
        "tokens_seen": step * args.batch * args.seq_len, "lr": args.lr, "seed": args.seed,
        "train_minutes": round((time.time() - t_train) / 60, 1), "val_bits_per_byte": round(val_bpb, 4),
        "final_train_bpb_ema": round(loss_ema or float("nan"), 4), "params": n_params,
        "parity_rel_err": err, "train_bytes": int(len(train)), "val_bytes": int(len(val)),
        "n_files": n_files, "python": sys.version.split()[0], "torch": torch.__version__,
        "d_model": args.d_model, "n_layer": args.n_layer, "d_state": args.d_state,
        "weight_decay": args.weight_decay, "sample_tokens": args.sample_tokens,
        "command": "nice -n 10 python " + " ".join(sys.argv),
    }
    save_model(model, out, meta)
    meta["parity_trained_rel_err"] = trained_parity(out, args.seed)
    log(f"parity check on the saved (fp16 -> fp32) weights: rel err {meta['parity_trained_rel_err']:.2e}")
    (out / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"saved to {out}: {json.dumps(meta)}")
    samples = sample_texts(out, args.sample_tokens, args.seed)
    for prompt, mode, text in samples:
        log(f"sample {prompt!r} {mode}:\n{text}")
    write_model_card(out, meta, samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
