// Builds and runs the standalone C++ checks (detseg3d_native_tests: GEMM and
// conv kernels against naive loops, core self-checks, detection checks, the
// caching-allocator logic, the loss scaler, and the CPU self-checks of the
// GPU parity harness, whose GPU parts report "skipped" without a GPU). Skips
// when CMake is not available.
import { describe, it } from 'vitest';
import { buildAndRunNativeTests, hasCmake } from './native_build.js';

describe.skipIf(!hasCmake)('native C++ checks (skipped: cmake not found)', () => {
  it('detseg3d_native_tests passes', () => {
    buildAndRunNativeTests('build-native-tests', ['-DDETSEG3D_CUDA=OFF'], { timeoutMs: 300_000 });
  }, 900_000);
});
