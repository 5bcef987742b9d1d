"""A tensor known by its name, dtype and shape, whose data is read only when asked for."""
from math import prod


class LazyTensor:
    """`load()` returns a numpy array of shape `shape` holding the raw data of `dtype` (a safetensors dtype name;
    BF16 as uint16 bit patterns). The array may be a read-only view into a memory-mapped file."""

    __slots__ = ("name", "dtype", "shape", "file", "_load")

    def __init__(self, name, dtype, shape, file, load):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(int(d) for d in shape)
        self.file = file  # the file holding the data, for error messages
        self._load = load

    @property
    def numel(self):
        return prod(self.shape)

    def load(self):
        arr = self._load()
        if tuple(arr.shape) != self.shape:  # a bug in a reader, never a user error
            raise AssertionError(f"{self.name}: reader returned {arr.shape}, expected {self.shape}")
        return arr

    def __setstate__(self, state):  # never built by a pickle's BUILD opcode
        raise TypeError("LazyTensor cannot be unpickled")

    def __repr__(self):
        return f"LazyTensor({self.name!r}, {self.dtype}, {self.shape})"
