#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and runs each for SECONDS.
# Usage: fuzz/run_fuzz.sh [SECONDS=60]     Exits non-zero when a target crashes or a sanitizer reports.
# Env: FUZZ_BUILD_DIR (default build/fuzz), CXX (default clang++).
# The seed corpus in fuzz/corpus/ is only read; new inputs go to $FUZZ_BUILD_DIR/corpus-*, crash inputs to
# $FUZZ_BUILD_DIR/crash-*.
set -euo pipefail
SECONDS_PER_TARGET=${1:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}
CXX=${CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "run_fuzz.sh: $CXX not found (apt-get install clang)" >&2; exit 2; }
mkdir -p "$BUILD"

FLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -I"$ROOT/cpp/src")
SOURCES=("$ROOT/cpp/src/json.cpp" "$ROOT/cpp/src/safetensors.cpp" "$ROOT/cpp/src/config.cpp"
         "$ROOT/cpp/src/dtype.cpp")
for target in safetensors config; do
  echo "== building fuzz_$target"
  "$CXX" "${FLAGS[@]}" "$ROOT/fuzz/fuzz_$target.cpp" "${SOURCES[@]}" -o "$BUILD/fuzz_$target"
done

status=0
for target in safetensors config; do
  work="$BUILD/corpus-$target"
  mkdir -p "$work"
  echo "== fuzz_$target for ${SECONDS_PER_TARGET}s"
  log="$BUILD/fuzz_$target.log"
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
     "$BUILD/fuzz_$target" "$work" "$ROOT/fuzz/corpus/$target" \
       -dict="$ROOT/fuzz/$target.dict" -max_total_time="$SECONDS_PER_TARGET" -max_len=16384 \
       -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$BUILD/crash-$target-" >"$log" 2>&1; then
    echo "   ok: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s}') executions," \
         "$(grep -c -E '^(==[0-9]+==ERROR|SUMMARY: |.*deadly signal)' "$log" || true) crashes;" \
         "corpus $(ls "$work" | wc -l) files"
  else
    status=1
    echo "   FAILED (crash input: $BUILD/crash-$target-*); log tail:"
    tail -n 40 "$log"
  fi
done
exit $status
