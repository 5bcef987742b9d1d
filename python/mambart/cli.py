"""The `mambart` command line: generate, convert, info, bench. User mistakes give a one-line error and a
non-zero exit code (2), never a traceback."""
from __future__ import annotations

import argparse
import sys
import time


def _add_sampling(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("-n", "--max-new-tokens", type=int, default=200, help="tokens to generate (default 200)")
    g.add_argument("-t", "--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    g.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (1 = off; default 0.95)")
    g.add_argument("--min-p", type=float, default=0.0, help="drop tokens below min_p * max prob (0 = off)")
    g.add_argument("--repetition-penalty", type=float, default=1.0, help="HF-style penalty (1 = off)")
    g.add_argument("--seed", type=int, default=None, help="random seed (same seed, same tokens)")
    g.add_argument("--no-stop", action="store_true", help="do not stop at the end-of-text token")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None, help="model folder (default: the embedded demo model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: as stored)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")


def cmd_generate(args) -> int:
    from .session import Session

    prompt = args.prompt
    if prompt is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise ValueError("give a PROMPT argument or pipe a prompt on stdin")
        prompt = sys.stdin.read()
    session = Session(args.model, device=args.device, threads=args.threads, dtype=args.dtype)
    if args.ids:
        try:
            ids = [int(t) for t in prompt.replace(",", " ").split()]
        except ValueError:
            raise ValueError("--ids expects space-separated integer token ids") from None
        inp = ids
    else:
        if session.tokenizer is None:
            raise ValueError(f"model {session.path} has no tokenizer: pass token ids with --ids")
        inp = prompt
    stop = [] if args.no_stop else None
    t0 = time.perf_counter()
    n = 0
    if not args.ids:
        sys.stdout.write(prompt)
    sys.stdout.flush()
    for piece in session.stream(inp, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                                repetition_penalty=args.repetition_penalty, seed=args.seed, stop_tokens=stop):
        n += 1
        sys.stdout.write(piece if isinstance(piece, str) else f"{piece} ")
        sys.stdout.flush()
    dt = time.perf_counter() - t0
    sys.stdout.write("\n")
    print(f"[{n} tokens in {dt:.2f} s, {n / max(dt, 1e-9):.1f} tokens/s, device {session.device}]", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "convert":
        from .convert import main_convert

        return main_convert(argv[1:])
    if argv and argv[0] == "info":
        from .convert import main_info

        return main_info(argv[1:])
    if argv and argv[0] == "bench":
        from .bench_cpu import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="mambart", description="Run Mamba language models (no torch needed).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    g = sub.add_parser("generate", help="stream a continuation of PROMPT (argument or stdin)")
    g.add_argument("prompt", nargs="?", default=None, help="prompt text (or token ids with --ids)")
    g.add_argument("--ids", action="store_true", help="the prompt is space-separated token ids")
    _add_model(g)
    _add_sampling(g)
    g.set_defaults(func=cmd_generate)
    sub.add_parser("convert", help="convert a checkpoint (see `mambart convert --help`)", add_help=False)
    sub.add_parser("info", help="describe a model folder (see `mambart info --help`)", add_help=False)
    sub.add_parser("bench", help="CPU benchmark on random weights (see `mambart bench --help`)", add_help=False)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\n[interrupted]", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f"mambart: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError, OSError) as e:
        print(f"mambart: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
