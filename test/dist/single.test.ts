// One process: the process group and the reducer work without Gloo or a
// launcher (the same code path as distributed runs, every collective the
// identity), and NCCL's absence is explained.
import { describe, expect, it } from 'vitest';
import { readDistEnv } from '../../src/dist/env.js';
import { distInfo, initProcessGroup } from '../../src/dist/process_group.js';
import { Tensor } from '../../src/tensor.js';

describe('process group of one', () => {
  it('collectives are the identity; the reducer returns the gradients (averaged over 1)', async () => {
    const pg = await initProcessGroup({ backend: 'gloo', env: readDistEnv({}), timeoutMs: 5000 });
    expect([pg.rank, pg.worldSize]).toEqual([0, 1]);
    const a = Float64Array.from([1.5, -2, 3]);
    await pg.allReduce(a, 'avg');
    expect([...a]).toEqual([1.5, -2, 3]);
    expect(await pg.allGatherObject({ x: 1 })).toEqual([{ x: 1 }]);
    await pg.barrier();
    const grads = [Tensor.from(new Float32Array(3), [3]), Tensor.from(new Float64Array(2), [2])];
    const red = pg.createReducer(grads);
    red.markReady(1, Tensor.from(Float64Array.from([4, 5]), [2]));
    red.markReady(0, Tensor.from(Float32Array.from([1, 2, 3]), [3]));
    await red.wait();
    expect([...grads[0].toArray()]).toEqual([1, 2, 3]);
    expect([...grads[1].toArray()]).toEqual([4, 5]);
    // Marking twice in a step, or forgetting one, is reported (the ranks would fall out of step).
    red.markReady(0);
    expect(() => red.markReady(0)).toThrow(/marked ready twice in one step/);
    await expect(red.wait()).rejects.toThrow(/1 gradient\(s\) were never marked ready this step \(indices 1\)/);
    red.destroy();
    await pg.destroy();
  });

  it('wrong shapes and dtypes passed to markReady are rejected', async () => {
    const pg = await initProcessGroup({ backend: 'gloo', env: readDistEnv({}) });
    const red = pg.createReducer([Tensor.from(new Float32Array(4), [4])]);
    expect(() => red.markReady(0, Tensor.from(new Float64Array(4), [4]))).toThrow(/must be float32\[4\]/);
    expect(() => red.markReady(1)).toThrow(/index 1 is not in \[0, 1\)/);
    red.destroy();
    await pg.destroy();
  });

  it('reports whether Gloo is built in; NCCL without CUDA or libnccl says why', async () => {
    expect(typeof distInfo().glooCompiled).toBe('boolean');
    await expect(initProcessGroup({ backend: 'nccl', env: readDistEnv({}) })).rejects.toThrow(
      /needs a CUDA build|cannot load NCCL|no usable GPU/,
    );
  });
});
