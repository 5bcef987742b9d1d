"""Validation and conversion of token-id inputs (lists, numpy arrays, host or CUDA arrays through DLPack or
__cuda_array_interface__, ragged lists of rows)."""
from __future__ import annotations

import numpy as np

from ._device import cuda_ids_to_host

_INT32_MAX = 2**31 - 1


def as_id_array(ids, name: str = "ids") -> np.ndarray:
    """Returns a C-contiguous int32 array of ndim 1 or 2, or raises TypeError/ValueError naming the problem."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{name} must be integer token ids, got {type(ids).__name__} (pass text through a tokenizer)")
    on_host = cuda_ids_to_host(ids, name)  # ids in CUDA memory: copied to the host (they are small)
    if on_host is not None:
        ids = on_host
    elif not isinstance(ids, np.ndarray) and hasattr(ids, "__dlpack__") and not hasattr(ids, "__array__"):
        try:  # any host array exporting DLPack (JAX/CuPy/torch CPU tensors...), without a copy where possible
            ids = np.from_dlpack(ids)
        except (BufferError, RuntimeError, TypeError, ValueError) as e:
            raise ValueError(f"{name}: cannot read a DLPack array from {type(ids).__name__} in host memory ({e}); "
                             "pass token ids in host or CUDA memory") from None
    arr = np.asarray(ids)
    if arr.dtype == object:
        raise ValueError(f"{name} must be a rectangular array of integers; for rows of different lengths pass a list of 1-D arrays")
    if arr.size == 0:
        raise ValueError(f"empty input: {name} has shape {arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (L,) or (B, L), got {arr.shape}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > _INT32_MAX:
        bad = lo if lo < 0 else hi
        raise ValueError(f"token id {bad} in {name} is out of range")
    return np.ascontiguousarray(arr, dtype=np.int32)


def is_ragged(ids) -> bool:
    """A list/tuple of 1-D sequences (possibly of different lengths) rather than one array."""
    if isinstance(ids, np.ndarray) or not isinstance(ids, (list, tuple)) or not ids:
        return False
    first = ids[0]
    return isinstance(first, (list, tuple, np.ndarray)) and (
        isinstance(first, np.ndarray) or len({len(r) for r in ids}) > 1
    )


def as_rows(ids, name: str = "ids") -> tuple[list[np.ndarray], bool]:
    """Rows of ids as a list of (1, L_i) int32 arrays, and whether the input was a single 1-D sequence."""
    if is_ragged(ids):
        rows = [as_id_array(r, f"{name}[{i}]") for i, r in enumerate(ids)]
        for i, r in enumerate(rows):
            if r.ndim != 1:
                raise ValueError(f"{name}[{i}] must be 1-D, got shape {r.shape}")
        return [r.reshape(1, -1) for r in rows], False
    arr = as_id_array(ids, name)
    if arr.ndim == 1:
        return [arr.reshape(1, -1)], True
    return [arr[i : i + 1] for i in range(arr.shape[0])], False
