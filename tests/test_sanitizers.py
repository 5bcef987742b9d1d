"""ASan + UBSan (issue 7 item 4): runs tools/sanitize_check.sh, which builds the C/C++ tests, the C API and the
Python module with -DMAMBART_SANITIZE=ON, runs the C/C++ tests and a subset of the Python tests against the
sanitized module, and fails on any finding.

Slow (a full sanitized build, ~5-10 minutes on 2 cores): runs only with MAMBART_SANITIZE_TESTS=1 or CI=true.
The build folder (build/sanitize, or $MAMBART_SANITIZE_BUILD) is reused between runs."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "sanitize_check.sh"
ENABLED = os.environ.get("MAMBART_SANITIZE_TESTS") == "1" or os.environ.get("CI", "").lower() == "true"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ENABLED, reason="slow sanitizer build: set MAMBART_SANITIZE_TESTS=1 (or CI=true)"),
]


def _asan_runtime_present() -> bool:
    cxx = os.environ.get("CXX", "g++")
    if not shutil.which(cxx):
        return False
    path = subprocess.run([cxx, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return os.path.isabs(path) and os.path.exists(path)


def test_sanitize_check():
    if not (shutil.which("cmake") and shutil.which("bash")):
        pytest.skip("needs cmake and bash")
    if not _asan_runtime_present():
        pytest.skip("the compiler has no ASan runtime (libasan.so)")
    try:
        p = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=15 * 60)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"sanitize_check.sh took more than 15 minutes:\n{(e.stdout or b'')[-3000:]!r}")
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"sanitize_check.sh failed ({p.returncode}):\n{out[-8000:]}"
    assert "sanitize check passed" in p.stdout
    for finding in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert finding not in out, out[-8000:]
