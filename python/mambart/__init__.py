"""mambart: a standalone inference runtime for Mamba language models.

    import mambart
    session = mambart.Session("path/to/model")        # HF, state-spaces or converted folder
    tokens = session.generate([1, 2, 3], max_new_tokens=20)

The package needs only numpy at run time (never torch).
"""
from ._core import cuda_available
from ._device import DeviceArray
from .session import Config, Session, State

__version__ = "0.1.0"
__all__ = ["Session", "State", "Config", "DeviceArray", "cuda_available", "__version__"]
