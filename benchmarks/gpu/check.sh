#!/usr/bin/env bash
# GPU check for a fresh machine with CUDA, cmake and ninja (no Node needed):
#   1. configures and builds the standalone targets (detseg3d_native_tests,
#      detseg3d_bench) for sm_90 (override: DETSEG3D_CUDA_ARCHS="80;90");
#   2. runs the native tests, including the CPU <-> GPU parity harness;
#   3. runs compute-sanitizer (memcheck, then racecheck) on a short subset when available;
#   4. runs the GPU op benchmarks and prints their table last.
# Usage: benchmarks/gpu/check.sh [build-dir]      (default build-gpu-check)
# Environment: DETSEG3D_CUDA_ARCHS, JOBS (default: all cores), SKIP_SANITIZER=1, BENCH_ARGS (e.g. quick).
# Exit status: non-zero when the build, a test or the sanitizer failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build-gpu-check}"
ARCHS="${DETSEG3D_CUDA_ARCHS:-90}"
JOBS="${JOBS:-$(nproc)}"
T0=$(date +%s)
status=0
stamp() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }

if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break
  done
fi
command -v nvcc >/dev/null 2>&1 || { echo "check.sh: nvcc not found (install the CUDA toolkit or add it to PATH)"; exit 2; }
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader

stamp "configure ($BUILD, CUDA architectures $ARCHS)"
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDETSEG3D_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" >"$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log"; echo "check.sh: configure failed"; exit 1; }
grep -E "detseg3d:" "$BUILD/configure.log" || true

stamp "build (-j$JOBS)"
if ! cmake --build "$BUILD" -j "$JOBS" --target detseg3d_native_tests detseg3d_bench >"$BUILD/build.log" 2>&1; then
  grep -E "error|Error" "$BUILD/build.log" | head -40
  echo "check.sh: build failed (full log: $BUILD/build.log)"
  exit 1
fi

stamp "native tests + CPU/GPU parity"
"$BUILD/detseg3d_native_tests" 2>&1 | tee "$BUILD/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "check.sh: native tests FAILED"; status=1; }
grep -q "GPU part skipped" "$BUILD/tests.log" && { echo "check.sh: the GPU was not usable, parity not run"; status=1; }

if [ "${SKIP_SANITIZER:-0}" != "1" ] && command -v compute-sanitizer >/dev/null 2>&1; then
  # memcheck: out-of-bounds / misaligned accesses in every kernel family;
  # racecheck: shared-memory hazards in the block reductions.
  for tool in memcheck racecheck; do
    stamp "compute-sanitizer --tool $tool (quick parity subset)"
    tests="cuda_core parity_basic parity_batchnorm parity_groupnorm parity_pool parity_loss parity_detection"
    [ "$tool" = racecheck ] && tests="parity_basic parity_batchnorm parity_groupnorm parity_detection"
    # Small sizes only (DETSEG3D_PARITY_QUICK); each filter selects one test.
    for t in $tests; do
      if ! DETSEG3D_PARITY_QUICK=1 timeout 90 compute-sanitizer --tool "$tool" --error-exitcode 3 \
          --print-limit 20 "$BUILD/detseg3d_native_tests" "$t" >"$BUILD/sanitizer-$tool-$t.log" 2>&1; then
        tail -30 "$BUILD/sanitizer-$tool-$t.log"
        echo "check.sh: compute-sanitizer $tool found problems in $t"
        status=1
      else
        tail -1 "$BUILD/sanitizer-$tool-$t.log"
      fi
    done
  done
else
  stamp "compute-sanitizer not available (or SKIP_SANITIZER=1): skipped"
fi

stamp "op benchmarks"
"$BUILD/detseg3d_bench" cuda_ops ${BENCH_ARGS:-} >"$BUILD/bench.log" 2>&1 || { cat "$BUILD/bench.log"; status=1; }

echo
stamp "summary"
grep -E "^[0-9]+ passed" "$BUILD/tests.log" || true
grep -E "FAIL" "$BUILD/tests.log" | head -20 || true
cat "$BUILD/bench.log"
exit $status
