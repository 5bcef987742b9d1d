"""convert(): any accepted checkpoint -> a mambart-layout folder, written atomically; info(): what a folder holds."""
import json
import os
import shutil
import uuid
from pathlib import Path

from .config import mambart_config, parse_config
from .dtypes import LONG_NAME, parse_output_dtype
from .errors import ConvertError
from .plan import build_plan
from .progress import Progress
from .safetensors_io import SafetensorsWriter
from .source import open_source, tokenizer_token_id


def load(src):
    """(Source, ModelSpec) of a folder or weights file, with the special token ids filled in where known."""
    source = open_source(src)
    spec = parse_config(source.raw_config, str(source.dir / "config.json"))
    if spec.layout == "state-spaces":
        # mamba_ssm configs usually carry no token ids; the tokenizer files, when present, may say
        for which in ("bos", "eos", "pad"):
            if getattr(spec, f"{which}_token_id") is None:
                setattr(spec, f"{which}_token_id", tokenizer_token_id(source, f"{which}_token"))
    return source, spec


def _same_or_inside(a, b):
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _check_destination(dst, source, force):
    if _same_or_inside(dst, source.dir) or _same_or_inside(source.dir, dst):
        raise ConvertError(f"{dst}: the destination must not be the source folder, inside it, or contain it")
    if dst.exists() or dst.is_symlink():
        if not force:
            raise ConvertError(f"{dst} already exists; pass --force (force=True) to overwrite it")
        if not dst.is_dir() or dst.is_symlink():
            raise ConvertError(f"{dst} exists and is not a folder; remove it yourself")


def _write(tmp, plan, config, source, progress):
    total = sum(t.nbytes for t in plan)
    bar = Progress(total, "mambart convert", progress)
    writer = SafetensorsWriter(tmp / "model.safetensors", [(t.name, t.dtype, t.shape) for t in plan],
                               {"format": "pt", "mambart_format_version": "1"})
    try:
        for t in plan:
            writer.write(t.name, t.produce())
            bar.update(t.nbytes)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    writer.close()
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for f in source.tokenizer_files:
        shutil.copyfile(f, tmp / f.name)


def convert(src, dst, dtype=None, force=False, progress=True):
    """Converts the checkpoint at `src` (folder or weights file) into a mambart-layout folder `dst`.

    dtype: "float32", "float16" or "bfloat16" for the projections, embedding and lm_head (None keeps the source's
    dtype); A, D, dt bias, conv and norm parameters are always float32. An existing `dst` is refused unless
    force=True. Nothing is left at `dst` when conversion fails. Returns the Path of `dst`.
    """
    out_code = parse_output_dtype(dtype)
    source, spec = load(src)
    plan, out_code = build_plan(spec, source.tensors, out_code)
    dst = Path(dst).expanduser()
    _check_destination(dst, source, force)
    label = source.raw_config.get("mambart", {}).get("source") if spec.layout == "mambart" else None
    config = mambart_config(spec, LONG_NAME[out_code], label or f"{spec.layout}:{source.dir.resolve()}")

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(tmp, plan, config, source, progress)
        if dst.exists():  # --force: move the old folder aside, put the new one in place, then delete the old
            old = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(dst, old)
            os.replace(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def info(path):
    """What a model folder holds (any layout the runtime or the converter accepts), without loading weights."""
    source, spec = load(path)
    plan, out_code = build_plan(spec, source.tensors)
    dtypes = {}
    for name, t in source.tensors.items():
        if not (name == "lm_head.weight" and spec.tie_embeddings):  # a stored tied head is the embedding
            dtypes[t.dtype] = dtypes.get(t.dtype, 0) + t.numel
    return {
        "path": str(source.dir),
        "layout": spec.layout,
        "weights_format": source.weights_format,
        "weight_files": [str(p) for p in source.weight_files],
        "file_bytes": source.file_bytes,
        "config": spec.as_dict(),
        "n_params": sum(t.numel for t in plan),  # as the runtime holds them (embedding once when tied)
        "n_tensors": len(source.tensors),
        "dtypes": dtypes,
        "projection_dtype": LONG_NAME[out_code],
        "state_bytes_per_sequence": spec.state_bytes_per_sequence(),
        "tokenizer_files": [p.name for p in source.tokenizer_files],
    }
