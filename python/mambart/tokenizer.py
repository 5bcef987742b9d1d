"""Text <-> token ids for mambart models (pure Python + numpy; ``tokenizers`` is optional).

Two tokenizers share one small interface (``encode``, ``decode``, ``stream_decoder``,
``eos_token_id``, ``vocab_size``):

* :class:`ByteTokenizer` -- UTF-8 bytes as ids 0..255 plus one end-of-text id. Used by the
  embedded default model (its folder has ``mambart_tokenizer.json``).
* :class:`HFTokenizer` -- a Hugging Face ``tokenizer.json`` read with the optional
  ``tokenizers`` package (``pip install tokenizers`` or ``mambart[text]``). The package is
  imported on first use, so a model folder with a ``tokenizer.json`` still loads without it.

:func:`load_tokenizer` picks the right one for a model folder; :func:`default_model_path`
returns the folder of the model shipped inside the package.
"""
from __future__ import annotations

import codecs
import json
import os
from typing import Iterable, List, Optional, Union

import numpy as np

__all__ = [
    "ByteTokenizer",
    "HFTokenizer",
    "StreamDecoder",
    "HFStreamDecoder",
    "load_tokenizer",
    "default_model_path",
]

IdsLike = Union[int, Iterable[int], np.ndarray]

BYTE_TOKENIZER_FILE = "mambart_tokenizer.json"
HF_TOKENIZER_FILE = "tokenizer.json"


def _as_id_list(ids: IdsLike) -> List[int]:
    """Flatten an int, list or 1-D integer array of token ids into a list of Python ints."""
    if isinstance(ids, (int, np.integer)):
        return [int(ids)]
    arr = np.asarray(ids)
    if arr.size == 0:
        return []
    if arr.ndim != 1:
        raise ValueError(f"token ids must be a scalar or a 1-D sequence, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise ValueError(f"token ids must be >= 0, got {int(arr.min())}")
    return arr.tolist()


class StreamDecoder:
    """Incremental bytes -> text for :class:`ByteTokenizer`.

    ``push(ids)`` returns the text completed by these ids: a multi-byte UTF-8 character split
    over several pushes is emitted once its last byte arrives. Ids >= 256 (end-of-text, padding)
    are skipped. ``flush()`` returns what is left (an incomplete character becomes U+FFFD).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids: IdsLike) -> str:
        data = bytes(i for i in _as_id_list(ids) if i < 256)
        return self._decoder.decode(data, final=False)

    def flush(self) -> str:
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text


class ByteTokenizer:
    """UTF-8 byte tokenizer: ids 0..255 are bytes, ``eot_token_id`` (default 256) ends a text."""

    def __init__(self, eot_token_id: int = 256) -> None:
        if eot_token_id < 256:
            raise ValueError(f"eot_token_id must be >= 256 (ids below are bytes), got {eot_token_id}")
        self.eot_token_id = int(eot_token_id)

    @property
    def eos_token_id(self) -> int:
        """The end-of-text id (generation stops on it)."""
        return self.eot_token_id

    @property
    def vocab_size(self) -> int:
        """Number of ids this tokenizer produces: the 256 bytes and end-of-text."""
        return self.eot_token_id + 1

    def encode(self, text: str, add_eot: bool = False) -> np.ndarray:
        """UTF-8 bytes of ``text`` as an int64 array (plus the end-of-text id if ``add_eot``)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        if add_eot:
            ids = np.append(ids, np.int64(self.eot_token_id))
        return ids

    def decode(self, ids: IdsLike) -> str:
        """Text of ``ids``; ids >= 256 are skipped, invalid UTF-8 becomes U+FFFD."""
        return bytes(i for i in _as_id_list(ids) if i < 256).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        """A fresh incremental decoder (see :class:`StreamDecoder`)."""
        return StreamDecoder()

    def __repr__(self) -> str:
        return f"ByteTokenizer(eot_token_id={self.eot_token_id})"


class HFStreamDecoder:
    """Incremental ids -> text for :class:`HFTokenizer`.

    Decodes a short window of the growing id list and yields the new suffix, holding text back
    while it ends in an incomplete character (U+FFFD), as in Hugging Face's text-generation
    servers. Each push decodes only the ids since the last emitted boundary, so it is O(n).
    """

    def __init__(self, tokenizer: "HFTokenizer", skip_special_tokens: bool = True) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._ids: List[int] = []
        self._prefix = 0  # start of the window that is decoded for context
        self._read = 0  # ids before this have been emitted

    def _decode(self, ids: List[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=self._skip)

    def push(self, ids: IdsLike) -> str:
        self._ids.extend(_as_id_list(ids))
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        new_text = self._decode(self._ids[self._prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            out = new_text[len(prefix_text):]
            self._prefix, self._read = self._read, len(self._ids)
            return out
        return ""

    def flush(self) -> str:
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        new_text = self._decode(self._ids[self._prefix:])
        self._ids, self._prefix, self._read = [], 0, 0
        return new_text[len(prefix_text):]


class HFTokenizer:
    """A Hugging Face ``tokenizer.json`` (needs the optional ``tokenizers`` package).

    The file is read on first use, so constructing this never requires ``tokenizers``.
    ``eos_token_id`` may be set by the caller (e.g. from the model's config.json).
    """

    def __init__(self, path: Union[str, os.PathLike], eos_token_id: Optional[int] = None) -> None:
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"tokenizer file not found: {self.path}")
        self.eos_token_id = eos_token_id
        self._tok = None

    @property
    def tokenizer(self):
        """The underlying ``tokenizers.Tokenizer`` (loaded on first access)."""
        if self._tok is None:
            try:
                from tokenizers import Tokenizer
            except ImportError as e:
                raise ImportError(
                    f"the model's {HF_TOKENIZER_FILE} needs the 'tokenizers' package for text input/output: "
                    "pip install tokenizers (or mambart[text]); token ids work without it"
                ) from e
            self._tok = Tokenizer.from_file(self.path)
        return self._tok

    @property
    def vocab_size(self) -> int:
        """Vocabulary size including added tokens."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> np.ndarray:
        """Token ids of ``text`` as an int64 array (no special tokens added unless asked)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids: IdsLike, skip_special_tokens: bool = True) -> str:
        """Text of ``ids``."""
        return self.tokenizer.decode(_as_id_list(ids), skip_special_tokens=skip_special_tokens)

    def stream_decoder(self, skip_special_tokens: bool = True) -> HFStreamDecoder:
        """A fresh incremental decoder (see :class:`HFStreamDecoder`)."""
        return HFStreamDecoder(self, skip_special_tokens)

    def __repr__(self) -> str:
        return f"HFTokenizer({self.path!r})"


def load_tokenizer(model_dir: Union[str, os.PathLike]):
    """The tokenizer described in a model folder, or None if it has none.

    ``mambart_tokenizer.json`` with ``{"type": "bytes"}`` gives a :class:`ByteTokenizer`;
    otherwise ``tokenizer.json`` gives an :class:`HFTokenizer` (``tokenizers`` is needed only
    when it is used). The eos id of an HFTokenizer is taken from the folder's config.json.
    """
    model_dir = os.fspath(model_dir)
    spec_path = os.path.join(model_dir, BYTE_TOKENIZER_FILE)
    if os.path.isfile(spec_path):
        with open(spec_path, encoding="utf-8") as f:
            spec = json.load(f)
        kind = spec.get("type")
        if kind != "bytes":
            raise ValueError(f"{spec_path}: unknown tokenizer type {kind!r} (expected 'bytes')")
        return ByteTokenizer(int(spec.get("eot_token_id", 256)))
    hf_path = os.path.join(model_dir, HF_TOKENIZER_FILE)
    if os.path.isfile(hf_path):
        eos = None
        cfg_path = os.path.join(model_dir, "config.json")
        if os.path.isfile(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                eos = json.load(f).get("eos_token_id")
            if isinstance(eos, list):
                eos = eos[0] if eos else None
        return HFTokenizer(hf_path, eos_token_id=eos)
    return None


def default_model_path() -> str:
    """Folder of the small byte-level demo model embedded in the package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "default")
