"""Prefill a long system prompt once, then answer many questions from copies of its state.

Mamba's state has a fixed size (n_layer * d_inner * (d_conv + d_state) floats per sequence), so a prompt's
state can be kept and forked for almost nothing, however long the prompt was. This script times answering
N questions after a long shared prefix two ways: re-running the prefix for every question, and prefilling
it once and starting each question from `state.copy()`. The answers are identical (checked).

    python examples/prefix_reuse.py                      # the embedded demo model
    python examples/prefix_reuse.py --model PATH --prefix-tokens 2048 --questions 8 --md docs/BENCHMARKS.md
"""
import argparse
import platform
import time

import numpy as np

import mambart


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model folder (default: the embedded demo model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prefix-tokens", type=int, default=2048)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--question-tokens", type=int, default=16)
    ap.add_argument("--answer-tokens", type=int, default=16)
    ap.add_argument("--md", default=None, help="write the result as the '## State reuse' section of this file")
    a = ap.parse_args(argv)

    s = mambart.Session(a.model, device=a.device)
    rng = np.random.default_rng(0)
    vocab = s.config.vocab_size_unpadded
    prefix = rng.integers(0, vocab, a.prefix_tokens)
    questions = [rng.integers(0, vocab, a.question_tokens) for _ in range(a.questions)]
    kw = dict(max_new_tokens=a.answer_tokens, stop_tokens=[])

    t = time.perf_counter()
    plain = [s.generate(np.concatenate([prefix, q]), **kw) for q in questions]
    t_plain = time.perf_counter() - t

    t = time.perf_counter()
    base = s.new_state()
    s.forward(prefix, state=base, logits="last")  # the system prompt, once
    reused = [s.generate(q, state=base.copy(), **kw) for q in questions]
    t_reuse = time.perf_counter() - t

    for x, y in zip(plain, reused):
        np.testing.assert_array_equal(x, y)
    state_kib = s.config.state_bytes_per_sequence / 1024
    lines = [
        f"Model `{s.path.name}` on {s.device}, {platform.processor() or platform.machine()}; "
        f"command: `python examples/prefix_reuse.py --prefix-tokens {a.prefix_tokens} --questions {a.questions}`.",
        "",
        "| prefix tokens | questions | re-prefill every time | prefill once + state.copy() | speedup | state size |",
        "|---|---|---|---|---|---|",
        f"| {a.prefix_tokens} | {a.questions} | {t_plain:.2f} s | {t_reuse:.2f} s | {t_plain / t_reuse:.1f}x | "
        f"{state_kib:.0f} KiB |",
        "",
        "Answers are identical both ways (checked by the script).",
    ]
    print("\n".join(lines))
    if a.md:
        from mambart.bench_utils import replace_section

        replace_section(a.md, "State reuse", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
