#!/usr/bin/env node
// `npm run test:emu`: every GPU test on the CPU emulator of native/emu (about
// 5 minutes of tests on 2 cores, plus the builds):
//   1. detseg3d_native_tests built with -DDETSEG3D_CUDA_EMU=ON, as npm test runs it;
//   2. the addon built the same way (DETSEG3D_CUDA=EMU, in build-emu), and the
//      TypeScript GPU training test run against it.
// Arguments are passed to detseg3d_native_tests (a test-name filter).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env };
delete env.DETSEG3D_PARITY_QUICK;

function run(cmd, argv, extraEnv = {}) {
  console.log(`test:emu: ${cmd} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env: { ...env, ...extraEnv } });
  if (r.error || r.status !== 0) {
    console.error(`test:emu: ${cmd} failed${r.error ? `: ${r.error.message}` : ` (exit ${r.status})`}`);
    process.exit(1);
  }
}

const dir = join(root, 'build-native-emu');
const ninja = spawnSync('ninja', ['--version']).status === 0;
run('cmake', ['-S', root, '-B', dir, ...(ninja ? ['-G', 'Ninja'] : []), '-DDETSEG3D_CUDA_EMU=ON', '-DDETSEG3D_GLOO=OFF', '-DCMAKE_BUILD_TYPE=Release']);
run('cmake', ['--build', dir, '--target', 'detseg3d_native_tests', '--parallel']);
// Two emulated GPUs and the NCCL stand-in (ranks as threads) for the data-parallel tests.
run(join(dir, 'detseg3d_native_tests'), process.argv.slice(2), {
  DETSEG3D_EMU_DEVICES: '2',
  DETSEG3D_NCCL_PATH: join(dir, 'libnccl_emu.so'),
});
if (process.argv.length > 2) process.exit(0);
run(process.execPath, [join(root, 'scripts', 'build.js'), '--native-only'], { DETSEG3D_CUDA: 'EMU', DETSEG3D_BUILD_DIR: 'build-emu' });
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
run(process.execPath, [vitest, 'run', 'test/train/gpu_training.test.ts'], {
  DETSEG3D_ADDON: join(root, 'build-emu', 'Release', 'detseg3d.node'),
});
