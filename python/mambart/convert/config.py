"""config.json of the three layouts (Hugging Face "mamba", state-spaces mamba_ssm, mambart) -> one ModelSpec,
and the mambart config.json written by the converter."""
import math
from dataclasses import asdict, dataclass
from typing import Optional

from .errors import ConvertError

FORMAT_VERSION = 1
MAMBA2_MESSAGE = "Mamba-2 is not supported yet (mambart runs Mamba-1 models)"


@dataclass
class ModelSpec:
    layout: str                 # "hf", "state-spaces" or "mambart"
    d_model: int
    n_layer: int
    vocab_size: int             # rows of the embedding and of the logits (padded for state-spaces)
    vocab_size_unpadded: int    # the config's vocab_size before padding
    d_state: int
    d_conv: int
    expand: float
    d_inner: int
    dt_rank: int
    in_proj_bias: bool          # in_proj / out_proj biases (HF use_bias, ssm_cfg.bias)
    conv_bias: bool
    rms_norm: bool              # False: LayerNorm with bias (state-spaces only)
    residual_in_fp32: bool
    tie_embeddings: bool
    norm_eps: float
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    source: Optional[str] = None       # mambart layout: where it was converted from
    dtype: Optional[str] = None        # mambart layout: dtype of the projections

    def state_bytes_per_sequence(self):
        """fp32 conv (d_inner, d_conv) + ssm (d_inner, d_state) state of every layer."""
        return self.n_layer * self.d_inner * (self.d_conv + self.d_state) * 4

    def as_dict(self):
        return asdict(self)


def is_mamba2(raw):
    ssm_cfg = raw.get("ssm_cfg") if isinstance(raw.get("ssm_cfg"), dict) else {}
    archs = raw.get("architectures") or []
    return (str(raw.get("model_type", "")).lower() == "mamba2" or ssm_cfg.get("layer") == "Mamba2"
            or any("Mamba2" in str(a) for a in archs))


def _get(raw, key, kind, label, default=None, required=False, lo=1, hi=1 << 20):
    if key not in raw or raw[key] is None:
        if required:
            raise ConvertError(f"{label}: missing field {key!r}")
        return default
    v = raw[key]
    if kind is bool:
        if not isinstance(v, bool):
            raise ConvertError(f"{label}: field {key!r} must be true or false, found {v!r}")
        return v
    if kind is int:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ConvertError(f"{label}: field {key!r} must be an integer in [{lo}, {hi}], found {v!r}")
        return v
    if kind is float:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not (v > 0 and math.isfinite(v)):
            raise ConvertError(f"{label}: field {key!r} must be a positive number, found {v!r}")
        return float(v)
    raise AssertionError(kind)


def _token_id(raw, key, label):
    v = raw.get(key)
    if isinstance(v, list):  # HF allows a list of eos ids; the runtime stops at the first
        v = v[0] if v else None
    if v is None:
        return None
    return _get({key: v}, key, int, label, lo=0, hi=1 << 31)


def _dt_rank(v, d_model, label, key):
    if v is None or v == "auto":
        return math.ceil(d_model / 16)
    return _get({key: v}, key, int, label)


def _check_ranges(spec, label):
    if not 1 <= spec.d_conv <= 64:
        raise ConvertError(f"{label}: conv kernel {spec.d_conv} is outside [1, 64]")
    if not 1 <= spec.d_state <= 256:
        raise ConvertError(f"{label}: state size {spec.d_state} is outside [1, 256]")
    if spec.d_inner < 1:
        raise ConvertError(f"{label}: inner size {spec.d_inner} must be positive")


def _parse_hf(raw, label, layout):
    d_model = _get(raw, "hidden_size", int, label, required=True)
    expand = raw.get("expand", 2)
    if not isinstance(expand, (int, float)) or isinstance(expand, bool) or expand <= 0:
        raise ConvertError(f"{label}: field 'expand' must be a positive number, found {expand!r}")
    act = raw.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ConvertError(f"{label}: hidden_act {act!r} is not supported (only silu)")
    vocab = _get(raw, "vocab_size", int, label, required=True, hi=1 << 24)
    extra = raw.get("mambart") or {}
    spec = ModelSpec(
        layout=layout,
        d_model=d_model,
        n_layer=_get(raw, "num_hidden_layers", int, label, required=True),
        vocab_size=vocab,
        vocab_size_unpadded=vocab,
        d_state=_get(raw, "state_size", int, label, 16),
        d_conv=_get(raw, "conv_kernel", int, label, 4),
        expand=expand,
        d_inner=_get(raw, "intermediate_size", int, label, int(expand * d_model)),
        dt_rank=_dt_rank(raw.get("time_step_rank"), d_model, label, "time_step_rank"),
        in_proj_bias=_get(raw, "use_bias", bool, label, False),
        conv_bias=_get(raw, "use_conv_bias", bool, label, True),
        rms_norm=True,
        residual_in_fp32=_get(raw, "residual_in_fp32", bool, label, True),
        tie_embeddings=_get(raw, "tie_word_embeddings", bool, label, True),
        norm_eps=_get(raw, "layer_norm_epsilon", float, label, 1e-5),
        bos_token_id=_token_id(raw, "bos_token_id", label),
        eos_token_id=_token_id(raw, "eos_token_id", label),
        pad_token_id=_token_id(raw, "pad_token_id", label),
    )
    if layout == "mambart":
        lbl = f"{label} (mambart)"
        version = _get(extra, "format_version", int, lbl, required=True, hi=1 << 20)
        if version > FORMAT_VERSION:
            raise ConvertError(f"{label}: mambart format_version {version} is newer than this version of mambart "
                               f"understands ({FORMAT_VERSION}); upgrade mambart")
        spec.rms_norm = _get(extra, "rms_norm", bool, lbl, True)
        spec.vocab_size_unpadded = _get(extra, "vocab_size_unpadded", int, lbl, vocab, hi=vocab)
        spec.source = extra.get("source")
        spec.dtype = extra.get("dtype")
    return spec


def _parse_state_spaces(raw, label):
    ssm = raw.get("ssm_cfg") or {}
    if not isinstance(ssm, dict):
        raise ConvertError(f"{label}: field 'ssm_cfg' must be an object")
    if ssm.get("layer", "Mamba1") != "Mamba1":
        raise ConvertError(f"{label}: unknown ssm_cfg.layer {ssm.get('layer')!r} (expected \"Mamba1\")")
    if raw.get("attn_layer_idx"):
        raise ConvertError(f"{label}: hybrid models with attention layers (attn_layer_idx) are not supported")
    if raw.get("d_intermediate"):
        raise ConvertError(f"{label}: models with MLP blocks (d_intermediate > 0) are not supported")
    lbl = f"{label} (ssm_cfg)"
    d_model = _get(raw, "d_model", int, label, required=True)
    expand = ssm.get("expand", 2)
    if not isinstance(expand, (int, float)) or isinstance(expand, bool) or expand <= 0:
        raise ConvertError(f"{lbl}: field 'expand' must be a positive number, found {expand!r}")
    vocab = _get(raw, "vocab_size", int, label, required=True, hi=1 << 24)
    multiple = _get(raw, "pad_vocab_size_multiple", int, label, 8)  # mamba_ssm MambaConfig's default
    padded = -(-vocab // multiple) * multiple
    return ModelSpec(
        layout="state-spaces",
        d_model=d_model,
        n_layer=_get(raw, "n_layer", int, label, required=True),
        vocab_size=padded,
        vocab_size_unpadded=vocab,
        d_state=_get(ssm, "d_state", int, lbl, 16),
        d_conv=_get(ssm, "d_conv", int, lbl, 4),
        expand=expand,
        d_inner=int(expand * d_model),
        dt_rank=_dt_rank(ssm.get("dt_rank"), d_model, lbl, "dt_rank"),
        in_proj_bias=_get(ssm, "bias", bool, lbl, False),
        conv_bias=_get(ssm, "conv_bias", bool, lbl, True),
        rms_norm=_get(raw, "rms_norm", bool, label, True),
        residual_in_fp32=_get(raw, "residual_in_fp32", bool, label, True),
        tie_embeddings=_get(raw, "tie_embeddings", bool, label, True),
        norm_eps=_get(raw, "norm_epsilon", float, label, 1e-5),
        bos_token_id=_token_id(raw, "bos_token_id", label),
        eos_token_id=_token_id(raw, "eos_token_id", label),
        pad_token_id=_token_id(raw, "pad_token_id", label),
    )


def parse_config(raw, label="config.json"):
    """Detects the layout of a parsed config.json and normalizes it. Raises ConvertError naming the field."""
    if not isinstance(raw, dict):
        raise ConvertError(f"{label}: expected a JSON object")
    if is_mamba2(raw):
        raise ConvertError(f"{label}: {MAMBA2_MESSAGE}")
    model_type = raw.get("model_type")
    if model_type == "mamba":
        spec = _parse_hf(raw, label, "mambart" if isinstance(raw.get("mambart"), dict) else "hf")
    elif model_type is None and "d_model" in raw and "n_layer" in raw:
        spec = _parse_state_spaces(raw, label)
    elif model_type is not None:
        raise ConvertError(f"{label}: model_type {model_type!r} is not supported (mambart runs Mamba-1 "
                           "'mamba' models)")
    else:
        raise ConvertError(f"{label}: unknown architecture (neither a Hugging Face 'model_type': 'mamba' config "
                           "nor a state-spaces config with 'd_model' and 'n_layer')")
    _check_ranges(spec, label)
    return spec


def mambart_config(spec, dtype_long, source):
    """The config.json the converter writes: Hugging Face "mamba" keys plus a "mambart" object."""
    return {
        "architectures": ["MambaForCausalLM"],
        "model_type": "mamba",
        "hidden_size": spec.d_model,
        "num_hidden_layers": spec.n_layer,
        "vocab_size": spec.vocab_size,
        "state_size": spec.d_state,
        "conv_kernel": spec.d_conv,
        "expand": int(spec.expand) if float(spec.expand).is_integer() else spec.expand,
        "intermediate_size": spec.d_inner,
        "time_step_rank": spec.dt_rank,
        "use_bias": spec.in_proj_bias,
        "use_conv_bias": spec.conv_bias,
        "layer_norm_epsilon": spec.norm_eps,
        "residual_in_fp32": spec.residual_in_fp32,
        "tie_word_embeddings": spec.tie_embeddings,
        "hidden_act": "silu",
        "bos_token_id": spec.bos_token_id,
        "eos_token_id": spec.eos_token_id,
        "pad_token_id": spec.pad_token_id,
        "mambart": {
            "format_version": FORMAT_VERSION,
            "source": source,
            "rms_norm": spec.rms_norm,
            "vocab_size_unpadded": spec.vocab_size_unpadded,
            "dtype": dtype_long,
        },
    }
