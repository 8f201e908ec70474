// Shared helpers of the multi-process tests: where the compiled library is
// (worker processes are plain Node and import dist/), whether Gloo is built
// in, and spawning ranks the way mpirun would (environment variables only).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distInfo } from '../../src/dist/process_group.js';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const workerScript = join(root, 'test', 'dist', 'fixtures', 'worker.mjs');

/** The compiled JS the workers import: $DETSEG3D_TEST_JS_ROOT or the package's dist/. */
export const jsRoot = resolve(process.env.DETSEG3D_TEST_JS_ROOT ?? join(root, 'dist'));

/** Why the multi-process tests cannot run here, or '' when they can. */
export function multiProcessSkipReason(): string {
  if (!distInfo().glooCompiled)
    return 'detseg3d was built without Gloo: install libgloo-dev and rebuild to run the multi-process tests';
  for (const f of ['dist/process_group.js', 'dist/launcher.js', 'tensor.js', 'ops.js'])
    if (!existsSync(join(jsRoot, f)))
      return `compiled library missing (${join(jsRoot, f)}): run \`npm run build\` (or set DETSEG3D_TEST_JS_ROOT)`;
  return '';
}

/** Environment for worker processes: the addon this test process uses and the compiled JS. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DETSEG3D_TEST_JS_ROOT: jsRoot, DETSEG3D_NUM_THREADS: '1' };
  if (!env.DETSEG3D_ADDON && env.DETSEG3D_BUILD_DIR) {
    for (const cfg of ['Release', 'Debug']) {
      const p = join(resolve(root, env.DETSEG3D_BUILD_DIR), cfg, 'detseg3d.node');
      if (existsSync(p)) {
        env.DETSEG3D_ADDON = p;
        break;
      }
    }
  }
  for (const k of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'OMPI_COMM_WORLD_RANK', 'SLURM_PROCID', 'DETSEG3D_AGENT_STORE'])
    delete env[k];
  return { ...env, ...extra };
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

export interface RankRun {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Parsed `RESULT {...}` line, if any. */
  result?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Milliseconds from spawn to exit. */
  ms: number;
}

/** A spawned rank: its process, and a promise of its outcome. */
export function spawnRank(rank: number, worldSize: number, port: number, args: string[], extra: Record<string, string> = {}) {
  const t0 = Date.now();
  const proc = spawn(process.execPath, [workerScript, ...args], {
    env: childEnv({ RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), ...extra }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<RankRun>((res) => {
    proc.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      let result;
      try {
        result = line ? JSON.parse(line.slice(7)) : undefined;
      } catch (e) {
        stderr += `\n(test helper: unreadable RESULT line: ${(e as Error).message})`;
      }
      res({ rank, code, signal, stdout, stderr, result, ms: Date.now() - t0 });
    });
  });
  return { proc, done, output: () => stdout };
}

/** Runs `worldSize` ranks of the worker in `mode` to completion. */
export async function runRanks(mode: string, worldSize: number, extra: Record<string, string> = {}): Promise<RankRun[]> {
  const port = await freePort();
  const ranks = Array.from({ length: worldSize }, (_, r) => spawnRank(r, worldSize, port, [mode], extra));
  return Promise.all(ranks.map((r) => r.done));
}

/** Resolves when `pred(output)` holds, polling every 20 ms. */
export async function until(pred: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
