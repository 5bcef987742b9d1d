"""Runs the native test programs from pytest so CI's one test command covers them: the C++ tests (ctest)
and a bounded libFuzzer run of the header and config parsers (clang needed; .ci/run installs it)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cpp_tests(tmp_path_factory):
    build = tmp_path_factory.mktemp("cpp-tests")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run(["cmake", "-S", str(ROOT), "-B", str(build), *gen, "-DCMAKE_BUILD_TYPE=Release", "-DMAMBART_TESTS=ON",
          "-DMAMBART_PYTHON=OFF", "-DMAMBART_CUDA=OFF"], timeout=600)
    _run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)], timeout=1800)
    out = _run(["ctest", "--test-dir", str(build), "--output-on-failure"], timeout=900)
    assert "tests passed" in out


@pytest.mark.skipif(shutil.which("clang++") is None, reason="clang++ not installed (apt-get install clang)")
def test_fuzz_parsers_bounded(tmp_path):
    seconds = os.environ.get("MAMBART_FUZZ_SECONDS", "60")
    out = _run(["bash", str(ROOT / "fuzz" / "run_fuzz.sh"), seconds], env={**os.environ, "FUZZ_BUILD_DIR": str(tmp_path)},
               timeout=int(seconds) * 2 + 600)
    print(out)
    assert "FAILED" not in out
