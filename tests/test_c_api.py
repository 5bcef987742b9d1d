"""The C API from outside: libmambart is configured, built and installed into a temporary prefix with CMake (once
per test session), the example is built against it with find_package(mambart), and its greedy tokens must equal
mambart.Session.generate on the same random checkpoint. Also runs the C test program (tests/c/test_c_api.c)
against the installed library, and checks the installed layout and the exported symbols.

Set MAMBART_C_PREFIX to an existing install prefix to skip the library build."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mambart

ROOT = Path(__file__).resolve().parents[1]
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
CMAKE = shutil.which("cmake")
pytestmark = pytest.mark.skipif(not (CMAKE and CC and shutil.which("c++")),
                                reason="the C API tests need cmake and a C/C++ compiler on PATH")


def _run(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def _generator():
    return ["-G", "Ninja"] if shutil.which("ninja") else []


@pytest.fixture(scope="session")
def prefix(tmp_path_factory) -> Path:
    """An install prefix holding libmambart, its header and CMake package."""
    given = os.environ.get("MAMBART_C_PREFIX")
    if given:
        return Path(given)
    work = tmp_path_factory.mktemp("c_api")
    build, prefix = work / "build", work / "prefix"
    _run([CMAKE, "-S", ROOT, "-B", build, *_generator(), "-DCMAKE_BUILD_TYPE=Release", "-DMAMBART_PYTHON=OFF",
          "-DMAMBART_TESTS=OFF", "-DMAMBART_CUDA=OFF", "-DMAMBART_C_API=ON", f"-DCMAKE_INSTALL_PREFIX={prefix}"])
    _run([CMAKE, "--build", build, "--target", "mambart", "-j", str(min(2, os.cpu_count() or 1))])
    _run([CMAKE, "--install", build])
    return prefix


def _libdir(prefix: Path) -> Path:
    return next(p.parent for p in prefix.rglob("libmambart.so"))


@pytest.fixture(scope="session")
def example(prefix, tmp_path_factory) -> Path:
    """examples/generate.c built by examples/CMakeLists.txt against the installed package."""
    build = tmp_path_factory.mktemp("example_build")
    _run([CMAKE, "-S", ROOT / "examples", "-B", build, *_generator(), f"-DCMAKE_PREFIX_PATH={prefix}",
          "-DCMAKE_BUILD_TYPE=Release"])
    _run([CMAKE, "--build", build])
    return build / "mambart_generate"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    pytest.importorskip("transformers")
    from ckpt_utils import make_hf_model, save_hf

    base = tmp_path_factory.mktemp("c_models")
    return {
        # eos 100 (not 0) so the random model rarely stops early and the comparison covers many tokens
        "base": save_hf(make_hf_model(seed=21, eos_token_id=100), base / "base"),
        "odd_untied": save_hf(make_hf_model(seed=22, hidden_size=40, vocab_size=77, state_size=8, conv_kernel=3,
                                            use_bias=True, tie_word_embeddings=False, eos_token_id=3),
                              base / "odd_untied"),
    }


def _run_example(example, *args):
    return subprocess.run([str(example), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["base", "odd_untied"])
def test_example_tokens_match_python(example, model_dirs, name):
    d = model_dirs[name]
    prompt = np.random.default_rng(5).integers(0, 40, size=7)
    n = 40
    p = _run_example(example, d, n, *prompt)
    assert p.returncode == 0, p.stderr
    c_tokens = [int(t) for t in p.stdout.split()]
    # both sides pick the device the same way ("auto") so they run the same backend
    py_tokens = mambart.Session(d).generate(prompt, max_new_tokens=n).tolist()
    assert len(c_tokens) >= 8, c_tokens
    assert c_tokens == py_tokens


def test_example_bad_path(example, tmp_path):
    p = _run_example(example, tmp_path / "no-such-model", 4, 1, 2)
    assert p.returncode == 1
    assert "MAMBART_FILE_ERROR" in p.stderr and "no-such-model" in p.stderr, p.stderr
    assert p.stdout == ""


def test_example_bad_token(example, model_dirs):
    p = _run_example(example, model_dirs["base"], 4, 1, 101)
    assert p.returncode == 1
    assert "MAMBART_INVALID_ARGUMENT" in p.stderr and "out of range" in p.stderr, p.stderr


def test_example_usage(example):
    p = _run_example(example)
    assert p.returncode == 2 and "usage" in p.stderr


def test_c_test_program(prefix, tmp_path):
    """tests/c/test_c_api.c (every API function, error paths, cancel) built against the installed library."""
    exe = tmp_path / "test_c_api_c"
    lib = _libdir(prefix)
    _run([CC, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", ROOT / "tests" / "c" / "test_c_api.c",
          f"-I{prefix / 'include'}", f"-L{lib}", "-lmambart", "-lm", f"-Wl,-rpath,{lib}", "-o", exe])
    p = subprocess.run([str(exe), str(tmp_path / "scratch")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and " 0 failed" in p.stdout, p.stdout + p.stderr


def test_installed_layout(prefix):
    assert (prefix / "include" / "mambart" / "mambart.h").is_file()
    lib = _libdir(prefix)
    assert (lib / "cmake" / "mambart" / "mambart-config.cmake").is_file()
    assert (lib / "cmake" / "mambart" / "mambart-config-version.cmake").is_file()
    nm = shutil.which("nm")
    if nm:
        out = _run([nm, "-D", "--defined-only", lib / "libmambart.so"]).stdout
        names = {line.split()[-1] for line in out.splitlines() if line.strip()}
        assert names and all(n.startswith("mambart_") for n in names), sorted(n for n in names
                                                                             if not n.startswith("mambart_"))[:20]


@pytest.mark.parametrize("lang", ["c89", "c99", "c++"])
def test_header_compiles_standalone(prefix, tmp_path, lang):
    """The header is plain C (no C++ types) and also compiles as C++."""
    src = tmp_path / ("h.cpp" if lang == "c++" else "h.c")
    src.write_text("#include <mambart/mambart.h>\nint main(void) { return mambart_version() == 0; }\n")
    compiler = shutil.which("c++") if lang == "c++" else CC
    std = ["-std=c++17"] if lang == "c++" else [f"-std={lang}", "-pedantic"]
    _run([compiler, *std, "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{prefix / 'include'}", src])


def test_find_package_version_check(prefix, tmp_path):
    """find_package(mambart 9.0) must fail against this install (SameMinorVersion compatibility)."""
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(v LANGUAGES C)\nfind_package(mambart 9.0 REQUIRED CONFIG)\n")
    p = subprocess.run([CMAKE, "-S", str(tmp_path), "-B", str(tmp_path / "b"), f"-DCMAKE_PREFIX_PATH={prefix}"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "mambart" in (p.stdout + p.stderr)
