#!/usr/bin/env bash
# GPU check for a fresh machine with CUDA, cmake and ninja (no Node needed):
#   1. configures and builds the standalone targets (detseg3d_native_tests,
#      detseg3d_bench) for sm_90 (override: DETSEG3D_CUDA_ARCHS="80;90");
#   2. runs the native tests, including the CPU <-> GPU parity harness;
#   3. runs the GPU op benchmarks, then the conv3d kernel benchmark (against cuDNN when
#      libcudnn.so.9 is found, see native/bench/cudnn_conv.h), then the seed network's
#      training step (fp16, bf16, fp32);
#   4. runs compute-sanitizer (memcheck, then racecheck) on a short subset when available,
#      within SANITIZER_BUDGET seconds (default 180); and prints the tables last.
# Usage: benchmarks/gpu/check.sh [build-dir]      (default build-gpu-check)
# Environment: DETSEG3D_CUDA_ARCHS, JOBS (default: all cores), SKIP_SANITIZER=1, BENCH_ARGS (e.g. quick),
#   CONV_BENCH_ARGS (default quick: 2 timed calls per pass; e.g. "f16" for one dtype), DETSEG3D_CUDNN_PATH,
#   TRAIN_BENCH_ARGS (e.g. "--steps 5").
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

stamp "op benchmarks"
"$BUILD/detseg3d_bench" cuda_ops ${BENCH_ARGS:-} >"$BUILD/bench.log" 2>&1 || { cat "$BUILD/bench.log"; status=1; }

stamp "conv3d kernel benchmark (vs cuDNN)"
# cuDNN (dlopen'ed by the benchmark) may need the CUDA 12 libraries of the
# PyTorch environment next to it (cudart, nvrtc, cublas): add them to the search path.
conv_ld="${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3.12/site-packages/nvidia/*/lib; do
  [ -d "$d" ] && conv_ld="$conv_ld:$d"
done
LD_LIBRARY_PATH="$conv_ld" timeout 240 "$BUILD/detseg3d_bench" conv3d_cuda ${CONV_BENCH_ARGS:-quick} >"$BUILD/bench_conv.log" 2>&1 \
  || { cat "$BUILD/bench_conv.log"; echo "check.sh: conv3d benchmark failed or timed out"; status=1; }

stamp "training step benchmark (seed network, batch 4 x 192x192x80)"
: >"$BUILD/bench_train.log"
for p in fp16 bf16 fp32; do
  timeout 120 "$BUILD/detseg3d_bench" train_step_cuda --precision "$p" ${TRAIN_BENCH_ARGS:-} >>"$BUILD/bench_train.log" 2>&1 \
    || { cat "$BUILD/bench_train.log"; echo "check.sh: train_step_cuda --precision $p failed or timed out"; status=1; }
done

if [ "${SKIP_SANITIZER:-0}" != "1" ] && command -v compute-sanitizer >/dev/null 2>&1; then
  # memcheck: out-of-bounds / misaligned accesses in every kernel family;
  # racecheck: shared-memory hazards in the block reductions.
  # Last and bounded: on a lent GPU the device time is short, so the
  # sanitizer gets SANITIZER_BUDGET seconds in all (default 180) after the
  # tests and benchmarks have produced their numbers.
  SAN_END=$(( $(date +%s) + ${SANITIZER_BUDGET:-180} ))
  for tool in memcheck racecheck; do
    stamp "compute-sanitizer --tool $tool (quick parity subset)"
    # parity_conv: conv3d (tensor-core cp.async / ldmatrix pipelines, stem, generic).
    tests="cuda_core parity_basic parity_batchnorm parity_groupnorm parity_pool parity_loss parity_detection parity_atss parity_conv"
    # racecheck is slow on the shared-memory-heavy conv kernels: only the candidates test,
    # which runs every tensor-core tile config (fwd, dgrad, wgrad) and the generic kernels once.
    [ "$tool" = racecheck ] && tests="parity_basic parity_batchnorm parity_groupnorm parity_detection parity_conv_candidates"
    # Small sizes only (DETSEG3D_PARITY_QUICK); each filter selects one test.
    for t in $tests; do
      left=$(( SAN_END - $(date +%s) ))
      if [ "$left" -lt 20 ]; then
        echo "check.sh: sanitizer budget (SANITIZER_BUDGET=${SANITIZER_BUDGET:-180}s) used up; skipped $tool $t"
        continue
      fi
      limit=90
      case "$t" in parity_conv*) limit=150 ;; esac
      [ "$limit" -gt "$left" ] && limit=$left
      DETSEG3D_PARITY_QUICK=1 timeout "$limit" compute-sanitizer --tool "$tool" --error-exitcode 3 \
        --print-limit 20 "$BUILD/detseg3d_native_tests" "$t" >"$BUILD/sanitizer-$tool-$t.log" 2>&1
      rc=$?
      if [ "$rc" -eq 124 ]; then
        echo "check.sh: compute-sanitizer $tool on $t did not finish within ${limit}s (not a failure)"
      elif [ "$rc" -ne 0 ]; then
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

echo
stamp "summary"
grep -E "^[0-9]+ passed" "$BUILD/tests.log" || true
grep -E "FAIL" "$BUILD/tests.log" | head -20 || true
cat "$BUILD/bench.log"
echo
cat "$BUILD/bench_conv.log"
echo
cat "$BUILD/bench_train.log"
exit $status
