"""The Python API: Session (a loaded model), State (recurrent state of a batch of sequences).

All compute happens in the C++ core (mambart._core); this module converts inputs, picks defaults and
shapes outputs. Shapes: ids (L,) or (B, L); logits (L, vocab) or (B, L, vocab); float32 numpy.
"""
from __future__ import annotations

import json
import os
import queue
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from . import _core
from ._device import DeviceArray
from ._ids import as_id_array, as_rows, is_ragged

IdsLike = Union[Sequence[int], Sequence[Sequence[int]], np.ndarray, str]

_STATE_FORMAT = "mambart-state-1"


class Config:
    """Model configuration (read-only): d_model, n_layer, vocab_size, d_state, d_conv, d_inner, dt_rank,
    eos_token_id, ... as normalized by the loader from any supported layout."""

    def __init__(self, values: dict):
        self._values = dict(values)

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return dict(self._values)

    def __repr__(self) -> str:
        keys = ("d_model", "n_layer", "vocab_size", "d_inner", "d_state", "d_conv", "dt_rank")
        return "Config(" + ", ".join(f"{k}={self._values[k]}" for k in keys) + ")"


class State:
    """Recurrent state of `batch_size` sequences: per layer a conv state (d_inner, d_conv) and an ssm
    state (d_inner, d_state), fp32, in the session's device memory. Pass it to forward/generate to continue."""

    def __init__(self, core_state, session: "Session"):
        self._core = core_state
        self._session = session

    @property
    def batch_size(self) -> int:
        return self._core.batch

    @property
    def conv(self) -> np.ndarray:
        """Copy of the conv states, (n_layer, batch, d_inner, d_conv) float32 (newest input last)."""
        return self._core.conv_array()

    @property
    def ssm(self) -> np.ndarray:
        """Copy of the ssm states, (n_layer, batch, d_inner, d_state) float32."""
        return self._core.ssm_array()

    def copy(self) -> "State":
        """An independent copy (same device)."""
        return State(self._core.copy(), self._session)

    def reset(self) -> None:
        """Back to the empty state (zeros)."""
        self._core.reset()

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the state to a .npz file (numpy only), with the model dimensions it fits."""
        cfg = self._session.config
        meta = {
            "format": _STATE_FORMAT,
            "dims": [cfg.n_layer, cfg.d_inner, cfg.d_conv, cfg.d_state, cfg.d_model, cfg.vocab_size],
            "batch": self.batch_size,
            "n_tokens": int(self._core.n_tokens),
        }
        with open(path, "wb") as f:
            np.savez(f, conv=self.conv, ssm=self.ssm, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))

    @classmethod
    def load(cls, path: Union[str, os.PathLike], session: "Session") -> "State":
        """Reads a state written by save(); raises ValueError when it does not fit the session's model."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                conv, ssm = z["conv"], z["ssm"]
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a mambart state file ({e})") from None
        if meta.get("format") != _STATE_FORMAT:
            raise ValueError(f"{path}: unknown state format {meta.get('format')!r}")
        cfg = session.config
        dims = [cfg.n_layer, cfg.d_inner, cfg.d_conv, cfg.d_state, cfg.d_model, cfg.vocab_size]
        if meta.get("dims") != dims:
            raise ValueError(
                f"{path}: state was saved for a model with (n_layer, d_inner, d_conv, d_state, d_model, vocab) = "
                f"{tuple(meta.get('dims', ()))}, this model has {tuple(dims)}")
        state = session.new_state(int(meta["batch"]))
        state._core.set_arrays(np.ascontiguousarray(conv, np.float32), np.ascontiguousarray(ssm, np.float32))
        state._core.n_tokens = int(meta.get("n_tokens", 0))
        return state

    def __repr__(self) -> str:
        return f"State(batch_size={self.batch_size}, device={self._session.device!r})"


def _default_threads(threads: Optional[int]) -> int:
    if threads is None:
        return 0  # the core picks the physical core count
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return int(threads)


class Session:
    """A loaded model on one device.

    Args:
        path: a model folder (Hugging Face "mamba", state-spaces, or `mambart convert` output) or a
            .safetensors file next to its config.json. None loads the small model embedded in the package.
        device: "auto" (CUDA when usable, else CPU), "cpu", "cuda", "cuda:N".
        threads: CPU threads (default: physical cores).
        dtype: projection weight dtype ("float32", "float16", "bfloat16"); default: as stored.
    """

    def __init__(self, path: Union[str, os.PathLike, None] = None, device: str = "auto",
                 threads: Optional[int] = None, dtype: Optional[str] = None):
        if path is None:
            from .tokenizer import default_model_path

            path = default_model_path()
        self.path = Path(path)
        if not self.path.exists():
            hint = " (downloading from the Hub is up to you, then pass the folder)" if "/" in str(path) else ""
            raise FileNotFoundError(f"model path '{path}' does not exist{hint}")
        self._model = _core.Model.load(str(self.path), device=str(device), threads=_default_threads(threads),
                                       dtype=dtype or "")
        self.config = Config(self._model.config)
        self._tokenizer = None
        self._tokenizer_loaded = False

    def share(self) -> "Session":
        """Another Session over the same loaded weights (no reload, no copy): for several users of one model,
        e.g. one per thread. States of either session work with the other."""
        other = object.__new__(Session)
        other.path, other._model, other.config = self.path, self._model, self.config
        other._tokenizer, other._tokenizer_loaded = self._tokenizer, self._tokenizer_loaded
        return other

    # ---- properties ----------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return self._model.backend

    @property
    def dtype(self) -> str:
        return {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[self._model.weight_dtype]

    @property
    def tokenizer(self):
        """The model folder's tokenizer (byte-level or tokenizer.json via `tokenizers`), or None."""
        if not self._tokenizer_loaded:
            from .tokenizer import load_tokenizer

            self._tokenizer = load_tokenizer(self.path if self.path.is_dir() else self.path.parent)
            self._tokenizer_loaded = True
        return self._tokenizer

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r}, device={self.device!r}, dtype={self.dtype!r}, {self.config})"

    # ---- states --------------------------------------------------------------------------------------
    def new_state(self, batch_size: int = 1) -> State:
        """A fresh (zero) state for `batch_size` sequences."""
        return State(_core.State(self._model, int(batch_size)), self)

    def load_state(self, path) -> State:
        """Reads a state saved with State.save, checking that it fits this model."""
        return State.load(path, self)

    def _state_for(self, state: Optional[State], batch: int) -> State:
        if state is None:
            return self.new_state(batch)
        if not isinstance(state, State):
            raise TypeError(f"state must be a mambart.State, got {type(state).__name__}")
        if state._session._model is not self._model and state._session.path != self.path:
            raise ValueError("state belongs to another model")
        if state.batch_size != batch:
            raise ValueError(f"state has batch_size {state.batch_size} but the input has {batch} rows")
        return state

    # ---- text ------------------------------------------------------------------------------------------
    def _encode(self, text: str) -> np.ndarray:
        tok = self.tokenizer
        if tok is None:
            raise ValueError(f"text input needs a tokenizer, and {self.path} has none (pass token ids)")
        ids = np.asarray(tok.encode(text), dtype=np.int64)
        if ids.size == 0:
            raise ValueError("empty input: the text encodes to no tokens")
        return ids

    def _maybe_text(self, ids):
        if isinstance(ids, str):
            return self._encode(ids), True
        if isinstance(ids, (list, tuple)) and ids and all(isinstance(s, str) for s in ids):
            return [self._encode(s) for s in ids], True
        return ids, False

    # ---- forward ---------------------------------------------------------------------------------------
    def forward(self, ids: IdsLike = None, state: Optional[State] = None, *, inputs_embeds=None,
                logits: str = "all", device_output: bool = False):
        """Runs the model over ids and returns float32 logits.

        ids (L,) -> (L, vocab); (B, L) -> (B, L, vocab); a list of 1-D rows of different lengths -> a list of
        (L_i, vocab). logits="last" keeps only the last position ((vocab,), (B, vocab), list of (vocab,)).
        With `state`, continues from it and advances it; without, starts from zeros.
        `inputs_embeds` (L, d_model) or (B, L, d_model) float32 replaces ids. ids may also be arrays in CUDA memory
        (torch.cuda, CuPy, JAX, Numba: DLPack or __cuda_array_interface__); they are copied to the host.

        device_output=True leaves the logits in the session's device memory, with the same shapes: on CUDA a
        `DeviceArray` that torch/CuPy/JAX take without a copy through DLPack (`torch.from_dlpack(out)`); on the
        CPU the numpy array (host memory is the CPU backend's memory; numpy speaks DLPack too). Rows of different
        lengths give a list of per-row arrays, never stacked.
        """
        if logits not in ("all", "last"):
            raise ValueError(f"logits must be 'all' or 'last', got {logits!r}")
        return self._run(ids, state, inputs_embeds, logits, bool(device_output))

    def embed(self, ids: IdsLike, state: Optional[State] = None) -> np.ndarray:
        """Final hidden states (after the last norm): (L, d_model) or (B, L, d_model) float32."""
        return self._run(ids, state, None, "hidden_all")

    def _forward_core(self, st: State, ids, emb, row0: int, mode: str, device: bool, drop_batch: bool):
        """One core forward call over (B, L) ids or (B, L, d_model) embeddings; drop_batch: the input was 1-D."""
        if not device:
            out = _core.forward(st._core, ids, emb, row0, mode)
            return out[0] if drop_batch else out
        out = _core.forward_device(st._core, ids, emb, row0, mode, drop_batch)
        if isinstance(out, np.ndarray):  # a host backend: its memory is host memory
            return out
        B, L = (ids if ids is not None else emb).shape[:2]
        V = self.config.vocab_size
        shape = (B, L, V) if mode == "all" else (B, V)
        shape = shape[1:] if drop_batch else shape
        owner, ptr, index = out
        return DeviceArray(owner, ptr, index, shape)

    def _run(self, ids, state, inputs_embeds, mode, device: bool = False):
        if inputs_embeds is not None:
            if ids is not None:
                raise ValueError("pass either ids or inputs_embeds, not both")
            emb = np.ascontiguousarray(inputs_embeds, dtype=np.float32)
            single = emb.ndim == 2
            if single:
                emb = emb[None]
            if emb.ndim != 3 or emb.shape[1] == 0 or emb.shape[0] == 0:
                raise ValueError(f"inputs_embeds must have shape (L, d_model) or (B, L, d_model), got {emb.shape}")
            st = self._state_for(state, emb.shape[0])
            return self._forward_core(st, None, emb, 0, mode, device, single)
        ids, _ = self._maybe_text(ids)
        if not is_ragged(ids):  # (L,) or (B, L): one call over the whole batch
            arr = as_id_array(ids)
            batch = arr[None] if arr.ndim == 1 else arr
            return self._forward_core(self._state_for(state, batch.shape[0]), batch, None, 0, mode, device,
                                      arr.ndim == 1)
        # rows of different lengths: each row runs on its own state row (exact, no padding)
        rows, _ = as_rows(ids)
        st = self._state_for(state, len(rows))
        outs = [self._forward_core(st, r, None, i, mode, device, True) for i, r in enumerate(rows)]
        if device:
            return outs
        return np.stack(outs) if len({r.shape[1] for r in rows}) == 1 else outs

    def score(self, ids: IdsLike) -> np.ndarray:
        """Log-probabilities of each token given the ones before it: (L-1,) or (B, L-1) float32.
        Its negative mean equals the language-modeling loss (HF `labels=ids`)."""
        ids, _ = self._maybe_text(ids)
        arr = as_id_array(ids)
        single = arr.ndim == 1
        arr2 = arr[None] if single else arr
        if arr2.shape[1] < 2:
            raise ValueError("score needs at least 2 tokens")
        logits = _core.forward(self.new_state(arr2.shape[0])._core, arr2, None, 0, "all")[:, :-1]
        mx = logits.max(-1, keepdims=True)
        logz = np.log(np.exp(logits - mx).sum(-1)) + mx[..., 0]
        tgt = arr2[:, 1:].astype(np.int64)
        lp = np.take_along_axis(logits, tgt[..., None], -1)[..., 0] - logz
        return lp[0] if single else lp

    # ---- generation ------------------------------------------------------------------------------------
    def _gen_args(self, ids, max_new_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed,
                  stop_tokens, state):
        ids, text = self._maybe_text(ids)
        rows, single = as_rows(ids)
        if int(max_new_tokens) < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if not (0.0 < float(top_p) <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if float(temperature) < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if int(top_k) < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        if not (0.0 <= float(min_p) <= 1.0):
            raise ValueError(f"min_p must be in [0, 1], got {min_p}")
        if float(repetition_penalty) <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")
        if stop_tokens is None:
            eos = self.config.eos_token_id
            stop = [] if eos is None else [int(eos)]
        else:
            stop = [int(t) for t in ([stop_tokens] if isinstance(stop_tokens, (int, np.integer)) else stop_tokens)]
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & (2**64 - 1)
        st = self._state_for(state, len(rows))
        args = (st._core, rows, int(max_new_tokens), float(temperature), int(top_k), float(top_p), float(min_p),
                float(repetition_penalty), int(seed) & (2**64 - 1), stop)
        return args, single, text

    def generate(self, ids: IdsLike, max_new_tokens: int = 20, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, min_p: float = 0.0, repetition_penalty: float = 1.0,
                 seed: Optional[int] = None, stop_tokens: Optional[Sequence[int]] = None,
                 state: Optional[State] = None):
        """Generates up to max_new_tokens tokens after ids and returns only the new ones: int64 (n,) for a
        1-D prompt, (B, n) for a batch or a list of rows (rows that stopped early are padded with -1).

        temperature=0 is greedy. Stops at the config's eos token unless stop_tokens is given ([] disables);
        the stop token itself is included. The same seed gives the same tokens on the same backend. With
        `state`, continues from it and advances it (the last returned token is not yet fed into it).
        A string prompt (model with a tokenizer) returns a string.
        """
        args, single, text = self._gen_args(ids, max_new_tokens, temperature, top_k, top_p, min_p,
                                            repetition_penalty, seed, stop_tokens, state)
        out = _core.generate(*args, None).astype(np.int64)
        if text:
            texts = [self.tokenizer.decode([t for t in row if t >= 0]) for row in out]
            return texts[0] if single else texts
        return out[0] if single else out

    def stream(self, ids: IdsLike, max_new_tokens: int = 20, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, min_p: float = 0.0, repetition_penalty: float = 1.0,
               seed: Optional[int] = None, stop_tokens: Optional[Sequence[int]] = None,
               state: Optional[State] = None) -> Iterator:
        """Like generate, but yields as tokens are produced: an int per token for a 1-D prompt, an int64
        (B,) array per step for a batch (-1 for stopped rows), text pieces for a string prompt.
        KeyboardInterrupt (Ctrl-C) stops generation promptly; the session stays usable."""
        args, single, text = self._gen_args(ids, max_new_tokens, temperature, top_k, top_p, min_p,
                                            repetition_penalty, seed, stop_tokens, state)
        q: "queue.Queue" = queue.Queue()
        stop = threading.Event()
        _END = object()

        def on_token(tokens):
            q.put(tokens)
            return not stop.is_set()

        def worker():
            try:
                _core.generate(*args, on_token)
                q.put(_END)
            except BaseException as e:  # handed to the consumer
                q.put(e)

        th = threading.Thread(target=worker, name="mambart-stream", daemon=True)
        th.start()
        decoder = self.tokenizer.stream_decoder() if text and hasattr(self.tokenizer, "stream_decoder") else None
        try:
            while True:
                try:
                    item = q.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                if text:
                    tok = item[0]
                    piece = "" if tok < 0 else decoder.push(tok) if decoder else self.tokenizer.decode([tok])
                    if piece:  # a multi-byte character may need several tokens
                        yield piece
                elif single:
                    yield int(item[0])
                else:
                    yield np.asarray(item, dtype=np.int64)
            if decoder is not None:
                tail = decoder.flush()
                if tail:
                    yield tail
        finally:
            stop.set()
            th.join()
