#!/usr/bin/env bash
# ASan + UBSan check (issue 7 item 4). Builds, with -DMAMBART_SANITIZE=ON:
#   - the C/C++ tests (cmake/tests.cmake: parsers with hostile inputs; cmake/c_api.cmake: the C test program
#     tests/c/test_c_api.c, which writes a small model and drives the whole C API through libmambart),
#   - the Python module _core,
# runs the C/C++ tests (ctest; leaks detected), then a subset of the Python tests against the sanitized module
# (python with LD_PRELOAD of the ASan runtime; leak detection off since CPython leaks by design).
# Any sanitizer finding aborts the process it happens in, so the script fails on any finding.
#
# Usage: tools/sanitize_check.sh            (build dir: build/sanitize, or $MAMBART_SANITIZE_BUILD)
# Env:   JOBS (default 2), PYTEST_ARGS (extra pytest arguments for every run),
#        MAMBART_SANITIZE_PYTESTS (the pytest runs, separated by ';').
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${MAMBART_SANITIZE_BUILD:-$ROOT/build/sanitize}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-python3}
CXX_COMPILER=${CXX:-g++}
PYTESTS=${MAMBART_SANITIZE_PYTESTS:-"tests/test_parity.py -k base; tests/test_errors.py; tests/test_concurrency.py -k many_threads"}

say() { printf '\n== %s\n' "$*"; }

GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)

say "configure + build ($BUILD)"
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAMBART_SANITIZE=ON \
  -DMAMBART_TESTS=ON -DMAMBART_CUDA=OFF -DMAMBART_PYTHON=ON -DMAMBART_C_API=ON \
  -DPython_EXECUTABLE="$(command -v "$PYTHON")" >"$BUILD.configure.log" 2>&1 ||
  { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS"

# Findings abort (halt_on_error); allocator_may_return_null lets the out-of-memory paths be tested.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
ASAN_COMMON="abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:detect_odr_violation=0"

say "C/C++ tests (ctest)"
(cd "$BUILD" && ASAN_OPTIONS="$ASAN_COMMON:detect_leaks=1" ctest --output-on-failure -j "$JOBS")

say "Python tests against the sanitized module: $PYTESTS"
# A private package folder: the sources of python/mambart plus the sanitized _core, first on PYTHONPATH.
PKG="$BUILD/pypkg"
rm -rf "$PKG"
mkdir -p "$PKG/mambart"
cp "$ROOT"/python/mambart/*.py "$PKG/mambart/"
for d in "$ROOT"/python/mambart/*/; do [ -d "$d" ] && cp -r "$d" "$PKG/mambart/"; done
cp "$BUILD"/_core*.so "$PKG/mambart/"
ASAN_RT=$("$CXX_COMPILER" -print-file-name=libasan.so)
# libstdc++ too: python is not linked against it, and ASan must resolve __cxa_throw at start-up or its
# interceptor aborts on the first C++ exception.
STDCXX_RT=$("$CXX_COMPILER" -print-file-name=libstdc++.so)
[ -f "$ASAN_RT" ] || { echo "ASan runtime not found ($ASAN_RT)"; exit 1; }

run_py() {
  env LD_PRELOAD="$ASAN_RT:$STDCXX_RT" ASAN_OPTIONS="$ASAN_COMMON:detect_leaks=0" PYTHONPATH="$PKG" \
    HF_HUB_OFFLINE=1 "$PYTHON" "$@"
}
run_py -c "import mambart, mambart._core as c; assert c.__file__.startswith('$PKG'), c.__file__; print('module:', c.__file__)"
cd "$ROOT"
IFS=';' read -ra RUNS <<<"$PYTESTS"
for args in "${RUNS[@]}"; do
  say "pytest $args"
  # shellcheck disable=SC2086
  run_py -m pytest -q -p no:cacheprovider $args ${PYTEST_ARGS:-}
done

say "sanitize check passed: no ASan/UBSan findings"
