import { describe, expect, it } from 'vitest';
import { resample, compose, rotationAbout, scalingAbout, flipAxis, translation, edgeToCenterMap } from '../../src/data/resample.js';
import { canonicalMap, spatialPreprocess, intensityValueMap, applyValueMap, volumeStats } from '../../src/data/preprocess.js';
import { invertAffine, voxelToWorld, worldToVoxel, orientationCode, boxesVoxelToWorld, boxesWorldToVoxel, spacingFromAffine } from '../../src/io/affine.js';
import { Rng } from '../../src/data/rng.js';
import type { Affine } from '../../src/io/volume.js';

type D3 = [number, number, number];

// float64 reference trilinear sampler at a source centre coordinate (outside → pad)
function refSample(src: ArrayLike<number>, d: D3, p: number[], pad: number): number {
  const x0 = Math.floor(p[0]), y0 = Math.floor(p[1]), z0 = Math.floor(p[2]);
  let acc = 0;
  for (let c = 0; c < 8; c++) {
    const ix = x0 + (c & 1), iy = y0 + ((c >> 1) & 1), iz = z0 + (c >> 2);
    const w = (1 - Math.abs(p[0] - ix)) * (1 - Math.abs(p[1] - iy)) * (1 - Math.abs(p[2] - iz));
    if (w === 0) continue;
    const inside = ix >= 0 && iy >= 0 && iz >= 0 && ix < d[0] && iy < d[1] && iz < d[2];
    acc += w * (inside ? src[ix + d[0] * (iy + d[1] * iz)] : pad);
  }
  return acc;
}

describe('resample', () => {
  it('trilinear through a rotation+zoom matches a float64 reference (incl. padding at the border)', () => {
    const d: D3 = [9, 8, 7];
    const rng = new Rng(3);
    const src = Float32Array.from({ length: 9 * 8 * 7 }, () => rng.uniform(-1, 1));
    const m = compose(rotationAbout([0.3, -0.2, 0.5], [4.5, 4, 3.5]), scalingAbout([1.1, 0.9, 1.2], [4.5, 4, 3.5]), translation([0.7, -0.4, 0.2]));
    const out = resample(src, d, m, d, { pad: 0.25 });
    const inv = invertAffine(edgeToCenterMap(m));
    let maxErr = 0;
    for (let z = 0; z < 7; z++) for (let y = 0; y < 8; y++) for (let x = 0; x < 9; x++) {
      const p = voxelToWorld(inv, [x, y, z]);
      const want = refSample(src, d, p, 0.25);
      // fully outside: pad
      const got = out[x + 9 * (y + 8 * z)];
      maxErr = Math.max(maxErr, Math.abs(got - want));
    }
    expect(maxErr).toBeLessThan(2e-6);
  });

  it('value map is applied to every source sample before interpolation (MONAI normalises first)', () => {
    // two voxels 2000 and 0 HU, sampled half-way: normalise-then-interpolate gives (1 + 0.7757…)/2
    const src = Float32Array.from([2000, 0]);
    const vm = intensityValueMap({ mode: 'range', aMin: -1024, aMax: 300, bMin: 0, bMax: 1, clip: true });
    const out = resample(src, [2, 1, 1], translation([-0.5, 0, 0]), [1, 1, 1], { valueMap: vm, pad: 0 });
    const n0 = (0 + 1024) / 1324;
    expect(out[0]).toBeCloseTo((1 + n0) / 2, 6);
  });

  it('flip / permutation maps copy voxels exactly', () => {
    const d: D3 = [5, 4, 3];
    const src = Float32Array.from({ length: 60 }, (_, i) => i);
    const out = resample(src, d, flipAxis(1, 4), d);
    for (let z = 0; z < 3; z++) for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) {
      expect(out[x + 5 * (y + 4 * z)]).toBe(src[x + 5 * (3 - y + 4 * z)]);
    }
  });
});

describe('reorientation to RAS', () => {
  it('LPS + permuted oblique volume: every voxel keeps its world position and value; boxes follow', () => {
    // voxel x → world −y (P), voxel y → world −x (L), voxel z → world +z (S): code 'PLS'
    const A: Affine = [[0, -0.8, 0, 50], [-0.7, 0, 0, 60], [0, 0, 2.5, -30], [0, 0, 0, 1]];
    expect(orientationCode(A)).toBe('PLS');
    const d: D3 = [6, 5, 4];
    const data = Int16Array.from({ length: 120 }, (_, i) => i * 3 - 100);
    const boxes = Float32Array.from([1, 0, 1, 3, 2, 4]);
    const r = spatialPreprocess({ data, dims: d, affine: A }, boxes, { orientation: 'RAS' });
    expect(r.orientation).toBe('RAS');
    expect(r.image.dims).toEqual([5, 6, 4]);
    expect(r.image.data).toBeInstanceOf(Int16Array);
    for (let z = 0; z < 4; z++) for (let y = 0; y < 6; y++) for (let x = 0; x < 5; x++) {
      const w = voxelToWorld(r.image.affine, [x, y, z]);
      const o = worldToVoxel(A, w).map((v) => Math.round(v * 1e6) / 1e6);
      expect(r.image.data[x + 5 * (y + 6 * z)]).toBe(data[o[0] + 6 * (o[1] + 5 * o[2])]);
    }
    // hand-worked: new x = 5 − old y, new y = 6 − old x, new z = old z → [5−2, 6−3, 1, 5−0, 6−1, 4]
    expect(Array.from(r.boxes)).toEqual([3, 3, 1, 5, 5, 4]);
    // new x runs along old y (0.8 mm), new y along old x (0.7 mm)
    expect(r.spacing.map((s) => +s.toFixed(6))).toEqual([0.8, 0.7, 2.5]);
  });

  it('canonicalMap to LPS and back is the identity', () => {
    const A: Affine = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
    const { map, dims } = canonicalMap(A, [4, 5, 6], 'LPS');
    expect(dims).toEqual([4, 5, 6]);
    expect(map).toEqual([[-1, 0, 0, 4], [0, -1, 0, 5], [0, 0, 1, 0], [0, 0, 0, 1]]);
  });
});

describe('resampling to a target spacing', () => {
  it('linear ramp stays exact inside, boxes scale, affine spacing updated', () => {
    const d: D3 = [10, 8, 6];
    const A: Affine = [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]];
    const data = new Float32Array(480);
    // intensity = world x + 2 · world z (linear in world coordinates)
    for (let z = 0; z < 6; z++) for (let y = 0; y < 8; y++) for (let x = 0; x < 10; x++) data[x + 10 * (y + 8 * z)] = 2 * x + 2 * 3 * z;
    const r = spatialPreprocess({ data, dims: d, affine: A }, Float32Array.from([2, 2, 1, 6, 4, 3]), { spacing: [1, 1, 1.5] });
    expect(r.image.dims).toEqual([20, 16, 12]);
    expect(r.spacing).toEqual([1, 1, 1.5]);
    // boxes scale by 2 per axis
    expect(Array.from(r.boxes)).toEqual([4, 4, 2, 12, 8, 6]);
    // interior voxels: value = world x + 2 world z computed through the new affine
    for (const [x, y, z] of [[3, 3, 3], [10, 7, 5], [15, 2, 8]]) {
      const w = voxelToWorld(r.image.affine, [x, y, z]);
      expect(r.image.data[x + 20 * (y + 16 * z)]).toBeCloseTo(w[0] + 2 * w[2], 4);
    }
    // world extent preserved: the first voxel's outer edge maps to the same world point
    const edgeOld = voxelToWorld(A, [-0.5, -0.5, -0.5]);
    const edgeNew = voxelToWorld(r.image.affine, [-0.5, -0.5, -0.5]);
    edgeOld.forEach((v, i) => expect(edgeNew[i]).toBeCloseTo(v, 9));
  });
});

describe('intensity normalisation', () => {
  it('ScaleIntensityRange −1024..300 → 0..1 with clipping', () => {
    const vm = intensityValueMap({ mode: 'range' });
    const out = applyValueMap(Float32Array.from([-2000, -1024, -362, 300, 1000]), vm);
    // (v + 1024) / 1324: −362 → 662/1324 = 0.5
    expect(Array.from(out)).toEqual([0, 0, 0.5, 1, 1].map(Math.fround));
  });
  it('z-score uses the volume mean and std', () => {
    const data = Float32Array.from([1, 2, 3, 4]);
    const st = volumeStats(data); // mean 2.5, std sqrt(1.25)
    expect(st.mean).toBe(2.5);
    expect(st.std).toBeCloseTo(Math.sqrt(1.25), 12);
    const out = applyValueMap(data, intensityValueMap({ mode: 'zscore' }, st));
    expect(out[0]).toBeCloseTo(-1.5 / Math.sqrt(1.25), 6);
    expect(out[3]).toBeCloseTo(1.5 / Math.sqrt(1.25), 6);
  });
});

describe('voxel ↔ world helpers', () => {
  it('points round-trip and boxes become the axis-aligned box of the transformed corners', () => {
    const A: Affine = [[0, -2, 0, 10], [1.5, 0, 0, -4], [0, 0, 3, 1], [0, 0, 0, 1]];
    const p = [1.25, -3, 7];
    const back = worldToVoxel(A, voxelToWorld(A, p));
    back.forEach((v, i) => expect(v).toBeCloseTo(p[i], 12));
    // box x 1..3, y 2..5, z 0..1: world x = −2y + 10 ∈ [0, 6], world y = 1.5x − 4 ∈ [−2.5, 0.5], world z = 3z + 1 ∈ [1, 4]
    const w = boxesVoxelToWorld(A, [1, 2, 0, 3, 5, 1]);
    expect(Array.from(w)).toEqual([0, -2.5, 1, 6, 0.5, 4]);
    expect(Array.from(boxesWorldToVoxel(A, w))).toEqual([1, 2, 0, 3, 5, 1]);
    expect(spacingFromAffine(A)).toEqual([1.5, 2, 3]);
    // a 45° rotation grows a box: the unit square's corners span √2
    const c = Math.SQRT1_2;
    const R: Affine = [[c, -c, 0, 0], [c, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
    const g = boxesVoxelToWorld(R, [0, 0, 0, 1, 1, 1]);
    expect(g[3] - g[0]).toBeCloseTo(Math.SQRT2, 6);
  });
});
