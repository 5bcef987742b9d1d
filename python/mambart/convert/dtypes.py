"""Element types by their safetensors names, and numpy conversions between F32, F16 and BF16.

numpy has no bfloat16: BF16 data is kept as uint16 bit patterns and widened to float32 by a shift. Narrowing to
BF16 rounds to nearest even (NaN stays NaN), the same rule as torch and mambart's C++ `f32_to_bf16`.
"""
import numpy as np

from .errors import ConvertError

# safetensors dtype name -> numpy dtype used to hold the raw little-endian data.
NUMPY_DTYPE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_TYPES = ("F64", "F32", "F16", "BF16")

# --dtype spellings accepted from users -> safetensors name.
OUTPUT_DTYPES = {
    "float32": "F32", "fp32": "F32", "f32": "F32",
    "float16": "F16", "fp16": "F16", "f16": "F16", "half": "F16",
    "bfloat16": "BF16", "bf16": "BF16",
}
LONG_NAME = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def itemsize(code):
    return NUMPY_DTYPE[code].itemsize


def parse_output_dtype(name):
    """'float16' / 'fp16' / 'bf16' ... -> 'F16' / 'BF16'; None stays None (keep the source dtype)."""
    if name is None:
        return None
    code = OUTPUT_DTYPES.get(str(name).lower())
    if code is None:
        raise ConvertError(f"unknown dtype {name!r}: expected float32, float16 or bfloat16")
    return code


def bf16_to_f32(bits):
    """uint16 BF16 bit patterns -> float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16(x):
    """float32 -> uint16 BF16 bit patterns, round to nearest even; NaN stays a (quiet) NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)).astype(np.uint16)
    is_nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if is_nan.any():
        rounded[is_nan] = ((u[is_nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return rounded


def to_f32(arr, code):
    """Raw data of dtype `code` (F64/F32/F16/BF16) -> float32 array (a view when it already is float32)."""
    if code == "F32":
        return np.asarray(arr, dtype=np.float32)
    if code == "BF16":
        return bf16_to_f32(arr)
    if code in ("F16", "F64"):
        return np.asarray(arr).astype(np.float32)
    raise ConvertError(f"cannot convert {code} data to float32")


CHUNK = 1 << 22  # elements converted at a time: keeps the temporaries of a large tensor small


def cast(arr, src, dst):
    """Raw data of dtype `src` -> raw data of dtype `dst` (both in FLOAT_TYPES; dst is never F64)."""
    if src == dst:
        return arr
    arr = np.asarray(arr)
    if arr.size > CHUNK:  # convert chunk by chunk into the output
        flat = arr.reshape(-1)
        out = np.empty(arr.size, NUMPY_DTYPE[dst])
        for i in range(0, arr.size, CHUNK):
            out[i:i + CHUNK] = _cast(flat[i:i + CHUNK], src, dst)
        return out.reshape(arr.shape)
    return _cast(arr, src, dst)


def _cast(arr, src, dst):
    if src == "F32" and dst == "F16":
        return np.asarray(arr).astype(np.float16)
    f = to_f32(arr, src)
    if dst == "F32":
        return f
    if dst == "F16":
        return f.astype(np.float16)
    if dst == "BF16":
        return f32_to_bf16(f)
    raise ConvertError(f"cannot convert {src} data to {dst}")
