"""`mambart convert` and `mambart info`: argparse front ends. User mistakes print one line and exit 2."""
import argparse
import json
import sys

from .core import convert, info
from .dtypes import OUTPUT_DTYPES
from .errors import ConvertError


def _dtype_arg(name):
    if name.lower() not in OUTPUT_DTYPES:
        raise argparse.ArgumentTypeError(f"unknown dtype {name!r} (expected float32, float16 or bfloat16)")
    return name.lower()


def _convert_parser(prog):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Convert a Mamba-1 checkpoint (Hugging Face safetensors or pytorch_model.bin, or a state-spaces "
                    "mamba_ssm pytorch_model.bin) into the mambart layout. torch is not needed.",
        epilog="Hub ids are not downloaded: fetch the model first, e.g. "
               "`huggingface-cli download state-spaces/mamba-130m --local-dir mamba-130m`.")
    p.add_argument("src", metavar="SRC", help="model folder (config.json + weights) or a weights file")
    p.add_argument("dst", metavar="DST", help="output folder (must not exist unless --force)")
    p.add_argument("--dtype", type=_dtype_arg, default=None, metavar="{float32,float16,bfloat16}",
                   help="dtype of the projections, embedding and lm_head (default: the source's; fp32/fp16/bf16 "
                        "are accepted too); A, D, dt bias, conv and norm parameters stay float32")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    return p


def _info_parser(prog):
    p = argparse.ArgumentParser(prog=prog, description="Show what a Mamba model folder holds (any layout mambart "
                                                        "loads or converts): config, parameters, dtypes, sizes.")
    p.add_argument("path", metavar="PATH", help="model folder or weights file")
    p.add_argument("--json", action="store_true", help="print the information as JSON")
    return p


def _fail(prog, err):
    msg = str(err).replace("\n", " ")
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return 2


def _run(prog, fn):
    try:
        return fn()
    except ConvertError as e:
        return _fail(prog, e)
    except OSError as e:  # unreadable file, disk full, permissions
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main_convert(argv=None, prog="mambart convert"):
    args = _convert_parser(prog).parse_args(argv)

    def go():
        dst = convert(args.src, args.dst, dtype=args.dtype, force=args.force, progress=not args.quiet)
        if not args.quiet:
            print(f"wrote {dst}", file=sys.stderr)
        return 0

    return _run(prog, go)


def _human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def _print_info(d):
    c = d["config"]
    lines = [
        f"path:          {d['path']}",
        f"layout:        {d['layout']} ({d['weights_format']}, {len(d['weight_files'])} file(s), "
        f"{_human_bytes(d['file_bytes'])})",
        f"parameters:    {d['n_params']:,} in {d['n_tensors']} tensors; stored as "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(d["dtypes"].items())),
        f"projections:   {d['projection_dtype']}",
        f"model:         d_model={c['d_model']} n_layer={c['n_layer']} vocab_size={c['vocab_size']}"
        + (f" (unpadded {c['vocab_size_unpadded']})" if c["vocab_size_unpadded"] != c["vocab_size"] else ""),
        f"mixer:         d_inner={c['d_inner']} d_state={c['d_state']} d_conv={c['d_conv']} dt_rank={c['dt_rank']} "
        f"bias={c['in_proj_bias']} conv_bias={c['conv_bias']}",
        f"norm:          {'RMSNorm' if c['rms_norm'] else 'LayerNorm'} eps={c['norm_eps']:g} "
        f"residual_in_fp32={c['residual_in_fp32']} tied_embeddings={c['tie_embeddings']}",
        f"tokens:        bos={c['bos_token_id']} eos={c['eos_token_id']} pad={c['pad_token_id']}"
        + (f" tokenizer: {', '.join(d['tokenizer_files'])}" if d["tokenizer_files"] else " (no tokenizer files)"),
        f"state:         {_human_bytes(d['state_bytes_per_sequence'])} per sequence (fp32 conv + ssm)",
    ]
    if c.get("source"):
        lines.append(f"converted from: {c['source']}")
    print("\n".join(lines))


def main_info(argv=None, prog="mambart info"):
    args = _info_parser(prog).parse_args(argv)

    def go():
        d = info(args.path)
        if args.json:
            print(json.dumps(d, indent=2))
        else:
            _print_info(d)
        return 0

    return _run(prog, go)
