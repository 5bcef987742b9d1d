"""The `mambart` command line (python -m mambart): generate on the embedded model, --help, one-line errors."""
import subprocess
import sys

import pytest


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "mambart", *args], input=stdin, capture_output=True, text=True,
                          timeout=300)


def test_generate_embedded_model_streams_text():
    r = run("generate", "def fib(n):", "-n", "40", "--seed", "1", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("def fib(n):") and len(r.stdout) > len("def fib(n):")
    assert "tokens/s" in r.stderr


def test_generate_same_seed_same_text_and_stdin_prompt():
    a = run("generate", "-n", "30", "--seed", "7", "--device", "cpu", stdin="import os\n")
    b = run("generate", "import os\n", "-n", "30", "--seed", "7", "--device", "cpu")
    assert a.returncode == 0 and b.returncode == 0
    assert a.stdout == b.stdout


def test_generate_ids_mode():
    r = run("generate", "--ids", "100 101 102", "-n", "5", "-t", "0", "--no-stop", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) == 5 and all(t.isdigit() for t in r.stdout.split())


@pytest.mark.parametrize("args", [(), ("generate", "--help"), ("convert", "--help"), ("info", "--help"),
                                  ("bench", "--help")])
def test_help(args):
    r = run(*args) if args else run("--help")
    assert r.returncode == 0 and "usage" in r.stdout.lower()


@pytest.mark.parametrize("args, pattern", [
    (("generate", "x", "--model", "/nonexistent/model"), "does not exist"),
    (("generate", "x", "--top-p", "1.5"), "top_p"),
    (("generate", "--ids", "1 2 999999", "--device", "cpu"), "out of range"),
    (("generate", "x", "--device", "tpu"), "unknown device"),
])
def test_user_errors_are_one_line(args, pattern):
    r = run(*args)
    assert r.returncode == 2
    assert pattern in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
