// Builds the standalone C++ test executable (detseg3d_native_tests) in a CMake
// build folder of its own and runs it: shared by native.test.ts (CPU build)
// and native_emu.test.ts (CUDA emulator build).
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';

export const root = resolve(import.meta.dirname, '..');
export const hasCmake = spawnSync('cmake', ['--version']).status === 0;
const ninja = spawnSync('ninja', ['--version']).status === 0;

/** Configures `build` (relative to the repository) with `defines`, builds the tests, runs them; returns their stdout. */
export function buildAndRunNativeTests(build: string, defines: string[], run: { timeoutMs: number; env?: Record<string, string> }): string {
  const dir = join(root, build);
  const gen = ninja ? ['-G', 'Ninja'] : [];
  const cfg = spawnSync('cmake', ['-S', root, '-B', dir, ...gen, ...defines, '-DDETSEG3D_GLOO=OFF', '-DCMAKE_BUILD_TYPE=Release'], { encoding: 'utf8' });
  expect(cfg.status, cfg.stderr).toBe(0);
  const made = spawnSync('cmake', ['--build', dir, '--target', 'detseg3d_native_tests', '--parallel'], { encoding: 'utf8' });
  expect(made.status, made.stdout.slice(-3000) + made.stderr.slice(-3000)).toBe(0);
  const r = spawnSync(join(dir, 'detseg3d_native_tests'), [], { encoding: 'utf8', timeout: run.timeoutMs, env: { ...process.env, ...run.env } });
  const out = r.stdout ?? '';
  expect(r.status, out.slice(-4000) + (r.stderr ?? '').slice(-2000)).toBe(0);
  expect(out.trim().split('\n').pop() ?? '').toMatch(/^\d+ passed, 0 failed/);
  return out;
}
