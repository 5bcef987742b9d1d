"""CUDA kernels on the CPU simulation (tests/cuda_sim): where no GPU is present (CI), the CUDA sources in KERNELS,
host launch logic included, are compiled as C++ with tests/cuda_sim/cuda_sim.h (a block's threads as fibers,
__syncthreads as a barrier) and checked against the scalar reference on random inputs: the prefill
scan (scan_sim.cpp: every lane count, time segments, fp32/fp16/bf16, odd shapes, both tile paths), the conv1d
kernels (conv_sim.cpp: the 16-byte and scalar prefill paths, d_conv 1..7, the decode step) and the other per-op
kernels (ops_sim.cpp: embed, add_norm, GEMV and fallback GEMM, decode scan step, sampling) and the batched decode
step's fused kernels (batch_sim.cpp: conv_xproj, scan_batch, against the ops they fuse).
A second build under ThreadSanitizer (the scan, conv1d and batch groups; the threads then as std::threads) turns a missing
barrier between a block's threads into a reported race (slower: with CI=true or MAMBART_SIM_TSAN=1). Needs the CUDA headers (CUDA_HOME, or /usr/local/cuda*) and a
C++20 compiler; skips otherwise. The GPU tests (test_cuda_kernels.py) remain the word on the hardware."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "tests" / "cuda_sim"
# The CUDA sources run on the simulation (decode_step.cu needs grid-wide barriers; decode_layer / decode_batch /
# cuda_backend are host code around a device).
KERNELS = ("scan.cu", "conv1d.cu", "embed.cu", "norm.cu", "matmul.cu", "sample.cu", "conv_xproj.cu", "scan_batch.cu")


def _cuda_include() -> str | None:
    cands = [os.path.join(os.environ[k], "include") for k in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(k)]
    nvcc = shutil.which("nvcc")
    if nvcc:
        cands.append(str(Path(os.path.realpath(nvcc)).parent.parent / "include"))
    cands += sorted(glob.glob("/usr/local/cuda*/include"), reverse=True)
    for c in cands:
        if os.path.exists(os.path.join(c, "cuda_runtime.h")) and os.path.exists(os.path.join(c, "cuda_fp16.h")):
            return c
    return None


def _build(tmp: Path, extra: list[str]) -> Path:
    inc = _cuda_include()
    cxx = os.environ.get("CXX", "g++")
    if not inc:
        pytest.skip("no CUDA headers (CUDA_HOME or /usr/local/cuda*)")
    if not shutil.which(cxx):
        pytest.skip(f"no C++ compiler ({cxx})")
    exe = tmp / "kernels_sim"
    cmd = [cxx, "-std=c++20", "-O1", "-g", "-DMAMBART_CUDA_SIM", *extra, "-include", str(SIM / "cuda_sim.h"),
           f"-I{ROOT / 'cuda'}", f"-I{ROOT / 'cpp' / 'src'}", f"-I{inc}",
           "-x", "c++", *[str(ROOT / "cuda" / f) for f in KERNELS], "-x", "none",
           *[str(SIM / f) for f in ("cuda_sim.cpp", "sim_main.cpp", "scan_sim.cpp", "conv_sim.cpp", "ops_sim.cpp",
                                    "batch_sim.cpp")],
           str(ROOT / "cpp" / "src" / "ref" / "ref_ops.cpp"), str(ROOT / "cpp" / "src" / "dtype.cpp"),
           str(ROOT / "cuda" / "errors.cpp"), str(ROOT / "cuda" / "cublas_loader.cpp"), "-o", str(exe), "-lpthread", "-ldl"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0 and "<barrier>" in p.stderr:
        pytest.skip(f"{cxx} has no C++20 <barrier>")
    assert p.returncode == 0, f"simulation build failed:\n{' '.join(cmd)}\n{p.stderr[-6000:]}"
    return exe


def _run(exe: Path, *groups: str) -> str:
    p = subprocess.run([str(exe), *groups], capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-8000:]
    assert " 0 failed" in p.stdout, out[-8000:]
    assert "FAIL" not in p.stdout, out[-8000:]
    return out


def test_kernels_on_cpu_simulation(tmp_path):
    out = _run(_build(tmp_path, []))
    assert all(f"{g}: " in out for g in ("scan", "conv1d", "ops", "batch")), out
    assert out.count("ok ") >= 140, out  # the cases really ran (148 when written)


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("CI", "").lower() == "true" or os.environ.get("MAMBART_SIM_TSAN") == "1"),
                    reason="ThreadSanitizer build: set MAMBART_SIM_TSAN=1 (or CI=true)")
def test_kernels_block_protocol_tsan(tmp_path):
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx):
        lib = subprocess.run([cxx, "-print-file-name=libtsan.so"], capture_output=True, text=True).stdout.strip()
        if not (os.path.isabs(lib) and os.path.exists(lib)):
            pytest.skip("the compiler has no ThreadSanitizer runtime (libtsan.so)")
    # The kernels with shared-memory pipelines between a block's threads (scan tiles, conv, the batched step's tiles
    # and atomics); the ops group takes ~8 minutes under TSan and reports one benign race (the decode scan step's
    # padded lanes read the last channel's state that its owner writes, and discard the value).
    out = _run(_build(tmp_path, ["-fsanitize=thread"]), "scan", "conv1d", "batch")
    assert "ThreadSanitizer" not in out, out[-8000:]
