// Distributed sampler: disjoint shards covering the dataset, equal lengths,
// seeded shuffles identical on every rank.
import { describe, expect, it } from 'vitest';
import { DistributedSampler, describeBatch, epochPermutation, shardIndices } from '../../src/dist/sampler.js';

const shards = (n: number, w: number, opts: object = {}, epoch = 0) =>
  Array.from({ length: w }, (_, r) => new DistributedSampler(n, { rank: r, worldSize: w, ...opts }).indices(epoch));

describe('DistributedSampler', () => {
  it('divisible size: shards are disjoint, cover the dataset and have equal lengths', () => {
    for (const [n, w] of [[12, 4], [10, 2], [7, 7], [9, 1]]) {
      const s = shards(n, w, { seed: 3 });
      expect(new Set(s.map((x) => x.length)).size).toBe(1);
      expect(s.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    }
  });

  it("'pad': equal lengths ceil(n/w), covers everything, only w - n mod w entries repeat", () => {
    const n = 10, w = 4; // ceil(10/4) = 3 per rank, 12 slots, 2 repeated
    const s = shards(n, w, { seed: 1 });
    for (const x of s) expect(x.length).toBe(3);
    const all = s.flat();
    expect(new Set(all).size).toBe(n);
    expect(all.length - n).toBe(2);
  });

  it("'drop': strictly disjoint, equal lengths floor(n/w), n mod w left out", () => {
    const s = shards(10, 4, { seed: 1, mode: 'drop' });
    for (const x of s) expect(x.length).toBe(2);
    const all = s.flat();
    expect(new Set(all).size).toBe(8);
  });

  it('seeded: same seed and epoch give the same order on every rank; epochs and seeds differ', () => {
    const p = epochPermutation(50, 7, 2);
    expect(epochPermutation(50, 7, 2)).toEqual(p);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(epochPermutation(50, 7, 3)).not.toEqual(p);
    expect(epochPermutation(50, 8, 2)).not.toEqual(p);
    // Rank r's shard is entries r, r+w, ... of that permutation.
    const s = new DistributedSampler(50, { rank: 1, worldSize: 5, seed: 7 });
    s.setEpoch(2);
    expect(s.indices()).toEqual(p.filter((_, i) => i % 5 === 1));
  });

  it('no shuffle: strided in order; bad arguments are rejected', () => {
    expect(new DistributedSampler(5, { rank: 1, worldSize: 2, shuffle: false }).indices()).toEqual([1, 3, 0]);
    expect(() => new DistributedSampler(5, { rank: 2, worldSize: 2 })).toThrow(/rank 2 is not in \[0, world size 2\)/);
  });

  it('validation shards: exact disjoint cover, lengths differ by at most one', () => {
    const s = [0, 1, 2].map((r) => shardIndices(10, r, 3));
    expect(s.map((x) => x.length)).toEqual([4, 3, 3]);
    expect(s.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it('describes the effective batch', () => {
    expect(describeBatch(2, 4)).toBe('batch size 2 per process x 4 processes = effective batch 8');
    expect(describeBatch(2, 1)).toBe('batch size 2');
  });
});
