// Data-parallel training with 2 CPU processes (Gloo): the trainer end to end
// (identical weights on both ranks, rank 0 alone writes), the gradient the
// model's backward hook all-reduces (the mean of the two single-process
// gradients), sharded validation (= one-process validation of the same
// checkpoint), --sync_bn (SyncBatchNorm through the trainer; a note with one
// process), and a stop requested on one rank (both stop at the same step;
// resuming with another world size restarts that epoch). Skips, with the
// reason, without Gloo or the compiled library (the ranks import dist/).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setNumThreads } from '../../src/info.js';
import { writeCubes } from './cubes.js';
import { RetinaNet } from '../../src/model/retinanet.js';
import { Tensor } from '../../src/tensor.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.js';
import { openRunData } from '../../src/train/data.js';
import { readJsonl } from '../../src/train/jsonl_log.js';
import { modelConfigOf, train, type TrainEvent } from '../../src/train/trainer.js';
import { validate } from '../../src/train/validate.js';
import { tinyTrainConfig } from './tiny_config.js';
import { childEnv, freePort, jsRoot, multiProcessSkipReason, root as repoRoot } from '../dist/helpers.js';
// @ts-expect-error plain ESM fixture shared with the rank processes
import * as common from '../dist/fixtures/ddp_common.mjs';

const worker = join(repoRoot, 'test', 'dist', 'fixtures', 'train_worker.mjs');
const skip =
  multiProcessSkipReason() ||
  (existsSync(join(jsRoot, 'train', 'trainer.js')) ? '' : `compiled trainer missing (${jsRoot}/train/trainer.js): run \`npm run build\``);
if (skip) console.warn(`test/train/ddp: skipped: ${skip}`);

let root = '';

// 10 cases, val_fraction 0.3: 7 training cases (2 ranks: 4 steps each, one case padded) and 3 validation cases (2 + 1).
function tinyConfig(out: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> {
  return tinyTrainConfig(root, out, { valFraction: 0.3, epochs: 2, valInterval: 2, lr: 0.01, ...extra });
}

interface RankRun {
  rank: number;
  code: number | null;
  stderr: string;
  result?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Starts 2 ranks of the worker (as mpirun would: environment variables only) and waits for both. */
async function runRanks(args: string[]): Promise<RankRun[]> {
  const port = await freePort();
  const one = (rank: number) =>
    new Promise<RankRun>((res) => {
      const proc = spawn(process.execPath, [worker, ...args], {
        env: childEnv({ RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), DETSEG3D_DIST_TIMEOUT: '60' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d) => (stdout += d));
      proc.stderr.on('data', (d) => (stderr += d));
      proc.on('close', (code) => {
        const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
        res({ rank, code, stderr, result: line ? JSON.parse(line.slice(7)) : undefined });
      });
    });
  const runs = await Promise.all([one(0), one(1)]);
  for (const r of runs) if (r.code !== 0 || !r.result) throw new Error(`rank ${r.rank} failed (code ${r.code}):\n${r.stderr}`);
  return runs;
}

beforeAll(async () => {
  setNumThreads(1); // the in-process references must compute exactly like the 1-thread ranks
  root = mkdtempSync(join(tmpdir(), 'detseg3d-ddp-'));
  await writeCubes(join(root, 'data'), 10, 11, 1);
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('epoch shards of the training loader', () => {
  it('equal lengths; rank r takes positions r, r + W, ... of the epoch order padded with its first entries', async () => {
    const data = await openRunData(resolveTrainConfig(tinyConfig(join(root, 'unused'))));
    try {
      const loader = data.train;
      expect(loader.batchesPerEpoch).toBe(7);
      for (const epoch of [0, 5]) {
        const order = loader.epochOrder(epoch);
        expect([...order].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
        expect(loader.epochOrder(epoch, { rank: 0, worldSize: 1 })).toEqual(order);
        // W = 2: 8 positions, the 8th repeats order[0]. W = 3: 9 positions, repeating order[0], order[1].
        const [o0, o1, o2, o3, o4, o5, o6] = order;
        expect(loader.epochOrder(epoch, { rank: 0, worldSize: 2 })).toEqual([o0, o2, o4, o6]);
        expect(loader.epochOrder(epoch, { rank: 1, worldSize: 2 })).toEqual([o1, o3, o5, o0]);
        expect(loader.epochOrder(epoch, { rank: 0, worldSize: 3 })).toEqual([o0, o3, o6]);
        expect(loader.epochOrder(epoch, { rank: 1, worldSize: 3 })).toEqual([o1, o4, o0]);
        expect(loader.epochOrder(epoch, { rank: 2, worldSize: 3 })).toEqual([o2, o5, o1]);
        expect(loader.batchesPerShard(3)).toBe(3);
      }
      expect(() => loader.epochOrder(0, { rank: 2, worldSize: 2 })).toThrow(/shard rank 2 is not in \[0, world size 2\)/);
    } finally {
      await data.close();
    }
  });
});

describe.skipIf(!!skip)('data-parallel training, 2 CPU processes', () => {
  it('trains to identical weights on both ranks; rank 0 alone writes checkpoints and logs', async () => {
    const out = join(root, 'run');
    const [r0, r1] = (await runRanks(['train', JSON.stringify(tinyConfig(out))])).map((r) => r.result);
    expect([r0.worldSize, r1.worldSize]).toEqual([2, 2]);
    expect([r0.epochs, r1.epochs]).toEqual([2, 2]);
    // 7 cases over 2 ranks: ceil(7 / 2) = 4 steps per epoch, reported by rank 0 only.
    expect(r0.steps).toEqual([[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [2, 3], [2, 4]]);
    expect(r1.steps).toEqual([]);
    // Same averaged gradients, same updates, rank 0's BatchNorm statistics: the same model everywhere,
    // and it is the one rank 0 saved.
    expect(r1.checksum).toBe(r0.checksum);
    const ck = loadCheckpoint(join(out, 'last'));
    expect(ck.epoch).toBe(2);
    expect(common.weightsChecksum(new Map([...ck.weights].map(([n, t]) => [n, t.data])))).toBe(r0.checksum);
    // The weights moved away from the initialisation.
    const init = RetinaNet.create(modelConfigOf(resolveTrainConfig(tinyConfig(out))));
    expect(common.weightsChecksum(init.getWeights())).not.toBe(r0.checksum);
    // One writer: every step logged once, one start, one TensorBoard file.
    const log = readJsonl(join(out, 'log.jsonl'));
    expect(log.filter((l) => l.event === 'start')).toHaveLength(1);
    expect(log.filter((l) => l.event === 'step').map((l) => [l.epoch, l.step])).toEqual(r0.steps);
    expect(log.filter((l) => l.event === 'validation')).toHaveLength(1);
    expect(readdirSync(join(out, 'tensorboard'))).toHaveLength(1);
    for (const f of ['last.safetensors', 'best_model.safetensors', 'config.json']) expect(readdirSync(out)).toContain(f);
    expect((ck.trainerState as { worldSize: number }).worldSize).toBe(2);
  });

  it("the model's backward hook all-reduces the mean of the two ranks' single-process gradients", async () => {
    const runs = (await runRanks(['grad'])).map((r) => r.result);
    // Reference in this process: rank 0's initial weights (seed 11), each rank's batch alone.
    const model = RetinaNet.create({ ...common.GRAD_MODEL, seed: 11 });
    const initial = common.weightsChecksum(model.getWeights());
    // Rank 1 built its model with seed 12: the broadcast gave it rank 0's weights.
    expect(runs.map((r) => r.initial)).toEqual([initial, initial]);
    expect(RetinaNet.create({ ...common.GRAD_MODEL, seed: 12 }).getWeights().get('classification_head.conv.0.weight')).not.toEqual(
      model.getWeights().get('classification_head.conv.0.weight'),
    );
    // Tiny buckets: several all-reduces, launched as modules finish during backward.
    expect(runs[0].buckets).toBeGreaterThan(2);
    const single = async (rank: number) => {
      model.zeroGrad();
      await common.gradStep({ Tensor }, model, rank);
      return model.parameters().map((p) => model.grad(p.name).toFloat32());
    };
    const g0 = await single(0);
    const g1 = await single(1);
    let differ = 0;
    for (let step = 0; step < 2; step++) {
      for (const r of runs) {
        const got: number[][] = r.grads[step];
        expect(got.length).toBe(g0.length);
        for (let p = 0; p < g0.length; p++) {
          for (let k = 0; k < g0[p].length; k++) {
            // Gloo: a float32 sum of the two gradients, then * 0.5 (exact).
            const want = Math.fround(Math.fround(g0[p][k] + g1[p][k]) * 0.5);
            if (got[p][k] !== want)
              throw new Error(`rank ${r.rank} step ${step} parameter ${model.parameters()[p].name}[${k}]: ${got[p][k]} vs ${want}`);
            differ = Math.max(differ, Math.abs(g0[p][k] - g1[p][k]));
          }
        }
      }
    }
    // The two ranks' gradients really differ (the average is not one of them).
    expect(differ).toBeGreaterThan(1e-4);
  });

  it('sharded validation of a checkpoint gives the metrics and predictions of one-process validation', async () => {
    const out = join(root, 'run');
    const ckPath = join(out, 'last');
    const cfgPartial = tinyConfig(out);
    const runs = (await runRanks(['validate', JSON.stringify(cfgPartial), ckPath])).map((r) => r.result);
    const lib = { resolveTrainConfig, RetinaNet, modelConfigOf, loadCheckpoint, openRunData, validate };
    const one = await common.validateCheckpoint(lib, cfgPartial, ckPath, null);
    expect(one.caseIds).toHaveLength(3);
    for (const r of runs) {
      expect(r.caseIds).toEqual(one.caseIds);
      expect(r.predictions).toEqual(one.predictions);
      // NaN-free metrics compare exactly; non-finite ones (if any) must be non-finite on both.
      for (const [k, v] of Object.entries(one.metrics as Record<string, number>))
        expect(Number.isFinite(v) ? r.metrics[k] : String(r.metrics[k]), k).toBe(Number.isFinite(v) ? v : String(v));
      expect(r.headline).toBe(one.headline);
    }
    expect(one.predictions.some((p: { scores: number[] }) => p.scores.length > 0)).toBe(true);
  });

  it('--sync_bn: the trainer synchronises BatchNorm (identical ranks, other weights than per-rank BatchNorm); ignored with a note for 1 process', async () => {
    const cfg = (name: string, syncBn: boolean) => tinyConfig(join(root, name), { epochs: 1, valInterval: 100, syncBn });
    const [s0, s1] = (await runRanks(['train', JSON.stringify(cfg('sync', true))])).map((r) => r.result);
    expect(s1.checksum).toBe(s0.checksum);
    const [p0] = (await runRanks(['train', JSON.stringify(cfg('persync', false))])).map((r) => r.result);
    // Same data, seed and steps: only the BatchNorm statistics (2 ranks' patches vs each rank's own) differ.
    expect(s0.checksum).not.toBe(p0.checksum);
    const events: TrainEvent[] = [];
    const one = await train({ ...cfg('one', true), epochs: 1 }, { onProgress: (e) => events.push(e) });
    expect(one.worldSize).toBe(1);
    expect(events.some((e) => e.kind === 'info' && /--sync_bn has no effect with one process/.test(e.message ?? ''))).toBe(true);
  });

  it('a stop on one rank stops both after the same step; resuming with 1 process restarts that epoch', async () => {
    const out = join(root, 'stopped');
    const cfg = tinyConfig(out, { valInterval: 100 });
    // Rank 1's signal reads aborted from its 7th look: epoch 1 = looks 1-4 (steps) + 5 (epoch end), epoch 2 step 1 = 6, step 2 = 7.
    const [r0, r1] = (await runRanks(['train', JSON.stringify(cfg), JSON.stringify({ rank: 1, reads: 6 })])).map((r) => r.result);
    expect([r0.stopped, r1.stopped]).toEqual([true, true]);
    expect(r0.steps.at(-1)).toEqual([2, 2]);
    expect(r1.checksum).toBe(r0.checksum);
    const ck = loadCheckpoint(join(out, 'last'));
    expect(ck.trainerState).toMatchObject({ epoch: 1, stepInEpoch: 2, worldSize: 2 });
    const events: TrainEvent[] = [];
    const r = await train({ ...cfg, resume: 'last' }, { onProgress: (e) => events.push(e) });
    expect(r.epochsCompleted).toBe(2);
    expect(events.find((e) => e.kind === 'info')?.message).toMatch(/stopped in epoch 2 with 2 process\(es\), now 1: that epoch restarts/);
    // One process: all 7 cases of epoch 2 from the start.
    expect(events.filter((e) => e.kind === 'step').map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});
