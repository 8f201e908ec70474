// Gloo with 2 CPU processes on this machine: collectives against direct
// computation, the bucketed reducer against direct sums, and 2-rank DDP
// training against 1-process training on the combined batch. Skips (with the
// reason) when Gloo is not built in or the compiled library is missing.
import { describe, expect, it } from 'vitest';
import { conv3d, conv3dBackward } from '../../src/ops.js';
import { Tensor } from '../../src/tensor.js';
// @ts-expect-error plain ESM fixture shared with the worker processes
import * as cases from './fixtures/cases.mjs';
import { readDistEnv } from '../../src/dist/env.js';
import { distInfo, initProcessGroup } from '../../src/dist/process_group.js';
import { freePort, multiProcessSkipReason, runRanks, type RankRun } from './helpers.js';

const skip = multiProcessSkipReason();
if (skip) console.warn(`test/dist/gloo: skipped: ${skip}`);

function expectClose(actual: number[], expected: number[], rel: number) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = rel * Math.max(1, Math.abs(expected[i]));
    if (Math.abs(actual[i] - expected[i]) > tol)
      throw new Error(`element ${i}: ${actual[i]} vs expected ${expected[i]} (tolerance ${tol})`);
  }
}

function ok(runs: RankRun[]) {
  for (const r of runs) {
    if (r.code !== 0 || !r.result) throw new Error(`rank ${r.rank} failed (code ${r.code}, ${r.signal}):\n${r.stderr}`);
  }
  return runs.map((r) => r.result);
}

describe.skipIf(!!skip)('gloo, 2 processes', () => {
  it('allReduce sum/avg/max, broadcast, allGather and the AMP overflow vote equal the direct computation', async () => {
    const res = ok(await runRanks('collectives', 2));
    const a = [cases.values(1001, 0, 1), cases.values(1001, 1, 1)];
    const b = [cases.values(777, 0, 2), cases.values(777, 1, 2)];
    // float32: each rank rounds its input to float32; the sum of two float32 values is rounded once more.
    const sum32 = a[0].map((v: number, i: number) => Math.fround(Math.fround(v) + Math.fround(a[1][i])));
    const sum64 = b[0].map((v: number, i: number) => v + b[1][i]);
    for (const r of res) {
      expectClose(r.sum32, sum32, 1e-7);
      expectClose(r.sum64, sum64, 1e-14);
      expectClose(r.avg32, sum32.map((v: number) => v / 2), 1e-7);
      expectClose(r.avg64, sum64.map((v: number) => v / 2), 1e-14);
      // max over ranks of [r + 1, -r, 7] for r = 0, 1.
      expect(r.max).toEqual([2, 0, 7]);
      // Broadcast from root 1: everyone ends with rank 1's values.
      expectClose(r.bcast, cases.values(5, 1, 3), 0);
      expect(r.gathered).toEqual([{ rank: 0, text: '' }, { rank: 1, text: 'xxx' }]);
      // AMP overflow flag: set on rank 1 only, seen by both; unset everywhere, seen by none.
      expect(r.anyInf).toEqual([true, false]);
    }
  });

  it('bucketed reducer: many odd-sized float32/float64 gradients marked in different orders equal the direct sum', async () => {
    const res = ok(await runRanks('reducer', 2));
    const specs: { n: number; dtype: string }[] = cases.reducerSpecs();
    // Bucket layout: reverse parameter order, one dtype per bucket, a bucket closes once it holds >= 3000 bytes.
    const buckets: number[][] = res[0].buckets;
    expect(res[1].buckets).toEqual(buckets);
    expect(buckets.flat()).toEqual(specs.map((_, i) => specs.length - 1 - i));
    expect(buckets.length).toBeGreaterThan(10);
    const bytes = (i: number) => specs[i].n * (specs[i].dtype === 'float64' ? 8 : 4);
    for (const bk of buckets) {
      expect(new Set(bk.map((i) => specs[i].dtype)).size).toBe(1);
      expect(bk.slice(0, -1).reduce((s, i) => s + bytes(i), 0)).toBeLessThan(3000);
    }
    for (let step = 0; step < 2; step++) {
      specs.forEach((s, i) => {
        const v0 = cases.values(s.n, 0, 100 * step + i);
        const v1 = cases.values(s.n, 1, 100 * step + i);
        const want =
          s.dtype === 'float64'
            ? v0.map((v: number, k: number) => v + v1[k])
            : v0.map((v: number, k: number) => Math.fround(Math.fround(v) + Math.fround(v1[k])));
        for (const r of res) expectClose(r.steps[step][i], want, s.dtype === 'float64' ? 1e-14 : 1e-7);
      });
    }
  });

  it('averaged gradients of 2 shards equal the gradients on their union; 2-rank training equals 1-process training on the combined batch', async () => {
    const res = ok(await runRanks('train', 2));
    // Reference: the same 3 SGD steps in this process on all 4 samples, gradients used as they are.
    const history: Float64Array[][] = [];
    const identity = {
      store: [] as Float64Array[],
      ready(i: number, g: Tensor) {
        this.store[i] = g.toArray() as Float64Array;
      },
      async finish() {
        history.push([...this.store]);
        return this.store;
      },
    };
    const want: number[][] = await cases.trainSteps({ Tensor, conv3d, conv3dBackward }, [0, 1, 2, 3], 3, identity);
    // Step 1: the all-reduced (averaged) gradients of the two shards equal the gradients on the union.
    for (let p = 0; p < 4; p++) for (const r of res) expectClose(r.firstGrads[p], [...history[0][p]], 1e-12);
    // Both ranks hold bit-identical parameters (same reduced gradients).
    expect(res[1].params).toEqual(res[0].params);
    // Against one process: only the order of float64 summation differs.
    for (let p = 0; p < want.length; p++) expectClose(res[0].params[p], want[p], 1e-11);
    // The parameters moved (the comparison is not between two untouched initialisations).
    const init = cases.initialParams();
    expect(Math.max(...want[0].map((v, k) => Math.abs(v - init[0][k])))).toBeGreaterThan(1e-3);
    // Tiny buckets: the reducer ran more than one bucket.
    expect(res[0].buckets.length).toBeGreaterThan(1);
  });
});

describe.skipIf(!distInfo().glooCompiled)('gloo rendezvous', () => {
  it('a rank that never joins makes initProcessGroup fail after the timeout, naming it', async () => {
    const port = await freePort();
    const env = readDistEnv({ RANK: '0', WORLD_SIZE: '3', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
    await expect(initProcessGroup({ backend: 'gloo', env, timeoutMs: 400 })).rejects.toThrow(
      /barrier 'pg\d+\/init' timed out after 0.4 s on rank 0: rank\(s\) 1, 2 of 3 did not arrive/,
    );
  });
});
