"""torch checkpoints (`pytorch_model.bin`) read without torch, by a restricted unpickler.

The zip format (torch >= 1.6): `<archive>/data.pkl` holds the pickled state dict; each tensor is pickled as
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` where `storage` is a persistent id
('storage', torch.FloatStorage, key, location, numel) naming the zip entry `<archive>/data/<key>`.
The legacy format (torch.save(..., _use_new_zipfile_serialization=False)) is a sequence of pickles followed by
the raw storages; it is read too. The older tar format is refused.

Safety: the unpickler resolves only the globals in _ALLOWED (emulations that build LazyTensors and never touch
the file system or run code); any other global raises ConvertError before anything is called. Tensor data is
read only when a LazyTensor is loaded, memory-mapped when the zip entry is stored uncompressed.
"""
import collections
import pickle
import struct
import zipfile
from math import prod
from pathlib import Path

import numpy as np

from .dtypes import NUMPY_DTYPE
from .errors import ConvertError
from .tensor import LazyTensor

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    """Stands for torch.FloatStorage & co. in a pickle: only its dtype matters. Not a type, so NEWOBJ refuses it."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


_STORAGE_TYPES = {
    "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "DoubleStorage": "F64",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL",
}


class _Storage:
    """One storage: a flat array of `numel` elements of `dtype`, read by `read()` on demand. Not cached: each
    load maps (or reads) it afresh, so a converted tensor's pages are released once it has been written."""

    __slots__ = ("key", "dtype", "numel", "_read")

    def __init__(self, key, dtype, numel, read):
        self.key, self.dtype, self.numel, self._read = key, dtype, numel, read

    def array(self):
        return self._read()

    def __setstate__(self, state):
        raise TypeError("storage cannot be unpickled")


def _int_tuple(x, what):
    if not isinstance(x, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in x):
        raise ConvertError(f"invalid tensor {what} {x!r} in the pickle")
    return tuple(x)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """Emulates torch._utils._rebuild_tensor(_v2): a (possibly strided) view of a storage, as a LazyTensor."""
    if not isinstance(storage, _Storage):
        raise ConvertError("invalid tensor in the pickle: its storage is not a storage reference")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise ConvertError(f"invalid tensor storage offset {storage_offset!r} in the pickle")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise ConvertError(f"invalid tensor in the pickle: size {size} and stride {stride} differ in rank")
    numel = prod(size)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) if numel else storage_offset - 1
    if last >= storage.numel:
        raise ConvertError(f"invalid tensor in the pickle: size {size}, stride {stride}, offset {storage_offset} "
                           f"reach beyond its storage of {storage.numel} elements")

    contiguous = all(stride[i] == prod(size[i + 1:]) for i in range(len(size)) if size[i] > 1)

    def load():
        flat = storage.array()
        if numel == 0:
            return np.zeros(size, dtype=flat.dtype)
        if contiguous:
            return flat[storage_offset:storage_offset + numel].reshape(size)
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[storage_offset:], shape=size,
                                               strides=tuple(s * itemsize for s in stride), writeable=False)
        return np.ascontiguousarray(view)

    return LazyTensor("", storage.dtype, size, None, load)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, LazyTensor):
        raise ConvertError("invalid parameter in the pickle: its data is not a tensor")
    return data


def _ordered_dict(*args):
    if args:  # torch pickles OrderedDict() with no arguments
        raise ConvertError("invalid OrderedDict construction in the pickle")
    return collections.OrderedDict()


_ALLOWED = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
_ALLOWED.update({("torch", name): _StorageType(code) for name, code in _STORAGE_TYPES.items()})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, label, storage_for):
        super().__init__(file)
        self._label = label
        self._storage_for = storage_for  # (storage_type, key, numel) -> _Storage
        self._storages = {}

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise ConvertError(f"refusing to unpickle global '{module}.{name}' in {self._label}: not part of a "
                               "torch state dict (the file may be malicious; nothing was executed)")
        return obj

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)
                or not isinstance(pid[4], int) or pid[4] < 0):
            raise ConvertError(f"{self._label}: unsupported persistent id in the pickle: {pid!r:.200}")
        if len(pid) == 6 and pid[5] is not None:
            raise ConvertError(f"{self._label}: storage views of the old torch format are not supported")
        _, stype, key, _location, numel = pid[:5]
        st = self._storages.get(key)
        if st is None:
            st = self._storages[key] = self._storage_for(stype.dtype, key, numel)
        elif st.dtype != stype.dtype:
            # one storage seen with two dtypes (torch >= 2 untyped storages): refuse rather than guess
            raise ConvertError(f"{self._label}: storage {key!r} is used with two dtypes ({st.dtype}, {stype.dtype})")
        return st


def _name_tensors(obj, label):
    """The unpickled object must be a {str: tensor} mapping; returns {name: LazyTensor} with names filled in."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict) and not any(
            isinstance(v, LazyTensor) for v in obj.values()):
        obj = obj["state_dict"]  # {"state_dict": ...} training checkpoints
    if not isinstance(obj, dict):
        raise ConvertError(f"{label}: expected a state dict (name -> tensor), found {type(obj).__name__}")
    out = {}
    for name, t in obj.items():
        if not isinstance(name, str) or not isinstance(t, LazyTensor):
            raise ConvertError(f"{label}: entry {name!r} of the state dict is not a tensor")
        out[name] = LazyTensor(name, t.dtype, t.shape, label, t._load)
    return out


def _mapped(path, offset, dtype, numel, what):
    nbytes = numel * NUMPY_DTYPE[dtype].itemsize
    size = Path(path).stat().st_size
    if offset + nbytes > size:
        raise ConvertError(f"{path}: {what} needs bytes {offset}..{offset + nbytes} but the file has {size}; "
                           "truncated file?")
    if numel == 0:
        return np.zeros(0, NUMPY_DTYPE[dtype])
    return np.memmap(path, dtype=NUMPY_DTYPE[dtype], mode="r", offset=offset, shape=(numel,))


def _load_zip(path, zf):
    pkls = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pkls) != 1:
        raise ConvertError(f"{path}: not a torch checkpoint (expected one data.pkl in the zip, found {len(pkls)})")
    prefix = pkls[0][: -len("data.pkl")]
    order = "<"
    if prefix + "byteorder" in zf.namelist():
        bo = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if bo not in ("little", "big"):
            raise ConvertError(f"{path}: unknown byteorder {bo!r}")
        order = "<" if bo == "little" else ">"

    def storage_for(dtype, key, numel):
        entry = prefix + "data/" + key
        try:
            info = zf.getinfo(entry)
        except KeyError:
            raise ConvertError(f"{path}: storage {key!r} is missing from the archive") from None
        nbytes = numel * NUMPY_DTYPE[dtype].itemsize
        if info.file_size < nbytes:
            raise ConvertError(f"{path}: storage {key!r} has {info.file_size} bytes, {nbytes} expected")

        def read():
            if info.compress_type == zipfile.ZIP_STORED and order == "<":
                with open(path, "rb") as f:  # local file header: 30 bytes + name + extra, then the data
                    f.seek(info.header_offset)
                    local = f.read(30)
                if len(local) < 30 or local[:4] != b"PK\x03\x04":
                    raise ConvertError(f"{path}: corrupt zip entry {entry!r}")
                n_name, n_extra = struct.unpack("<HH", local[26:30])
                return _mapped(path, info.header_offset + 30 + n_name + n_extra, dtype, numel, f"storage {key!r}")
            try:
                with zipfile.ZipFile(path) as z, z.open(entry) as f:  # compressed entry: decompress what is used
                    raw = f.read(nbytes)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise ConvertError(f"{path}: cannot read storage {key!r}: {e}") from None
            arr = np.frombuffer(raw, dtype=NUMPY_DTYPE[dtype].newbyteorder(order), count=numel)
            return arr.astype(NUMPY_DTYPE[dtype])

        return _Storage(key, dtype, numel, read)

    with zf.open(pkls[0]) as f:
        obj = _RestrictedUnpickler(f, str(path), storage_for).load()
    return _name_tensors(obj, str(path))


def _load_legacy(path, f):
    """torch's pre-1.6 format: pickles of magic, protocol, sys_info, the object, the storage keys, then for each
    key an int64 element count followed by the raw little-endian data."""
    storages = {}

    def storage_for(dtype, key, numel):
        st = _Storage(key, dtype, numel, None)
        storages[key] = st
        return st

    up = _RestrictedUnpickler(f, str(path), storage_for)
    try:
        if up.load() != _LEGACY_MAGIC:
            raise ConvertError(f"{path}: not a torch checkpoint (bad magic number)")
        up.load()  # protocol version
        sys_info = up.load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise ConvertError(f"{path}: big-endian legacy checkpoints are not supported")
        obj = up.load()
        keys = up.load()
    except (EOFError, pickle.UnpicklingError) as e:
        raise ConvertError(f"{path}: truncated or corrupt torch checkpoint ({e})") from None
    if not isinstance(keys, list):
        raise ConvertError(f"{path}: corrupt legacy torch checkpoint (no storage key list)")
    offset = f.tell()
    for key in keys:
        st = storages.get(key)
        if st is None:
            raise ConvertError(f"{path}: storage {key!r} is listed but not used")
        f.seek(offset)
        head = f.read(8)
        if len(head) < 8:
            raise ConvertError(f"{path}: truncated file (storage {key!r} is missing)")
        (numel,) = struct.unpack("<q", head)
        if numel != st.numel:
            raise ConvertError(f"{path}: storage {key!r} has {numel} elements, {st.numel} expected")
        data_at = offset + 8
        st._read = lambda at=data_at, st=st: _mapped(path, at, st.dtype, st.numel, f"storage {st.key!r}")
        offset = data_at + numel * NUMPY_DTYPE[st.dtype].itemsize
    if offset > Path(path).stat().st_size:
        raise ConvertError(f"{path}: truncated file ({offset} bytes expected, {Path(path).stat().st_size} found)")
    missing = [k for k, st in storages.items() if st._read is None]
    if missing:
        raise ConvertError(f"{path}: storages {missing[:5]} have no data")
    return _name_tensors(obj, str(path))


def load_bin(path):
    """Reads the tensor index of a torch checkpoint: {name: LazyTensor}. Only metadata is read here."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                return _load_zip(path, zf)
        except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as e:
            raise ConvertError(f"{path}: truncated or corrupt torch checkpoint ({e})") from None
    if head[:4] == b"PK\x03\x04":
        raise ConvertError(f"{path}: truncated or corrupt torch checkpoint (the zip directory at the end of the "
                           "file is missing)")
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise ConvertError(f"{path}: the tar-based torch format (torch < 0.4) is not supported; re-save it with a "
                           "newer torch")
    if head[:1] == b"\x80":
        with open(path, "rb") as f:
            return _load_legacy(path, f)
    raise ConvertError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle)")
