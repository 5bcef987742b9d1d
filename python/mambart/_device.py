"""Arrays in CUDA memory shared with other libraries: logits handed out through DLPack (DeviceArray), and token ids
read from any DLPack or __cuda_array_interface__ object in CUDA memory (copied to the host by the C++ core)."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _core

# DLPack device types (dlpack.h DLDeviceType)
_KDL_CPU = 1
_KDL_CUDA_TYPES = {2: "cuda", 3: "cuda_host", 13: "cuda_managed"}
# DLPack dtype codes (DLDataTypeCode) numpy can view
_DL_KINDS = {0: "i", 1: "u", 2: "f", 6: "b"}


class DeviceArray:
    """float32 logits in a session's CUDA memory, returned by `Session.forward(..., device_output=True)`.

    Hand it to another library without a copy through DLPack: `torch.from_dlpack(a)`, `cupy.from_dlpack(a)`,
    `jax.dlpack.from_dlpack(a)` (or any array library's `from_dlpack`), or through `__cuda_array_interface__`
    (Numba, `cupy.asarray(a)`). `a.numpy()` copies it to the host. The memory is a fresh
    allocation owned by this object and shared with every consumer; it stays valid after the Session is gone and is
    freed when the last of them drops it. The computation is complete when it is returned (the session's stream
    was synchronized), so consumers may read it on any stream.
    """

    __slots__ = ("_owner", "_ptr", "_index", "shape", "device")

    def __init__(self, owner, ptr: int, index: int, shape: Tuple[int, ...]):
        self._owner = owner  # the core's handle of the device buffer
        self._ptr = int(ptr)
        self._index = int(index)
        self.shape = tuple(int(s) for s in shape)
        self.device = f"cuda:{self._index}"

    def _view(self):
        """A fresh DLPack export of the buffer (the capsule itself with older nanobind, else an exporter)."""
        return _core.cuda_view(self._owner, self._ptr, list(self.shape), self._index)

    dtype = np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * 4

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        # The data is ready for any stream (see the class docstring), so `stream` needs no action.
        v = self._view()
        if not hasattr(v, "__dlpack__"):
            return v
        if max_version is None and dl_device is None and copy is None:
            return v.__dlpack__()
        try:
            return v.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)
        except TypeError:  # an exporter that predates the versioned protocol
            return v.__dlpack__()

    def __dlpack_device__(self):
        return (2, self._index)  # kDLCUDA

    @property
    def data_ptr(self) -> int:
        """The device address of the first element (what torch's `data_ptr()` of a consumer returns)."""
        return self._ptr

    @property
    def __cuda_array_interface__(self) -> dict:
        """For Numba and other consumers of the CUDA array interface (v3); no stream to wait on."""
        return {"shape": self.shape, "typestr": "<f4", "data": (self.data_ptr, False), "strides": None,
                "version": 3, "stream": None}

    def numpy(self) -> np.ndarray:
        """A host copy (numpy float32)."""
        raw, shape, _ = _core.dlpack_cuda_to_host(self._view())
        return raw.view(np.float32).reshape(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype=float32, device={self.device!r})"


def _dlpack_device(obj) -> Optional[Tuple[int, int]]:
    fn = getattr(obj, "__dlpack_device__", None)
    if fn is None:
        return None
    try:
        dev = fn()
        return int(dev[0]), int(dev[1])
    except Exception:  # a producer that cannot say: treat it as no DLPack device
        return None


def _integer_dtype_from_dlpack(code: int, bits: int, lanes: int, name: str) -> np.dtype:
    kind = _DL_KINDS.get(code)
    if kind is None or lanes != 1 or (kind != "b" and bits not in (8, 16, 32, 64)):
        raise TypeError(f"{name} must be integers, got a DLPack array of dtype code {code} ({bits} bits x {lanes})")
    return np.dtype(np.bool_) if kind == "b" else np.dtype(f"{kind}{bits // 8}")


def _cuda_array_interface(obj) -> Optional[dict]:
    try:  # torch raises (not AttributeError) for dtypes the interface cannot describe
        cai = getattr(obj, "__cuda_array_interface__", None)
    except Exception:
        return None
    return cai if isinstance(cai, dict) else None


def _from_cuda_array_interface(cai: dict, name: str) -> np.ndarray:
    try:
        shape = tuple(int(s) for s in cai["shape"])
        dt = np.dtype(cai["typestr"])
        ptr = int(cai["data"][0])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{name}: malformed __cuda_array_interface__ ({e!r})") from None
    if cai.get("mask") is not None:
        raise ValueError(f"{name}: masked arrays (__cuda_array_interface__ 'mask') are not supported")
    if dt.kind not in "iub":  # bool is rejected by the common checks, like a host bool array
        raise TypeError(f"{name} must be integers, got dtype {dt}")
    strides = cai.get("strides")
    if strides is None:  # C-contiguous
        strides, step = [], dt.itemsize
        for s in reversed(shape):
            strides.insert(0, step)
            step *= s
    strides = [int(s) for s in strides]
    if len(strides) != len(shape):
        raise ValueError(f"{name}: __cuda_array_interface__ has shape {shape} but strides {tuple(strides)}")
    stream = cai.get("stream") or 0
    raw = _core.cuda_to_host(ptr, list(shape), strides, dt.itemsize, int(stream))
    return raw.view(dt).reshape(shape)


def cuda_ids_to_host(obj, name: str = "ids") -> Optional[np.ndarray]:
    """A host copy (numpy, the array's own dtype and shape) of an array in CUDA memory exposed through DLPack
    (torch.cuda tensors, CuPy, JAX) or __cuda_array_interface__ (CuPy, Numba); None for anything else."""
    if isinstance(obj, (np.ndarray, list, tuple, str, bytes, int)):
        return None
    dev = _dlpack_device(obj)
    if dev is not None and dev[0] == _KDL_CPU:
        return None
    if dev is not None and dev[0] not in _KDL_CUDA_TYPES:
        raise ValueError(f"{name}: arrays on DLPack device type {dev[0]} are not supported; pass host or CUDA arrays")
    try:
        if dev is not None:
            try:
                raw, shape, (code, bits, lanes) = _core.dlpack_cuda_to_host(obj)
            except (TypeError, BufferError):  # the producer's DLPack export failed: try the array interface
                cai = _cuda_array_interface(obj)
                if cai is None:
                    raise
                return _from_cuda_array_interface(cai, name)
            return raw.view(_integer_dtype_from_dlpack(code, bits, lanes, name)).reshape(shape)
        cai = _cuda_array_interface(obj)
        return None if cai is None else _from_cuda_array_interface(cai, name)
    except (RuntimeError, ValueError) as e:  # from the core (no CUDA in this build, no device, not CUDA memory)
        if str(e).startswith(f"{name}:"):
            raise
        raise type(e)(f"{name}: {e}") from None
