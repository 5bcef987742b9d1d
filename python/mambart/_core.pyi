"""
mambart native core (thin bindings; see the mambart package for the API)
"""

from collections.abc import Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray


def cuda_available() -> bool:
    """Whether a usable CUDA device is present in this build."""

class Model:
    @staticmethod
    def load(path: str, device: str = 'cpu', threads: int = 0, dtype: str = '', isa: str = '') -> Model: ...

    @property
    def config(self) -> dict: ...

    @property
    def backend(self) -> str: ...

    @property
    def weight_dtype(self) -> str: ...

    @property
    def act_dtype(self) -> str: ...

    @property
    def n_params(self) -> int: ...

    @property
    def weight_bytes(self) -> int: ...

    @property
    def path(self) -> str: ...

class State:
    def __init__(self, model: Model, batch: int) -> None: ...

    @property
    def batch(self) -> int: ...

    @property
    def n_tokens(self) -> int: ...

    @n_tokens.setter
    def n_tokens(self, arg: int, /) -> None: ...

    def model(self) -> Model: ...

    def copy(self) -> State: ...

    def reset(self) -> None: ...

    def copy_rows_from(self, src: State, src_row: int, dst_row: int, n: int) -> None: ...

    def conv_array(self) -> NDArray[numpy.float32]: ...

    def ssm_array(self) -> NDArray[numpy.float32]: ...

    def set_arrays(self, conv: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)], ssm: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)]) -> None: ...

def forward(state: State, ids: object | None, embeds: object | None, row0: int = 0, mode: str = 'all') -> NDArray[numpy.float32]: ...

def forward_device(state: State, ids: object | None, embeds: object | None, row0: int = 0, mode: str = 'all', drop_batch: bool = False) -> object:
    """
    forward() into a new buffer in the backend's memory: numpy on host backends, a DLPack array on CUDA.
    """

def dlpack_cuda_to_host(array: Annotated[NDArray, dict(writable=False)]) -> tuple:
    """
    Copies a DLPack array in CUDA memory to the host: (uint8 bytes, shape, (dtype code, bits, lanes)).
    """

def data_ptr(array: Annotated[NDArray, dict(writable=False)]) -> int:
    """The address of the first element of any DLPack array (host or device)."""

def cuda_to_host(ptr: int, shape: Sequence[int], strides: Sequence[int], itemsize: int, stream: int = 0) -> NDArray[numpy.uint8]:
    """
    Copies a strided array in CUDA memory (strides in bytes) to C-contiguous host bytes (uint8).
    """

def generate(state: State, prompts: Sequence[Annotated[NDArray[numpy.int32], dict(shape=(None, None), order='C', device='cpu', writable=False)]], max_new_tokens: int, temperature: float, top_k: int, top_p: float, min_p: float, repetition_penalty: float, seed: int, stop_tokens: Sequence[int], callback: object | None) -> NDArray[numpy.int32]: ...
