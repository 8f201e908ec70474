import { describe, expect, it } from 'vitest';
import { connectedComponents, boxesFromSegmentation } from '../../src/data/boxes_from_mask.js';

// Deterministic PRNG for the test masks (mulberry32).
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Dims = [number, number, number];

// Reference: breadth-first flood fill started from every unlabelled voxel in
// raster order, so components are numbered by their first voxel, exactly the
// numbering connectedComponents promises.
function floodFill(mask: ArrayLike<number>, dims: Dims, conn: 6 | 26): { labels: Int32Array; count: number } {
  const [X, Y, Z] = dims;
  const labels = new Int32Array(X * Y * Z);
  const offs: number[][] = [];
  for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
    const m = Math.abs(dx) + Math.abs(dy) + Math.abs(dz);
    if (m === 0 || (conn === 6 && m > 1)) continue;
    offs.push([dx, dy, dz]);
  }
  let count = 0;
  for (let start = 0; start < labels.length; start++) {
    if (!mask[start] || labels[start]) continue;
    labels[start] = ++count;
    const queue = [start];
    while (queue.length) {
      const i = queue.pop()!;
      const x = i % X, y = Math.floor(i / X) % Y, z = Math.floor(i / (X * Y));
      for (const [dx, dy, dz] of offs) {
        const xx = x + dx, yy = y + dy, zz = z + dz;
        if (xx < 0 || yy < 0 || zz < 0 || xx >= X || yy >= Y || zz >= Z) continue;
        const j = xx + X * (yy + Y * zz);
        if (mask[j] === mask[i] && !labels[j]) {
          labels[j] = count;
          queue.push(j);
        }
      }
    }
  }
  return { labels, count };
}

function randomMask(dims: Dims, density: number, values: number, seed: number): Uint8Array {
  const r = rng(seed);
  const m = new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (let i = 0; i < m.length; i++) if (r() < density) m[i] = 1 + Math.floor(r() * values);
  return m;
}

describe('connectedComponents vs brute-force flood fill', () => {
  const shapes: Dims[] = [[13, 11, 7], [1, 20, 9], [17, 1, 1], [8, 9, 10]];
  for (const conn of [26, 6] as const) {
    for (const [si, dims] of shapes.entries()) {
      for (const density of [0.15, 0.35, 0.6]) {
        for (const values of [1, 3]) {
          it(`conn ${conn}, ${dims.join('x')}, density ${density}, ${values} value(s)`, () => {
            const mask = randomMask(dims, density, values, 1000 * si + Math.round(density * 100) + values);
            const got = connectedComponents(mask, dims, { connectivity: conn });
            const ref = floodFill(mask, dims, conn);
            expect(got.count).toBe(ref.count);
            expect(Array.from(got.labels)).toEqual(Array.from(ref.labels));
            const sizes = new Int32Array(ref.count);
            for (const l of ref.labels) if (l) sizes[l - 1]++;
            expect(Array.from(got.sizes)).toEqual(Array.from(sizes));
          });
        }
      }
    }
  }

  it('diagonal neighbours connect under 26 but not 6 (hand-worked)', () => {
    // 2x2x2 with voxels (0,0,0) and (1,1,1) set: corner-adjacent only.
    const mask = new Uint8Array(8);
    mask[0] = 1;
    mask[7] = 1;
    expect(connectedComponents(mask, [2, 2, 2]).count).toBe(1);
    expect(connectedComponents(mask, [2, 2, 2], { connectivity: 6 }).count).toBe(2);
  });

  it('a U shape whose arms merge late keeps a single component id (union-find merge)', () => {
    // 5x3x1: arms at x=0 and x=4 joined along y=2 only: provisional labels 1 and 2 merge on the last row.
    const rows = ['1...1', '1...1', '11111'];
    const mask = new Uint8Array(15);
    rows.forEach((r, y) => [...r].forEach((ch, x) => { if (ch === '1') mask[x + 5 * y] = 1; }));
    const cc = connectedComponents(mask, [5, 3, 1], { connectivity: 6 });
    expect(cc.count).toBe(1);
    expect(Array.from(cc.sizes)).toEqual([9]);
  });

  it('rejects bad input', () => {
    expect(() => connectedComponents(new Uint8Array(5), [2, 2, 2])).toThrow(/mask has 5 voxels, dims 2x2x2 need 8/);
    expect(() => connectedComponents(new Uint8Array(8), [2, 2, 2], { connectivity: 18 as 6 })).toThrow(/connectivity must be 6 or 26/);
  });
});

describe('boxesFromSegmentation', () => {
  it('hand-worked multi-class mask', () => {
    // 6x5x4 volume:
    //  - value 1: a 2x2x2 cube at x 1..2, y 1..2, z 0..1   → box [1,1,0,3,3,2], class 0, 8 voxels
    //  - value 2: a 3x1x1 bar at x 3..5, y 4, z 3          → box [3,4,3,6,5,4], class 1, 3 voxels
    //  - value 1: a single voxel at (5,0,3) (too small with minSize 2)
    const dims: Dims = [6, 5, 4];
    const m = new Uint8Array(120);
    const set = (x: number, y: number, z: number, v: number) => { m[x + 6 * (y + 5 * z)] = v; };
    for (let z = 0; z < 2; z++) for (let y = 1; y < 3; y++) for (let x = 1; x < 3; x++) set(x, y, z, 1);
    for (let x = 3; x < 6; x++) set(x, 4, 3, 2);
    set(5, 0, 3, 1);
    const r = boxesFromSegmentation({ data: m, dims }, { minSize: 2 });
    expect(Array.from(r.boxes)).toEqual([1, 1, 0, 3, 3, 2, 3, 4, 3, 6, 5, 4]);
    expect(Array.from(r.labels)).toEqual([0, 1]);
    expect(Array.from(r.sizes)).toEqual([8, 3]);
    expect(r.dropped).toBe(1);
    // default minSize 10 drops everything
    expect(boxesFromSegmentation({ data: m, dims }).boxes.length).toBe(0);
    // a class map: value 2 → class 5, value 1 ignored
    const mapped = boxesFromSegmentation({ data: m, dims }, { minSize: 1, classMap: { 2: 5 } });
    expect(Array.from(mapped.labels)).toEqual([5]);
    expect(Array.from(mapped.boxes)).toEqual([3, 4, 3, 6, 5, 4]);
  });

  it('two touching labels stay separate boxes', () => {
    const dims: Dims = [4, 1, 1];
    const r = boxesFromSegmentation({ data: new Uint8Array([1, 1, 2, 2]), dims }, { minSize: 1 });
    expect(Array.from(r.boxes)).toEqual([0, 0, 0, 2, 1, 1, 2, 0, 0, 4, 1, 1]);
    expect(Array.from(r.labels)).toEqual([0, 1]);
  });

  it('matches flood-fill boxes on random multi-class masks, both connectivities', () => {
    for (const conn of [26, 6] as const) {
      for (let seed = 0; seed < 4; seed++) {
        const dims: Dims = [15, 12, 9];
        const mask = randomMask(dims, 0.3, 3, 77 + seed);
        const ref = floodFill(mask, dims, conn);
        const stats = Array.from({ length: ref.count }, () => ({ lo: [1e9, 1e9, 1e9], hi: [-1, -1, -1], n: 0, v: 0 }));
        for (let i = 0; i < mask.length; i++) {
          const l = ref.labels[i];
          if (!l) continue;
          const s = stats[l - 1];
          const p = [i % 15, Math.floor(i / 15) % 12, Math.floor(i / 180)];
          for (let a = 0; a < 3; a++) { s.lo[a] = Math.min(s.lo[a], p[a]); s.hi[a] = Math.max(s.hi[a], p[a]); }
          s.n++;
          s.v = mask[i];
        }
        const kept = stats.filter((s) => s.n >= 3);
        const r = boxesFromSegmentation({ data: mask, dims }, { minSize: 3, connectivity: conn });
        expect(r.boxes.length / 6).toBe(kept.length);
        expect(Array.from(r.boxes)).toEqual(kept.flatMap((s) => [...s.lo, ...s.hi.map((h) => h + 1)]));
        expect(Array.from(r.labels)).toEqual(kept.map((s) => s.v - 1));
        expect(Array.from(r.sizes)).toEqual(kept.map((s) => s.n));
        expect(r.dropped).toBe(stats.length - kept.length);
      }
    }
  });

  it('asks for a classMap when a value is not a positive integer', () => {
    expect(() => boxesFromSegmentation({ data: new Float32Array([0.5]), dims: [1, 1, 1] }, { minSize: 1 }))
      .toThrow(/label value 0.5 is not a positive integer; pass classMap/);
  });
});
