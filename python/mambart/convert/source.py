"""A model folder (or one weights file) on disk -> its raw config and its tensors, without reading tensor data."""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConvertError
from .safetensors_io import open_safetensors
from .torch_bin import load_bin

# Copied by convert and listed by info; mambart_tokenizer.json describes the byte-level tokenizer of the demo model.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "mambart_tokenizer.json")
# Weight files looked for in a folder, first match wins.
_WEIGHTS = (
    ("model.safetensors.index.json", "safetensors"),
    ("model.safetensors", "safetensors"),
    ("pytorch_model.bin.index.json", "bin"),
    ("pytorch_model.bin", "bin"),
)
_SHARD = re.compile(r"-\d+-of-\d+\.(safetensors|bin)$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Source:
    dir: Path
    raw_config: dict
    tensors: dict                      # name -> LazyTensor
    weights_format: str                # "safetensors" or "bin"
    weight_files: list = field(default_factory=list)
    tokenizer_files: list = field(default_factory=list)

    @property
    def file_bytes(self):
        return sum(p.stat().st_size for p in self.weight_files)


def _hub_id_message(src):
    local = src.split("/")[-1]
    return (f"{src!r} is not a local folder; it looks like a Hugging Face Hub model id. Downloading is up to you, "
            f"e.g. `huggingface-cli download {src} --local-dir {local}`, then pass the folder ({local}).")


def resolve(src):
    """Checks that `src` names a local folder or file; a Hub id gets a message saying how to download it."""
    p = Path(src).expanduser()
    if p.exists():
        return p
    if _HUB_ID.match(str(src)) and not str(src).startswith((".", "~")):
        raise ConvertError(_hub_id_message(str(src)))
    raise ConvertError(f"{src}: no such file or folder")


def _load_weights(path, fmt):
    return open_safetensors(path) if fmt == "safetensors" else load_bin(path)


def _load_index(index_path, fmt):
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"{index_path}: cannot read the shard index ({e})") from None
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
        raise ConvertError(f"{index_path}: no 'weight_map' object of tensor name -> file name")
    tensors, files = {}, []
    for fname in sorted(set(wmap.values())):
        shard = index_path.parent / fname
        if Path(fname).name != fname:
            raise ConvertError(f"{index_path}: shard name {fname!r} must be a plain file name")
        if not shard.is_file():
            raise ConvertError(f"{index_path}: shard {fname!r} is missing")
        files.append(shard)
        for name, t in _load_weights(shard, fmt).items():
            if name in tensors:
                raise ConvertError(f"{index_path}: tensor {name!r} is in two shards ({tensors[name].file}, {shard})")
            tensors[name] = t
    for name, fname in wmap.items():
        if name not in tensors:
            raise ConvertError(f"{index_path}: tensor {name!r} is listed for {fname!r} but that shard lacks it")
    return tensors, files


def _find_weights(folder):
    for fname, fmt in _WEIGHTS:
        if (folder / fname).is_file():
            return folder / fname, fmt
    singles = sorted(folder.glob("*.safetensors"))
    if len(singles) == 1:
        return singles[0], "safetensors"
    names = ", ".join(n for n, _ in _WEIGHTS)
    raise ConvertError(f"{folder}: no model weights found (looked for {names})")


def _format_of_file(path):
    name = path.name
    if name.endswith(".safetensors") or name == "model.safetensors.index.json":
        return "safetensors"
    if name.endswith((".bin", ".pt", ".pth")) or name.endswith(".bin.index.json"):
        return "bin"
    raise ConvertError(f"{path}: unknown weights file type (expected .safetensors, .bin or a shard index .json)")


def open_source(src):
    """Reads config.json and the tensor index of a model folder, or of a weights file next to its config.json."""
    p = resolve(src)
    if p.is_dir():
        folder = p
        weights, fmt = _find_weights(folder)
    else:
        folder = p.parent
        weights, fmt = p, _format_of_file(p)
        if _SHARD.search(p.name):
            raise ConvertError(f"{p} is one shard of a sharded checkpoint: pass the folder ({folder}) or its "
                               "index .json instead")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ConvertError(f"{folder}: no config.json next to the weights")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"{cfg_path}: invalid JSON ({e})") from None
    if weights.name.endswith(".index.json"):
        tensors, files = _load_index(weights, fmt)
    else:
        tensors, files = _load_weights(weights, fmt), [weights]
    tok = [folder / n for n in TOKENIZER_FILES if (folder / n).is_file()]
    return Source(folder, raw, tensors, fmt, files, tok)


def tokenizer_token_id(source, which):
    """Id of the tokenizer's `which` token ("eos_token", ...), from the tokenizer files when they name it."""
    token = None
    for fname in ("special_tokens_map.json", "tokenizer_config.json"):
        path = source.dir / fname
        if path in source.tokenizer_files:
            try:
                v = json.loads(path.read_text(encoding="utf-8")).get(which)
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                token = v
                break
    if token is None or source.dir / "tokenizer.json" not in source.tokenizer_files:
        return None
    try:
        tok = json.loads((source.dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for added in tok.get("added_tokens") or []:
        if isinstance(added, dict) and added.get("content") == token and isinstance(added.get("id"), int):
            return added["id"]
    vocab = (tok.get("model") or {}).get("vocab")
    if isinstance(vocab, dict) and isinstance(vocab.get(token), int):
        return vocab[token]
    return None
