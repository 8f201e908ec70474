#!/usr/bin/env node
// Builds the native addon with cmake-js (offline; CUDA auto-detected) and the
// TypeScript sources. Used by `npm install` and `npm run build`.
//   --native-only   skip TypeScript      --ts-only   skip the addon
// Environment: DETSEG3D_CUDA=OFF (no CUDA) or EMU (CPU emulator, tests only), DETSEG3D_BUILD_DIR (default build),
// DETSEG3D_DEBUG=1 (debug build), DETSEG3D_JOBS (parallel compile jobs).
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = new Set(process.argv.slice(2));

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
  if (r.error) {
    console.error(`detseg3d build: could not run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!args.has('--ts-only')) {
  const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const out = process.env.DETSEG3D_BUILD_DIR || 'build';
  const jobs = process.env.DETSEG3D_JOBS || String(availableParallelism());
  const argv = [cmakeJs, 'build', '--out', out, '--parallel', jobs, '--log-level', 'warn'];
  if (process.env.DETSEG3D_DEBUG === '1') argv.push('--debug');
  const cuda = (process.env.DETSEG3D_CUDA || '').toUpperCase();
  if (cuda === 'OFF' || cuda === '0' || cuda === 'FALSE') argv.push('--CDDETSEG3D_CUDA=OFF');
  // EMU: the CUDA kernels run on the CPU emulator (native/emu; a checking tool, slow).
  else if (cuda === 'EMU') argv.push('--CDDETSEG3D_CUDA=OFF', '--CDDETSEG3D_CUDA_EMU=ON');
  else argv.push('--CDDETSEG3D_CUDA=ON');
  run(process.execPath, argv);
}

if (!args.has('--native-only')) {
  const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
  run(process.execPath, [tsc, '-p', 'tsconfig.json']);
}
