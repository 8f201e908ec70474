// Builds and runs the standalone C++ checks (detseg3d_native_tests: GEMM and
// conv kernels against naive loops, core self-checks, detection checks, the
// caching-allocator logic, the loss scaler, and the CPU self-checks of the
// GPU parity harness, whose GPU parts report "skipped" without a GPU). Skips
// when CMake is not available.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const hasCmake = spawnSync('cmake', ['--version']).status === 0;
const ninja = spawnSync('ninja', ['--version']).status === 0;

describe.skipIf(!hasCmake)('native C++ checks (skipped: cmake not found)', () => {
  it('detseg3d_native_tests passes', () => {
    const dir = join(root, 'build-native-tests');
    const gen = ninja ? ['-G', 'Ninja'] : [];
    const cfg = spawnSync('cmake', ['-S', root, '-B', dir, ...gen, '-DDETSEG3D_CUDA=OFF', '-DDETSEG3D_GLOO=OFF', '-DCMAKE_BUILD_TYPE=Release'], {
      encoding: 'utf8',
    });
    expect(cfg.status, cfg.stderr).toBe(0);
    const build = spawnSync('cmake', ['--build', dir, '--target', 'detseg3d_native_tests', '--parallel'], { encoding: 'utf8' });
    expect(build.status, build.stdout.slice(-3000) + build.stderr.slice(-3000)).toBe(0);
    const run = spawnSync(join(dir, 'detseg3d_native_tests'), [], { encoding: 'utf8', timeout: 300_000 });
    const summary = run.stdout.trim().split('\n').pop() ?? '';
    expect(run.status, run.stdout.slice(-4000)).toBe(0);
    expect(summary).toMatch(/^\d+ passed, 0 failed/);
  }, 900_000);
});
