"""safetensors read/write in plain numpy (the package must not need the `safetensors` wheel at run time).

Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
"__metadata__": {str: str}}, then the data region; offsets are relative to the data region.
"""
import json
import os
import struct
from math import prod
from pathlib import Path

import numpy as np

from .dtypes import NUMPY_DTYPE
from .errors import ConvertError
from .tensor import LazyTensor

MAX_HEADER_BYTES = 100 * 1024 * 1024


def read_header(path):
    """Parses and checks the header of one .safetensors file. Returns (tensors, metadata, data_start) where
    tensors maps name -> (dtype, shape, begin, end) with absolute file offsets."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ConvertError(f"{path}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > MAX_HEADER_BYTES:
            raise ConvertError(f"{path}: header length {n} is larger than the file ({size} bytes); truncated file?")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"{path}: invalid safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{path}: invalid safetensors header (not a JSON object)")
    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    spans = []
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise ConvertError(f"{where}: header entry is not an object")
        dtype, shape, offs = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in NUMPY_DTYPE:
            raise ConvertError(f"{where}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise ConvertError(f"{where}: invalid shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data_len):
            raise ConvertError(f"{where}: data offsets {offs!r} outside the data region ({data_len} bytes); "
                               "truncated file?")
        nbytes = prod(shape) * NUMPY_DTYPE[dtype].itemsize
        if offs[1] - offs[0] != nbytes:
            raise ConvertError(f"{where}: {offs[1] - offs[0]} bytes of data for shape {tuple(shape)} {dtype} "
                               f"({nbytes} bytes expected)")
        tensors[name] = (dtype, tuple(shape), data_start + offs[0], data_start + offs[1])
        spans.append((offs[0], offs[1], name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ConvertError(f"{path}: tensors {n0!r} and {n1!r} overlap")
    return tensors, metadata, data_start


def open_safetensors(path):
    """All tensors of one .safetensors file as LazyTensors. Each load memory-maps just that tensor (read-only), so
    its pages are released when the array is dropped: converting streams through a large file."""
    path = Path(path)
    tensors, _, _ = read_header(path)

    def view(begin, end, dtype, shape):
        if begin == end:
            return np.zeros(shape, NUMPY_DTYPE[dtype])
        return np.memmap(path, dtype=NUMPY_DTYPE[dtype], mode="r", offset=begin, shape=tuple(shape))

    return {
        name: LazyTensor(name, dtype, shape, str(path), lambda b=b, e=e, d=dtype, s=shape: view(b, e, d, s))
        for name, (dtype, shape, b, e) in tensors.items()
    }


class SafetensorsWriter:
    """Writes one .safetensors file tensor by tensor (streaming: one tensor in memory at a time).

    entries: list of (name, dtype, shape) in file order; `write(name, array)` must then be called in that order.
    """

    def __init__(self, path, entries, metadata=None):
        self.path = Path(path)
        self._entries = list(entries)
        header = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        offset = 0
        for name, dtype, shape in self._entries:
            nbytes = prod(shape) * NUMPY_DTYPE[dtype].itemsize
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)  # the data region starts 8-byte aligned
        self.total_bytes = 8 + len(raw) + offset
        self._next = 0
        self._f = open(self.path, "wb")
        self._f.write(struct.pack("<Q", len(raw)))
        self._f.write(raw)

    def write(self, name, array):
        exp_name, dtype, shape = self._entries[self._next]
        arr = np.asarray(array, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        if name != exp_name or arr.dtype != NUMPY_DTYPE[dtype] or tuple(arr.shape) != tuple(shape):
            raise AssertionError(f"writer: got {name} {arr.dtype} {arr.shape}, expected {exp_name} {dtype} {shape}")
        self._f.write(arr.reshape(-1).view(np.uint8).data)
        self._next += 1

    def close(self):
        try:
            if self._next != len(self._entries):
                raise AssertionError(f"writer: {len(self._entries) - self._next} tensors were not written")
            self._f.flush()
            os.fsync(self._f.fileno())
        finally:
            self._f.close()

    def abort(self):
        self._f.close()


def save_file(tensors, path, metadata=None):
    """Writes a dict {name: (dtype, array)} in one go (small files, tests)."""
    entries = [(name, dtype, tuple(np.shape(arr))) for name, (dtype, arr) in tensors.items()]
    w = SafetensorsWriter(path, entries, metadata)
    try:
        for name, (_, arr) in tensors.items():
            w.write(name, arr)
    except BaseException:
        w.abort()
        raise
    w.close()
