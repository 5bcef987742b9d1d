"""CPU benchmark (see mambart/bench_cpu.py for what it measures). From the repo root, after `pip install .`
or with a built module on PYTHONPATH:

    python bench/bench_cpu.py --shapes 130m --dtypes f32,f16,bf16 --threads 2

It updates the "## CPU" section of docs/BENCHMARKS.md. The same code runs as `mambart bench`."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MAMBART_REPO", str(ROOT))
try:
    import mambart  # noqa: F401
except ImportError:  # a source checkout with the module built in place
    sys.path.insert(0, str(ROOT / "python"))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), os.environ.get("PYTHONPATH")]))
from mambart.bench_cpu import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
