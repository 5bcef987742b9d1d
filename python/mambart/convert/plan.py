"""Which tensors the mambart layout holds, where each comes from, and every shape/dtype check on the way.

build_plan() reads no tensor data: it returns OutTensors whose `produce()` loads and converts one tensor, so the
writer can stream them to disk one at a time.
"""
import re
from dataclasses import dataclass
from math import prod
from typing import Callable

import numpy as np

from .config import MAMBA2_MESSAGE
from .dtypes import FLOAT_TYPES, NUMPY_DTYPE, cast, to_f32
from .errors import ConvertError


@dataclass
class OutTensor:
    name: str           # name in the mambart layout
    dtype: str          # F32 / F16 / BF16
    shape: tuple
    produce: Callable   # () -> numpy array of `shape` holding raw `dtype` data

    @property
    def nbytes(self):
        return prod(self.shape) * NUMPY_DTYPE[self.dtype].itemsize

    @property
    def numel(self):
        return prod(self.shape)


_MAMBA2_TENSOR = re.compile(r"layers\.\d+\.mixer\.(norm\.weight|dt_bias)$")


def _shape_str(shape):
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class _Tensors:
    """Looks tensors up by name (with alternatives), checks them, and remembers which ones were used."""

    def __init__(self, tensors, prefix):
        self.tensors, self.prefix, self.used = tensors, prefix, set()

    def _key(self, name):
        return self.prefix + name[len("backbone."):] if name.startswith("backbone.") else name

    def get(self, names, shapes):
        """First present of `names` (without the 'backbone.' prefix when the file has none); its shape must be one
        of `shapes`. Returns (name, LazyTensor)."""
        for name in names:
            key = self._key(name)
            if key in self.tensors:
                t = self.tensors[key]
                self.used.add(key)
                if t.shape not in shapes:
                    want = " or ".join(_shape_str(s) for s in shapes)
                    raise ConvertError(f"tensor '{key}': expected shape {want}, found {_shape_str(t.shape)} "
                                       f"(in {t.file})")
                if t.dtype not in FLOAT_TYPES:
                    raise ConvertError(f"tensor '{key}': expected a float dtype (F32, F16, BF16), found {t.dtype} "
                                       f"(in {t.file})")
                return key, t
        alt = " or ".join(f"'{self._key(n)}'" for n in names)
        raise ConvertError(f"tensor {alt} is missing from the checkpoint (expected shape {_shape_str(shapes[0])})")


def _f32(t):
    return lambda: to_f32(t.load(), t.dtype)


def _as(t, dtype):
    return lambda: cast(t.load(), t.dtype, dtype)


def _neg_exp(t):
    def produce():  # A = -exp(A_log), in fp32 like transformers' `-torch.exp(self.A_log.float())`
        return -np.exp(to_f32(t.load(), t.dtype))
    return produce


def _padded_rows(t, dtype, rows):
    def produce():
        arr = cast(t.load(), t.dtype, dtype)
        if arr.shape[0] < rows:  # state-spaces checkpoints saved with the unpadded vocab
            arr = np.concatenate([arr, np.zeros((rows - arr.shape[0],) + arr.shape[1:], arr.dtype)])
        return arr
    return produce


def default_dtype(spec, tensors):
    """The source's projection dtype (in_proj of layer 0); float64 sources become float32."""
    for name in ("backbone.layers.0.mixer.in_proj.weight", "layers.0.mixer.in_proj.weight"):
        if name in tensors and tensors[name].dtype in ("F32", "F16", "BF16"):
            return tensors[name].dtype
    return "F32"


def build_plan(spec, tensors, out_dtype=None):
    """Checks the source tensors against `spec` and returns (list of OutTensor, projection dtype)."""
    for name in tensors:
        if _MAMBA2_TENSOR.search(name):
            raise ConvertError(f"tensor '{name}' belongs to a Mamba-2 model: {MAMBA2_MESSAGE}")
    out_dtype = out_dtype or default_dtype(spec, tensors)
    prefix = "backbone." if any(n.startswith("backbone.") for n in tensors) else ""
    src = _Tensors(tensors, prefix)
    V, d, di, ds, dc, r = spec.vocab_size, spec.d_model, spec.d_inner, spec.d_state, spec.d_conv, spec.dt_rank
    rows = [(V, d)]
    if spec.vocab_size_unpadded < V:
        rows.append((spec.vocab_size_unpadded, d))
    out = []

    def add(name, dtype, shape, produce):
        out.append(OutTensor(name, dtype, tuple(shape), produce))

    _, emb = src.get(["backbone.embeddings.weight", "backbone.embedding.weight"], rows)
    add("backbone.embeddings.weight", out_dtype, (V, d), _padded_rows(emb, out_dtype, V))

    def norm(src_base, out_base):
        _, w = src.get([src_base + ".weight"], [(d,)])
        add(out_base + ".weight", "F32", (d,), _f32(w))
        if not spec.rms_norm:
            _, b = src.get([src_base + ".bias"], [(d,)])
            add(out_base + ".bias", "F32", (d,), _f32(b))

    for i in range(spec.n_layer):
        L = f"backbone.layers.{i}"
        m = L + ".mixer"
        norm(L + ".norm", L + ".norm")
        _, t = src.get([m + ".in_proj.weight"], [(2 * di, d)])
        add(m + ".in_proj.weight", out_dtype, (2 * di, d), _as(t, out_dtype))
        if spec.in_proj_bias:
            _, t = src.get([m + ".in_proj.bias"], [(2 * di,)])
            add(m + ".in_proj.bias", "F32", (2 * di,), _f32(t))
        _, t = src.get([m + ".conv1d.weight"], [(di, 1, dc), (di, dc)])
        add(m + ".conv1d.weight", "F32", (di, dc), lambda t=t: _f32(t)().reshape(di, dc))
        if spec.conv_bias:
            _, t = src.get([m + ".conv1d.bias"], [(di,)])
            add(m + ".conv1d.bias", "F32", (di,), _f32(t))
        _, t = src.get([m + ".x_proj.weight"], [(r + 2 * ds, di)])
        add(m + ".x_proj.weight", out_dtype, (r + 2 * ds, di), _as(t, out_dtype))
        _, t = src.get([m + ".dt_proj.weight"], [(di, r)])
        add(m + ".dt_proj.weight", out_dtype, (di, r), _as(t, out_dtype))
        _, t = src.get([m + ".dt_proj.bias"], [(di,)])
        add(m + ".dt_proj.bias", "F32", (di,), _f32(t))
        name, t = src.get([m + ".A_log", m + ".A"], [(di, ds)])
        add(m + ".A", "F32", (di, ds), _neg_exp(t) if name.endswith("A_log") else _f32(t))
        _, t = src.get([m + ".D"], [(di,)])
        add(m + ".D", "F32", (di,), _f32(t))
        _, t = src.get([m + ".out_proj.weight"], [(d, di)])
        add(m + ".out_proj.weight", out_dtype, (d, di), _as(t, out_dtype))
        if spec.in_proj_bias:
            _, t = src.get([m + ".out_proj.bias"], [(d,)])
            add(m + ".out_proj.bias", "F32", (d,), _f32(t))

    norm("backbone.norm_f", "backbone.norm_f")
    if spec.tie_embeddings:
        src.used.add("lm_head.weight")  # a tied head may be stored (state-spaces torch.save); it is the embedding
    else:
        _, t = src.get(["lm_head.weight"], rows)
        add("lm_head.weight", out_dtype, (V, d), _padded_rows(t, out_dtype, V))

    unused = sorted(set(tensors) - src.used)
    if unused:
        more = f" and {len(unused) - 5} more" if len(unused) > 5 else ""
        raise ConvertError(f"unexpected tensors for this config ({spec.n_layer} layers, use_bias="
                           f"{spec.in_proj_bias}, conv_bias={spec.conv_bias}, rms_norm={spec.rms_norm}): "
                           + ", ".join(f"'{n}'" for n in unused[:5]) + more)
    # fp32 tensors first so that every tensor starts aligned to its element size in the file
    out.sort(key=lambda o: -NUMPY_DTYPE[o.dtype].itemsize)
    return out, out_dtype
