"""Benchmark helpers live in the package (mambart/bench_utils.py) so `mambart bench` works after install;
this module keeps `import common` working for the scripts in bench/."""
from mambart.bench_utils import *  # noqa: F401,F403
from mambart.bench_utils import SHAPES, DTYPES, VOCAB  # noqa: F401
