import { describe, expect, it } from 'vitest';
import { boxesFromSegmentation } from '../../src/data/boxes_from_mask.js';
import { transformBoxes } from '../../src/io/affine.js';
import { resample, compose, translation, type Dims3 } from '../../src/data/resample.js';
import {
  sampleSpatial, resolveAugment, gaussianSmooth, gaussianKernel, adjustContrast, addGaussianNoise, applyIntensityAugment,
  type SpatialAugmentOptions,
} from '../../src/data/augment.js';
import { chooseCrop, clipBoxes } from '../../src/data/patch.js';
import { makeTrainBatch } from '../../src/data/pipeline.js';
import { Rng } from '../../src/data/rng.js';

// A label volume with non-overlapping solid boxes, each painted with its own
// value (1..n) so that boxes recomputed from a transformed mask can be matched
// to the transformed boxes by value.
function boxVolume(dims: Dims3, seed: number): { mask: Uint8Array; boxes: Float32Array; labels: Int32Array } {
  const rng = new Rng(seed, 99);
  const mask = new Uint8Array(dims[0] * dims[1] * dims[2]);
  const boxes: number[] = [];
  const cell = [12, 12, 8];
  let v = 0;
  for (let cz = 0; cz + cell[2] <= dims[2]; cz += cell[2]) {
    for (let cy = 0; cy + cell[1] <= dims[1]; cy += cell[1]) {
      for (let cx = 0; cx + cell[0] <= dims[0]; cx += cell[0]) {
        if (!rng.chance(0.6)) continue;
        const lo = [cx, cy, cz].map((c, a) => c + 1 + rng.int(0, 3 - (a === 2 ? 1 : 0)));
        const hi = lo.map((l, a) => Math.min(l + 3 + rng.int(0, 4 - (a === 2 ? 2 : 0)), [cx, cy, cz][a] + cell[a] - 1));
        v++;
        for (let z = lo[2]; z < hi[2]; z++) for (let y = lo[1]; y < hi[1]; y++) for (let x = lo[0]; x < hi[0]; x++) {
          mask[x + dims[0] * (y + dims[1] * z)] = v;
        }
        boxes.push(...lo, ...hi);
      }
    }
  }
  return { mask, boxes: Float32Array.from(boxes), labels: Int32Array.from({ length: v }, (_, i) => i + 1) };
}

/** Boxes per value from a (transformed) mask: value → [x1..z2]. */
function maskBoxes(mask: Float32Array, dims: Dims3): Map<number, number[]> {
  const r = boxesFromSegmentation({ data: mask, dims }, { minSize: 1, classMap: (v) => v });
  const out = new Map<number, number[]>();
  for (let i = 0; i < r.labels.length; i++) {
    const b = Array.from(r.boxes.subarray(6 * i, 6 * i + 6));
    const prev = out.get(r.labels[i]);
    // a value may split into pieces after a rotation with nearest sampling: merge them
    out.set(r.labels[i], prev ? [0, 1, 2].flatMap((a) => [Math.min(prev[a], b[a])]).concat([0, 1, 2].map((a) => Math.max(prev[a + 3], b[a + 3]))) : b);
  }
  return out;
}

/**
 * Transforms mask and boxes with the same edge map and compares: `tol` = 0
 * for exact maps (crop, flip, 90° turns), 0.5 for zooms (nearest-neighbour
 * rounding of the mask edges), containment only for arbitrary rotations.
 */
function checkMapAgreement(
  vol: ReturnType<typeof boxVolume>, dims: Dims3, map: number[][], P: Dims3, mode: 'exact' | 'zoom' | 'rotate',
  batchBoxes?: { boxes: Float32Array; labels: Int32Array },
): number {
  const tmask = resample(vol.mask, dims, map, P, { mode: 'nearest', pad: 0 });
  const fromMask = maskBoxes(tmask, P);
  const expected = batchBoxes ?? clipBoxes(transformBoxes(map, vol.boxes), vol.labels, P, 1);
  const tol = mode === 'exact' ? 0 : 0.5 + 1e-4;
  let compared = 0;
  for (let i = 0; i < expected.labels.length; i++) {
    const v = expected.labels[i];
    const e = Array.from(expected.boxes.subarray(6 * i, 6 * i + 6));
    const m = fromMask.get(v);
    const side = Math.min(e[3] - e[0], e[4] - e[1], e[5] - e[2]);
    if (!m) {
      // only boxes that are barely 1 voxel thick can vanish under nearest sampling
      expect(mode === 'exact' ? 0 : side).toBeLessThan(mode === 'exact' ? -1 : 1.5);
      continue;
    }
    compared++;
    for (let a = 0; a < 6; a++) {
      if (mode === 'rotate') {
        // mask box inside the transformed-corner box (nearest sampling can reach half a voxel out)
        if (a < 3) expect(m[a]).toBeGreaterThanOrEqual(e[a] - 0.5 - 1e-4);
        else expect(m[a]).toBeLessThanOrEqual(e[a] + 0.5 + 1e-4);
      } else {
        expect(Math.abs(m[a] - e[a])).toBeLessThanOrEqual(tol);
      }
    }
  }
  // every mask component belongs to a kept box, except slivers under zoom/rotation
  for (const [v, m] of fromMask) {
    if (!Array.from(expected.labels).includes(v)) {
      expect(mode).not.toBe('exact');
      expect(Math.min(m[3] - m[0], m[4] - m[1], m[5] - m[2])).toBeLessThanOrEqual(1);
    }
  }
  return compared;
}

const OFF: Required<SpatialAugmentOptions> = { zoom: false, flip: false, rot90: false, rotate: false };
const dims: Dims3 = [60, 48, 32];

describe('spatial augmentations: boxes recomputed from the transformed mask = transformed boxes', () => {
  const cases: Array<[string, Partial<SpatialAugmentOptions>, 'exact' | 'zoom' | 'rotate', Dims3]> = [
    ['crop only', {}, 'exact', [40, 40, 24]],
    ['flip x', { flip: { prob: 1, axes: [true, false, false] } }, 'exact', [40, 40, 24]],
    ['flip y', { flip: { prob: 1, axes: [false, true, false] } }, 'exact', [40, 40, 24]],
    ['flip z', { flip: { prob: 1, axes: [false, false, true] } }, 'exact', [40, 40, 24]],
    ['rot90 (square x-y patch)', { rot90: { prob: 1, maxK: 3 } }, 'exact', [40, 40, 24]],
    ['rot90 (non-square x-y patch)', { rot90: { prob: 1, maxK: 3 } }, 'exact', [44, 36, 24]],
    ['flips + rot90', { flip: { prob: 0.5 }, rot90: { prob: 1, maxK: 3 } }, 'exact', [36, 44, 20]],
    ['zoom 0.8-1.2', { zoom: { prob: 1, min: 0.8, max: 1.2 } }, 'zoom', [40, 40, 24]],
    ['zoom + flips + rot90', { zoom: { prob: 1, min: 0.8, max: 1.2 }, flip: { prob: 0.5 }, rot90: { prob: 1, maxK: 3 } }, 'zoom', [40, 40, 24]],
    ['arbitrary rotation ±30°', { rotate: { prob: 1, range: [Math.PI / 6, Math.PI / 6, Math.PI / 6] } }, 'rotate', [40, 40, 24]],
  ];
  for (const [name, opt, mode, P] of cases) {
    it(name, () => {
      let compared = 0;
      for (let seed = 0; seed < 12; seed++) {
        const vol = boxVolume(dims, seed);
        const rng = new Rng(seed, 5);
        const sp = sampleSpatial(rng, P, { ...OFF, ...opt });
        if (opt.rot90 && sp.applied.rot90 % 2 === 1) expect(sp.cropSize).toEqual([P[1], P[0], P[2]]);
        const start = chooseCrop(rng, dims, sp.cropSize, vol.boxes, seed % 2 === 0);
        const map = compose(translation([-start[0], -start[1], -start[2]]), sp.map);
        compared += checkMapAgreement(vol, dims, map, P, mode);
      }
      expect(compared).toBeGreaterThan(20); // the property was checked on many boxes
    });
  }

  it('90° turn moves a hand-placed box as numpy rot90 on axes (0, 1) does', () => {
    // One turn maps (x, y) → (Sy − y, x): box x 1..3, y 5..9 in a 10x12 region → x 12−9..12−5 = 3..7, y 1..3.
    const sp = sampleSpatial(new Rng(0), [12, 10, 4], { ...OFF, rot90: { prob: 1, maxK: 1 } });
    expect(sp.applied.rot90).toBe(1);
    expect(sp.cropSize).toEqual([10, 12, 4]);
    expect(Array.from(transformBoxes(sp.map, [1, 5, 0, 3, 9, 4]))).toEqual([3, 1, 0, 7, 3, 4]);
  });

  it('the full default pipeline: batch boxes agree with the mask pushed through each patch map', () => {
    let compared = 0;
    for (let seed = 0; seed < 6; seed++) {
      const vol = boxVolume(dims, 100 + seed);
      const P: Dims3 = [40, 40, 24];
      const batch = makeTrainBatch(
        { id: 'c', imagePath: 'c.nii', data: vol.mask, dims, affine: [], boxes: vol.boxes, labels: vol.labels },
        { patchSize: P, batchSize: 4, intensity: { mode: 'none' }, augment: { spatial: { zoom: { prob: 0.5, min: 0.8, max: 1.2 } } } },
        seed, [0, 0],
      );
      for (let i = 0; i < 4; i++) {
        const mode = Math.abs(batch.maps![i][0][0]) % 1 === 0 && Math.abs(batch.maps![i][0][1]) % 1 === 0 ? 'exact' : 'zoom';
        compared += checkMapAgreement(vol, dims, batch.maps![i], P, mode, { boxes: batch.boxes[i], labels: batch.labels[i] });
      }
    }
    expect(compared).toBeGreaterThan(10);
  });
});

describe('slab-wise reading (disk cache) gives the same patches as the whole volume', () => {
  it('with zooms, rotations, flips and 90° turns', () => {
    const d: Dims3 = [30, 28, 40];
    const rng = new Rng(21);
    const data = Int16Array.from({ length: 30 * 28 * 40 }, () => rng.int(-1000, 1000));
    const vol = boxVolume(d, 3);
    let slabs = 0, sliceCount = 0;
    const readSlab = (z0: number, z1: number) => {
      slabs++;
      sliceCount += z1 - z0;
      return data.slice(z0 * 30 * 28, z1 * 30 * 28);
    };
    const opts = {
      patchSize: [20, 20, 12] as Dims3, batchSize: 4,
      augment: { spatial: { zoom: { prob: 0.7, min: 0.8, max: 1.2 }, rotate: { prob: 0.5, range: [0.5, 0.5, 0.5] as Dims3 } } },
    };
    for (let seed = 0; seed < 5; seed++) {
      const base = { id: 'x', imagePath: 'x.nii', dims: d, affine: [], boxes: vol.boxes, labels: vol.labels };
      const a = makeTrainBatch({ ...base, data }, opts, seed, [0, 1]);
      const b = makeTrainBatch({ ...base, data: null, readSlab }, opts, seed, [0, 1]);
      expect(Buffer.from(b.images.buffer).equals(Buffer.from(a.images.buffer))).toBe(true);
      expect(b.boxes.map((x) => Array.from(x))).toEqual(a.boxes.map((x) => Array.from(x)));
    }
    expect(slabs).toBe(20);
    expect(sliceCount / slabs).toBeLessThan(40); // only part of the volume is read per patch
  });
});

describe('patch selection', () => {
  it('positive crops contain a whole ground-truth box; crops stay inside big volumes', () => {
    const boxes = Float32Array.from([10, 20, 5, 18, 26, 9, 70, 3, 30, 79, 9, 39]);
    for (let s = 0; s < 200; s++) {
      const rng = new Rng(s);
      const st = chooseCrop(rng, [80, 64, 40], [32, 32, 16], boxes, true);
      for (let a = 0; a < 3; a++) expect(st[a]).toBeGreaterThanOrEqual(0);
      expect(st[0] + 32).toBeLessThanOrEqual(80);
      const inside = [0, 1].some((b) => [0, 1, 2].every((a) => st[a] <= boxes[6 * b + a] && st[a] + [32, 32, 16][a] >= boxes[6 * b + 3 + a]));
      expect(inside).toBe(true);
    }
  });

  it('volumes smaller than the patch are centred and padded', () => {
    const st = chooseCrop(new Rng(1), [10, 64, 5], [32, 32, 16], new Float32Array(0), false);
    expect(st[0]).toBe(Math.floor((10 - 32) / 2));
    expect(st[2]).toBe(Math.floor((5 - 16) / 2));
    const vol = new Float32Array(10 * 64 * 5).fill(7);
    const out = resample(vol, [10, 64, 5], translation([-st[0], -st[1], -st[2]]), [32, 32, 16], { pad: -1 });
    // patch x 11..20 and z 6..10 are inside the volume (start −11, −6); the rest is padding
    expect(out[0]).toBe(-1);
    expect(out[10 + 32 * (0 + 32 * 8)]).toBe(-1);
    expect(out[11 + 32 * (0 + 32 * 8)]).toBe(7);
    expect(out[20 + 32 * (0 + 32 * 6)]).toBe(7);
    expect(out[20 + 32 * (0 + 32 * 11)]).toBe(-1);
  });

  it('clipBoxes clips and drops boxes thinner than one voxel with their labels', () => {
    const b = Float32Array.from([-5, 2, 2, 3, 8, 8, 9.5, 0, 0, 14, 4, 4, 1, 1, 1, 4, 4, 4]);
    const r = clipBoxes(b, Int32Array.from([0, 1, 2]), [10, 10, 10], 1);
    // box 0 → [0,2,2,3,8,8]; box 1 → x 9.5..10 is 0.5 thick → removed; box 2 unchanged
    expect(Array.from(r.boxes)).toEqual([0, 2, 2, 3, 8, 8, 1, 1, 1, 4, 4, 4]);
    expect(Array.from(r.labels)).toEqual([0, 2]);
  });
});

describe('intensity augmentations (closed forms)', () => {
  it('Gaussian smoothing of a delta is the outer product of the 1D kernels; constants stay constant inside', () => {
    const d: Dims3 = [15, 15, 15];
    const data = new Float32Array(15 ** 3);
    data[7 + 15 * (7 + 15 * 7)] = 1;
    const sigma = [0.6, 0.8, 1.0];
    gaussianSmooth(data, d, sigma);
    const k = sigma.map((s) => gaussianKernel(s));
    // kernel taps: exp(−i²/2σ²) normalised; radius round(4σ)
    expect(k.map((x) => x.length)).toEqual([2 * 2 + 1, 2 * 3 + 1, 2 * 4 + 1]);
    for (const [x, y, z] of [[7, 7, 7], [8, 7, 7], [7, 9, 6], [5, 5, 10]]) {
      const w = (kk: Float64Array, i: number) => kk[i - 7 + (kk.length - 1) / 2] ?? 0;
      const want = w(k[0], x) * w(k[1], y) * w(k[2], z);
      expect(data[x + 15 * (y + 15 * z)]).toBeCloseTo(want, 6);
    }
    const c = new Float32Array(15 ** 3).fill(2);
    gaussianSmooth(c, d, [1, 1, 1]);
    expect(c[7 + 15 * (7 + 15 * 7)]).toBeCloseTo(2, 5);
    // zero padding: a corner loses the half of each kernel that falls outside
    const k1 = gaussianKernel(1);
    const half = k1.slice(4).reduce((s, v) => s + v, 0);
    expect(c[0]).toBeCloseTo(2 * half ** 3, 5);
  });

  it('contrast: ((v − min)/range)^γ · range + min', () => {
    const data = Float32Array.from([0.5, 1, 2.5, 1.75]);
    adjustContrast(data, 2);
    // min 0.5, range 2: v=1 → (0.25)² · 2 + 0.5 = 0.625; v=1.75 → (0.625)² · 2 + 0.5 = 1.28125
    // (the table interpolation is exact to ~1e-5 of the range)
    expect(data[0]).toBeCloseTo(0.5, 6);
    expect(data[1]).toBeCloseTo(0.625, 5);
    expect(data[2]).toBeCloseTo(2.5, 5);
    expect(data[3]).toBeCloseTo(1.28125, 5);
  });

  it('contrast matches the float64 closed form within 3e-5 of the range for γ in [0.7, 1.5]', () => {
    const rng = new Rng(11);
    for (const gamma of [0.7, 0.85, 1.2, 1.5]) {
      const src = Float32Array.from({ length: 20000 }, (_, i) => (i < 50 ? -1 + i * 1e-7 : rng.uniform(-1, 3)));
      const data = Float32Array.from(src);
      adjustContrast(data, gamma);
      let mn = Infinity, mx = -Infinity;
      for (const v of src) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
      let err = 0;
      for (let i = 0; i < src.length; i++) {
        const want = ((src[i] - mn) / (mx - mn + 1e-7)) ** gamma * (mx - mn) + mn;
        err = Math.max(err, Math.abs(data[i] - want) / (mx - mn));
      }
      expect(err).toBeLessThan(3e-5);
    }
  });

  it('noise has the requested standard deviation and zero mean', () => {
    const data = new Float32Array(200_000);
    addGaussianNoise(data, 0.3, new Rng(4));
    let s = 0, q = 0;
    for (const v of data) { s += v; q += v * v; }
    const mean = s / data.length;
    expect(Math.abs(mean)).toBeLessThan(0.005);
    expect(Math.sqrt(q / data.length - mean * mean)).toBeCloseTo(0.3, 2);
  });

  it('scale and shift apply v·(1+f) + o with the drawn f and o', () => {
    const opts = resolveAugment({ intensity: { noise: false, smooth: false, contrast: false, scale: { prob: 1, factor: 0.25 }, shift: { prob: 1, offset: 0.1 } } });
    const data = Float32Array.from([0, 0.5, 1, -2]);
    const applied = applyIntensityAugment(data, [4, 1, 1], new Rng(9), opts.intensity);
    const f = applied.scale as number, o = applied.shift as number;
    expect(f).toBeGreaterThanOrEqual(0.75);
    expect(f).toBeLessThanOrEqual(1.25);
    expect(Math.abs(o)).toBeLessThanOrEqual(0.1);
    [0, 0.5, 1, -2].forEach((v, i) => expect(data[i]).toBeCloseTo(v * f + o, 6));
  });

  it('probabilities are honoured (contrast p 0.3 over many draws)', () => {
    const opts = resolveAugment(undefined).intensity;
    let n = 0;
    for (let s = 0; s < 2000; s++) {
      const applied = applyIntensityAugment(new Float32Array(2), [2, 1, 1], new Rng(s), { ...opts, noise: false, smooth: false });
      if ('contrast' in applied) n++;
    }
    expect(n / 2000).toBeGreaterThan(0.26);
    expect(n / 2000).toBeLessThan(0.34);
  });
});
