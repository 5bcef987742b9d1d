#!/usr/bin/env bash
# One script for the GPU machine: builds the package with the CUDA backend, runs the GPU tests, measures the
# device copy bandwidth and runs bench/bench_gpu.py (mambart vs HF transformers in one process), printing the
# benchmark table last. Output files go to $OUT (default ./gpu_out).
# Usage: bash tools/gpu_check.sh [build] [test] [bench] [profile] [stalls] [probe]   (default: build test bench)
#   env: ARCHS (default 90-real), TEST_TIMEOUT (s, default 360: a hung kernel ends the stage inside the device tool's 600-s call limit; the tests take ~2 min), BENCH_ARGS (e.g. "--shapes 130m --no-hf"), PYTEST_ARGS, PYTEST_K (a -k expression),
#        NCU_METRICS (comma-separated, default gpu__time_duration.sum; bench/ncu_table.py adds the others as columns),
#        PROFILE_CASES: ';'-separated argument lists of bench/profile_gpu.py, each profiled per kernel with ncu
#        (default: 2.8b prefill of one 4096-token chunk, 2.8b decode at batch 64 and 1, 130m decode at batch 1); a
#        case may start with VAR=value words, set for that case only ("MAMBART_SCAN_SEGMENTS=3 2.8b prefill 1 2 4096")
#   stalls: STALL_CASE (one profile_gpu.py argument list), NCU_KERNEL (kernel name regex, default scan_prefill)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
STAGES=${*:-build test bench}
PY=${PYTHON:-python3}
# cuBLAS from the nvidia-cublas wheel, found by the run-time loader of the CUDA backend.
CUBLAS_DIR=$($PY -c "import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], 'lib'))" 2>/dev/null || true)
if [ -z "$CUBLAS_DIR" ] || [ ! -d "$CUBLAS_DIR" ]; then
  CUBLAS_DIR=$($PY -c "import nvidia, os, glob; print(next(iter(glob.glob(os.path.join(list(nvidia.__path__)[0], '*', 'lib', 'libcublas.so.*'))), '').rsplit('/', 1)[0])" 2>/dev/null || true)
fi
[ -n "$CUBLAS_DIR" ] && export LD_LIBRARY_PATH="$CUBLAS_DIR:${LD_LIBRARY_PATH:-}"
echo "cuBLAS dir: ${CUBLAS_DIR:-none}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader || true

# The image's default CXX (/opt/gcc) links libstdc++ statically: the module then carries a second libstdc++ whose
# locale facets crash iostreams once torch has loaded the system one. Build with the system compiler.
if [ -x /usr/bin/g++ ]; then export CC=/usr/bin/gcc CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++; fi
rc=0
if [[ " $STAGES " == *" build "* ]]; then
  t0=$(date +%s)
  $PY -m pip install --no-build-isolation --no-deps -q . \
      -Ccmake.define.MAMBART_CUDA=ON -Ccmake.define.MAMBART_CUDA_ARCHS="${ARCHS:-90-real}" \
      -Cbuild-dir=build/gpu_check 2>&1 | tail -20 | tee "$OUT/build.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "BUILD FAILED"; exit 1; }
  echo "build: $(( $(date +%s) - t0 )) s"
  (cd /tmp && $PY -c "import mambart, mambart._core as c; print('mambart', mambart.__file__, 'cuda_available', c.cuda_available())")
  (cd /tmp && readelf -d "$($PY -c 'import mambart._core as c; print(c.__file__)')" | grep -q "libstdc++" && echo "libstdc++: shared") || echo "WARNING: libstdc++ linked statically"
fi
if [[ " $STAGES " == *" test "* ]]; then
  t0=$(date +%s)
  timeout "${TEST_TIMEOUT:-360}" $PY -m pytest -q -rf --tb=short -p no:cacheprovider tests/test_cuda_kernels.py tests/test_cuda_e2e.py tests/test_cuda_interop.py \
      ${PYTEST_ARGS:-} ${PYTEST_K:+-k "$PYTEST_K"} -s 2>&1 | tee "$OUT/tests.log" | grep -E "^CUDA_PARITY|^FAILED|passed|failed|^E " | head -60
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "TESTS FAILED"; rc=1; }
  echo "tests: $(( $(date +%s) - t0 )) s"
fi
if [[ " $STAGES " == *" bench "* ]]; then
  export BENCH_TMP=${BENCH_TMP:-/tmp}
  $PY bench/bench_gpu.py --out "$OUT" ${BENCH_ARGS:---reps 3} 2>&1 | tee "$OUT/bench.log" | tail -30
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "BENCH FAILED"; rc=1; }
fi
if [[ " $STAGES " == *" profile "* ]]; then
  IFS=';' read -ra CASES <<< "${PROFILE_CASES:-2.8b prefill 1 2 4096;2.8b decode 64 2 4;2.8b decode 1 2 4;130m decode 1 0 4}"
  for c in "${CASES[@]}"; do
    f="$OUT/ncu_$(echo $c | tr ' =' '__').csv"
    vars=$(echo "$c" | grep -oE '^([A-Z_]+=[^ ]+ +)+' || true)  # leading VAR=value words: that case's environment
    env $vars ncu --profile-from-start off --clock-control none --csv --page raw --metrics "${NCU_METRICS:-gpu__time_duration.sum}" \
        $PY bench/profile_gpu.py ${c#"$vars"} > "$f" 2> "$f.err" || { echo "PROFILE FAILED: $c"; tail -5 "$f.err"; }
    $PY bench/ncu_table.py "$f" "$c" | tee "$f.md" | head -24
  done
fi
if [[ " $STAGES " == *" probe "* ]]; then
  # GEMV layouts against the read ceiling (bench/gemv_probe.cu: standalone, needs only nvcc).
  nvcc -O3 -arch=sm_90 bench/gemv_probe.cu -o /tmp/gemv_probe 2>&1 | tail -5 && /tmp/gemv_probe | tee "$OUT/gemv_probe.txt"
fi
if [[ " $STAGES " == *" stalls "* ]]; then
  # Why one kernel waits: ncu's warp-state, scheduler and occupancy sections plus stall samples per SASS
  # instruction (stalls_sass.csv) for the first launch matching NCU_KERNEL in STALL_CASE (bench/profile_gpu.py args).
  c=${STALL_CASE:-2.8b prefill 1 1 4096}
  rep=/tmp/mambart_stalls
  ncu --profile-from-start off -k "regex:${NCU_KERNEL:-scan_prefill}" -c 1 --section WarpStateStats \
      --section SchedulerStats --section Occupancy --section ComputeWorkloadAnalysis --section InstructionStats \
      --section SourceCounters --section LaunchStats --import-source yes -f -o "$rep" $PY bench/profile_gpu.py $c \
      > "$OUT/stalls.log" 2>&1 || { echo "STALLS FAILED"; tail -5 "$OUT/stalls.log"; }
  ncu -i "$rep.ncu-rep" --page details > "$OUT/stalls_details.txt" 2>&1
  ncu -i "$rep.ncu-rep" --page source --csv --print-source sass > "$OUT/stalls_sass.csv" 2>&1
  grep -iE "duration|stall|warp cycles|issue|eligible|occupancy|registers|ipc|pipe" "$OUT/stalls_details.txt" | head -70
fi
exit $rc
