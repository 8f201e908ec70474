// Runs the GPU halves of the native tests (CUDA-versus-CPU parity of every
// kernel, the GPU training steps, NCCL data parallel over two emulated GPUs
// with the single-process NCCL stand-in) on the CPU emulator of native/emu: the core
// is built with -DDETSEG3D_CUDA_EMU=ON, so the real kernel source executes
// without a GPU, with checked device and shared memory (about 2 minutes of
// tests on 2 cores after the build). `npm run test:emu` runs the TypeScript
// GPU training test on it too. Skips when CMake is not available.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const hasCmake = spawnSync('cmake', ['--version']).status === 0;
const ninja = spawnSync('ninja', ['--version']).status === 0;

describe.skipIf(!hasCmake)('CUDA kernels on the CPU emulator (skipped: cmake not found)', () => {
  it('detseg3d_native_tests passes with the emulated GPU', () => {
    const dir = join(root, 'build-native-emu');
    const gen = ninja ? ['-G', 'Ninja'] : [];
    const cfg = spawnSync('cmake', ['-S', root, '-B', dir, ...gen, '-DDETSEG3D_CUDA_EMU=ON', '-DDETSEG3D_GLOO=OFF', '-DCMAKE_BUILD_TYPE=Release'], {
      encoding: 'utf8',
    });
    expect(cfg.status, cfg.stderr).toBe(0);
    const build = spawnSync('cmake', ['--build', dir, '--target', 'detseg3d_native_tests', '--parallel'], { encoding: 'utf8' });
    expect(build.status, build.stdout.slice(-3000) + build.stderr.slice(-3000)).toBe(0);
    const run = spawnSync(join(dir, 'detseg3d_native_tests'), [], {
      encoding: 'utf8',
      timeout: 1_200_000,
      // Two emulated GPUs and the NCCL stand-in, so the multi-GPU reducer test runs too.
      env: { ...process.env, DETSEG3D_EMU_DEVICES: '2', DETSEG3D_NCCL_PATH: join(dir, 'libnccl_emu.so') },
    });
    const out = run.stdout ?? '';
    const summary = out.trim().split('\n').pop() ?? '';
    expect(run.status, out.slice(-4000) + (run.stderr ?? '').slice(-2000)).toBe(0);
    expect(summary).toMatch(/^\d+ passed, 0 failed/);
    // The emulated GPU is present, so the parity tests compared GPU with CPU results.
    expect(out).toMatch(/PASS +parity_conv_forward/);
    expect(out).toMatch(/ gpu +max_abs/);
    expect(out).toMatch(/PASS +cuda_amp_training_steps/);
    expect(out).toMatch(/PASS +reducer_nccl_two_ranks/);
  }, 2_400_000);
});
