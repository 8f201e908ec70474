// SyncBatchNorm with 2 CPU processes (Gloo): 3 SGD steps of a tiny float64
// BatchNorm RetinaNet (ResNet10, reduced widths) on 2 ranks x 2 samples with
// SyncBatchNorm equal 3 steps in one process on the 4 samples together
// (parameters, running statistics); the default per-process BatchNorm does
// not (its statistics are each rank's 2 samples'), which shows the comparison
// can fail. The gradient hook reports the backbone block by block here, so
// SyncBatchNorm's collectives interleave with bucket all-reduces on the
// reducer's thread. The float64 forward/backward of the layer itself against
// BatchNorm on the concatenated batch (3 ranks, unequal batches) is checked
// natively: native/tests/test_dist_syncbn.cpp.
import { describe, expect, it } from 'vitest';
import { RetinaNet } from '../../src/model/retinanet.js';
import { SGD } from '../../src/model/sgd.js';
import { setNumThreads } from '../../src/info.js';
import { Tensor } from '../../src/tensor.js';
// @ts-expect-error plain ESM fixture shared with the rank processes
import * as common from './fixtures/syncbn_common.mjs';
import { childEnv, freePort, multiProcessSkipReason, root } from './helpers.js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const skip = multiProcessSkipReason();
if (skip) console.warn(`test/dist/syncbn: skipped: ${skip}`);
const worker = join(root, 'test', 'dist', 'fixtures', 'syncbn_worker.mjs');

type Weights = Record<string, number[]>;
interface RankResult {
  rank: number;
  sync: { weights: Weights; syncedLayers: number; buckets: number };
  local: { weights: Weights; syncedLayers: number; buckets: number };
}

async function runRanks(): Promise<RankResult[]> {
  const port = await freePort();
  const one = (rank: number) =>
    new Promise<RankResult>((res, rej) => {
      const proc = spawn(process.execPath, [worker], {
        env: childEnv({ RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d) => (stdout += d));
      proc.stderr.on('data', (d) => (stderr += d));
      proc.on('close', (code) => {
        const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
        if (code !== 0 || !line) rej(new Error(`rank ${rank} failed (code ${code}):\n${stderr}`));
        else res(JSON.parse(line.slice(7)) as RankResult);
      });
    });
  return Promise.all([one(0), one(1)]);
}

const concat = (a: Float64Array, b: Float64Array) => {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

/** Largest |a - b| / max(1, |b|) over every entry. */
function maxRelDiff(a: Weights, b: Weights): { diff: number; name: string } {
  let worst = { diff: 0, name: '' };
  for (const [name, want] of Object.entries(b)) {
    const got = a[name];
    expect(got, name).toBeDefined();
    expect(got.length, name).toBe(want.length);
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
      if (!(d <= worst.diff)) worst = { diff: d, name: `${name}[${i}]` };
    }
  }
  return worst;
}

describe.skipIf(!!skip)('SyncBatchNorm, 2 processes', () => {
  it('2-rank training with SyncBatchNorm equals 1-process training on the combined batch; per-rank BatchNorm does not', async () => {
    const runs = await runRanks();
    setNumThreads(1);
    // Reference: rank 0's initial weights (seed 11), both ranks' samples in one batch of 4. The 2 ranks
    // average their gradients, so the single process back-propagates half of each rank's output gradient.
    const model = RetinaNet.create({ ...common.SYNC_MODEL, seed: 11 });
    const want: Weights = await common.trainSteps(
      { Tensor, SGD },
      model,
      (step: number) => concat(common.input(0, step), common.input(1, step)),
      (step: number, shape: number[], salt: number) => {
        const half = [shape[0] / 2, ...shape.slice(1)];
        return concat(common.outGrad(0, step, half, salt), common.outGrad(1, step, half, salt)).map((v) => v * 0.5);
      },
      async () => {},
    );
    const [r0, r1] = runs;
    // Stem bn1, layer1.0.bn1/bn2, layer2.0.bn1/bn2/downsample.1 (returned layers 1, 2 build layer1..2).
    expect([r0.sync.syncedLayers, r1.sync.syncedLayers]).toEqual([6, 6]);
    expect([r0.local.syncedLayers, r1.local.syncedLayers]).toEqual([0, 0]);
    // Tiny buckets: several all-reduces, interleaved with SyncBatchNorm's backward collectives.
    expect(r0.sync.buckets).toBeGreaterThan(4);
    // Same global statistics and averaged gradients on both ranks, bit for bit.
    expect(r1.sync.weights).toEqual(r0.sync.weights);
    // Against one process: only float64 summation order differs.
    const sync = maxRelDiff(r0.sync.weights, want);
    expect(sync.diff, sync.name).toBeLessThan(1e-11);
    // The weights moved, and the running statistics too.
    const init = RetinaNet.create({ ...common.SYNC_MODEL, seed: 11 });
    const w0 = [...init.getTensor('feature_extractor.body.layer1.0.conv1.weight').toArray()];
    expect(Math.max(...w0.map((v, i) => Math.abs(v - want['feature_extractor.body.layer1.0.conv1.weight'][i])))).toBeGreaterThan(1e-4);
    expect(want['feature_extractor.body.bn1.running_mean'].some((v) => Math.abs(v) > 1e-3)).toBe(true);
    // Per-process BatchNorm (the default) normalises each rank's 2 samples alone: far from the reference.
    const local = maxRelDiff(r0.local.weights, want);
    expect(local.diff, local.name).toBeGreaterThan(1e-5);
  }, 240_000);
});
