// Runs the GPU halves of the native tests (CUDA-versus-CPU parity of every
// kernel, the GPU training steps, NCCL data parallel over two emulated GPUs
// with the single-process NCCL stand-in) on the CPU emulator of native/emu: the core
// is built with -DDETSEG3D_CUDA_EMU=ON, so the real kernel source executes
// without a GPU, with checked device and shared memory (about 2 minutes of
// tests on 2 cores after the build). `npm run test:emu` runs the TypeScript
// GPU training test on it too. Skips when CMake is not available.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildAndRunNativeTests, hasCmake, root } from './native_build.js';

describe.skipIf(!hasCmake)('CUDA kernels on the CPU emulator (skipped: cmake not found)', () => {
  it('detseg3d_native_tests passes with the emulated GPU', () => {
    // Two emulated GPUs and the NCCL stand-in, so the multi-GPU reducer test runs too.
    const out = buildAndRunNativeTests('build-native-emu', ['-DDETSEG3D_CUDA_EMU=ON'], {
      timeoutMs: 1_200_000,
      env: { DETSEG3D_EMU_DEVICES: '2', DETSEG3D_NCCL_PATH: join(root, 'build-native-emu', 'libnccl_emu.so') },
    });
    // The emulated GPU is present, so the parity tests compared GPU with CPU results.
    expect(out).toMatch(/PASS +parity_conv_forward/);
    expect(out).toMatch(/ gpu +max_abs/);
    expect(out).toMatch(/PASS +cuda_amp_training_steps/);
    expect(out).toMatch(/PASS +reducer_nccl_two_ranks/);
  }, 2_400_000);
});
