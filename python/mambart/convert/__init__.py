"""Checkpoint conversion without torch: Hugging Face safetensors / pytorch_model.bin and state-spaces mamba_ssm
checkpoints -> the mambart layout (see docs/FORMAT.md). Run-time dependency: numpy only.

    from mambart.convert import convert, info
    convert("mamba-130m", "mamba-130m-mambart", dtype="float16")
"""
from .cli import main_convert, main_info
from .core import convert, info
from .errors import ConvertError

__all__ = ["convert", "info", "main_convert", "main_info", "ConvertError"]
