import { describe, expect, it } from 'vitest';
import { anchors, match, sampler } from '../../src/detection/index.js';
import { randomBoxes, refIou, rng } from './helpers.js';

const arr = (a: ArrayLike<number>) => Array.from(a);

/** Float64 ATSS written from the definition (see match.atss). */
function refAtss(levels: Float32Array[], A: number, gt: Float32Array, numCandidates: number, centerInGt: boolean): number[] {
  const total = levels.reduce((s, l) => s + l.length / 6, 0);
  const all = new Float32Array(total * 6);
  let off = 0;
  const ranges: [number, number][] = [];
  for (const l of levels) {
    all.set(l, off * 6);
    ranges.push([off, off + l.length / 6]);
    off += l.length / 6;
  }
  const ctr = (b: ArrayLike<number>, i: number, k: number) => (b[6 * i + k] + b[6 * i + k + 3]) / 2;
  const best = new Array<number>(total).fill(-1);
  const bestIou = new Array<number>(total).fill(-Infinity);
  for (let g = 0; g < gt.length / 6; g++) {
    const cand: number[] = [];
    for (const [s, e] of ranges) {
      const idx = Array.from({ length: e - s }, (_, i) => s + i);
      const d = (i: number) => Math.hypot(ctr(all, i, 0) - ctr(gt, g, 0), ctr(all, i, 1) - ctr(gt, g, 1), ctr(all, i, 2) - ctr(gt, g, 2));
      idx.sort((a, b) => d(a) - d(b) || a - b);
      cand.push(...idx.slice(0, Math.min(numCandidates * A, (e - s) / A)));
    }
    const ious = cand.map((i) => refIou(all, i, gt, g));
    if (ious.length === 1) {
      // single candidate: positive (MONAI's corner case)
      if (ious[0] > bestIou[cand[0]]) {
        bestIou[cand[0]] = ious[0];
        best[cand[0]] = g;
      }
      continue;
    }
    const mean = ious.reduce((a, b) => a + b, 0) / ious.length;
    const std = Math.sqrt(ious.reduce((a, b) => a + (b - mean) ** 2, 0) / (ious.length - 1));
    cand.forEach((i, c) => {
      if (ious[c] < mean + std) return;
      if (centerInGt) {
        for (let k = 0; k < 3; k++) {
          const m = Math.min(ctr(all, i, k) - gt[6 * g + k], gt[6 * g + k + 3] - ctr(all, i, k));
          if (!(m > 0.01)) return;
        }
      }
      if (ious[c] > bestIou[i]) {
        bestIou[i] = ious[c];
        best[i] = g;
      }
    });
  }
  return best;
}

describe('match.atss', () => {
  // Four 4-voxel anchors along x with centres 0, 4, 8 (image 12 x 4 x 4, 3 locations).
  const line = anchors.generate({ imageSize: [12, 4, 4], featureMapSizes: [[3, 1, 1]], baseAnchorShapes: [[4, 4, 4]] });

  it('hand-worked: threshold = mean + std of the candidate IoUs', () => {
    // GT [-1,-2,-2,3,2,2] (centre x = 1). With 3 locations all are candidates (k = min(4, 3)).
    // IoUs: anchor 0 [-2,2]: 3*4*4/(64+64-48) = 0.6; anchor 1 [2,6]: 16/112 = 0.142857; anchor 2: 0.
    // mean 0.247619, std (N-1) 0.313418 -> threshold 0.561037: only anchor 0 is positive.
    expect(arr(match.atss(line, [-1, -2, -2, 3, 2, 2]))).toEqual([0, -1, -1]);
    // With numCandidates 1: k = min(1, 3) = 1 candidate in total (anchor 0, the nearest). The
    // std is undefined; MONAI then makes the single candidate positive, whatever its IoU.
    expect(arr(match.atss(line, [-1, -2, -2, 3, 2, 2], { numCandidates: 1 }))).toEqual([0, -1, -1]);
    expect(arr(match.atss(line, [7.5, -2, -2, 8.5, 2, 2], { numCandidates: 1, centerInGt: true }))).toEqual([-1, -1, 0]);
    // With 2 candidates (anchors 0 and 1): mean 0.371429, std 0.323249 -> 0.694678 > 0.6: none.
    expect(arr(match.atss(line, [-1, -2, -2, 3, 2, 2], { numCandidates: 2 }))).toEqual([-1, -1, -1]);
  });

  it('hand-worked: a GT between anchors matches all zero-IoU candidates unless centerInGt', () => {
    // Anchors [-1,1], [3,5], [7,9], [11,13] in x (stride 4, size 2). GT [1.5,2.5] in x, centre 2:
    // anchors 0 and 1 are both at distance 2 (tie -> lower index first), anchor 2 next.
    // All three IoUs are 0, so mean = std = 0 and IoU 0 >= 0 makes all three positive (MONAI does
    // the same). With centerInGt no anchor centre (0, 4, 8) lies inside [1.5, 2.5].
    const gaps = anchors.generate({ imageSize: [16, 4, 4], featureMapSizes: [[4, 1, 1]], baseAnchorShapes: [[2, 2, 2]] });
    const gt = [1.5, -0.5, -0.5, 2.5, 0.5, 0.5];
    expect(arr(match.atss(gaps, gt, { numCandidates: 3 }))).toEqual([0, 0, 0, -1]);
    expect(arr(match.atss(gaps, gt, { numCandidates: 3, centerInGt: true }))).toEqual([-1, -1, -1, -1]);
  });

  it('no GT, or an empty level, gives all background', () => {
    expect(arr(match.atss(line, new Float32Array(0)))).toEqual([-1, -1, -1]);
  });

  it('matches a float64 reference on random multi-level configurations', () => {
    const r = rng(5);
    const lv = anchors.generate({
      imageSize: [32, 32, 16],
      featureMapSizes: [[8, 8, 8], [4, 4, 4], [2, 2, 2]],
      baseAnchorShapes: [[6, 8, 4], [8, 6, 5], [10, 10, 6]],
    });
    let positives = 0;
    for (let trial = 0; trial < 6; trial++) {
      const n = 1 + Math.floor(r() * 5);
      const gt = randomBoxes(r, n, 32, 2, 14);
      for (const centerInGt of [false, true]) {
        const got = arr(match.atss(lv, gt, { numCandidates: 4, centerInGt }));
        expect(got).toEqual(refAtss(lv, 3, gt, 4, centerInGt));
        positives += got.filter((v) => v >= 0).length;
      }
    }
    expect(positives).toBeGreaterThan(20);
    // GT larger than the image and touching the border still match.
    const big = new Float32Array([-10, -10, -5, 50, 50, 30]);
    const m = match.atss(lv, big);
    expect(m.some((v) => v === 0)).toBe(true);
    expect(arr(m)).toEqual(refAtss(lv, 3, big, 4, false));
    const border = new Float32Array([0, 0, 0, 6, 6, 4]);
    expect(arr(match.atss(lv, border))).toEqual(refAtss(lv, 3, border, 4, false));
  });

  it('also handles anchors of one location with different centres', () => {
    // Hand-made anchors (A = 2) whose two shapes are not centred alike, so the search cannot
    // work per location; compare with the reference.
    const r = rng(13);
    const lv = [randomBoxes(r, 40, 24, 2, 8), randomBoxes(r, 10, 24, 4, 12)];
    for (let t = 0; t < 4; t++) {
      const gt = randomBoxes(r, 3, 24, 2, 10);
      expect(arr(match.atss(lv, gt, { anchorsPerLocation: 2 }))).toEqual(refAtss(lv, 2, gt, 4, false));
    }
  });

  it('gives an anchor claimed by two GTs to the higher IoU', () => {
    // Two nearly identical GTs around anchor 0: the second fits it better.
    const gt = new Float32Array([-1, -2, -2, 3, 2, 2, -1.5, -2, -2, 2.5, 2, 2]);
    const m = match.atss(line, gt);
    expect(m[0]).toBe(1);
    expect(arr(m)).toEqual(refAtss(line, 1, gt, 4, false));
  });

  it('rejects bad inputs', () => {
    expect(() => match.atss(line, [0, 0, 0, 1, 1])).toThrow(/multiple of 6/);
    expect(() => match.atss(line, [0, 0, 0, -1, 1, 1])).toThrow(/x2 < x1/);
    expect(() => match.atss(line, [0, 0, 0, 1, 1, 1], { anchorsPerLocation: 2 })).toThrow(/not a multiple of anchorsPerLocation/);
    expect(() => match.atss(line, [0, 0, 0, 1, 1, 1], { numCandidates: 0 })).toThrow(/numCandidates/);
  });
});

describe('sampler.hardNegative', () => {
  function labels(fg: number, bg: number, ignored = 0): Int32Array {
    return Int32Array.from([...new Array(fg).fill(0), ...new Array(bg).fill(-1), ...new Array(ignored).fill(-2)]);
  }

  it('hand-worked counts: numPos = min(#fg, int(64*0.3) = 19), numNeg = max(16, int(max(1,numPos)*|1-1/0.3|))', () => {
    const r = rng(1);
    const cases: [number, number, number, number][] = [
      // fg, bg, expected pos, expected neg
      [30, 1000, 19, 44], // int(19 * 2.3333) = 44
      [10, 1000, 10, 23], // int(10 * 2.3333) = 23
      [5, 1000, 5, 16], // int(11.67) = 11 < minNeg 16
      [0, 1000, 0, 16], // max(1, 0) * 2.33 = 2 -> 16
      [3, 10, 3, 10], // only 10 background anchors
      [0, 0, 0, 0],
    ];
    for (const [fg, bg, p, n] of cases) {
      const m = labels(fg, bg, 7);
      const s = Float32Array.from(m, () => r());
      const { positive, negative } = sampler.hardNegative(m, s);
      expect([positive.length, negative.length]).toEqual([p, n]);
      for (const i of positive) expect(m[i]).toBeGreaterThanOrEqual(0);
      for (const i of negative) expect(m[i]).toBe(-1);
    }
  });

  it('draws negatives only from the numNeg*poolSize hardest and is reproducible', () => {
    const r = rng(2);
    const m = labels(30, 5000);
    const s = Float32Array.from(m, () => r() * 10 - 5);
    const a = sampler.hardNegative(m, s, {}, 42);
    const b = sampler.hardNegative(m, s, {}, 42);
    const c = sampler.hardNegative(m, s, {}, 43);
    expect(arr(a.positive)).toEqual(arr(b.positive));
    expect(arr(a.negative)).toEqual(arr(b.negative));
    expect(arr(a.negative)).not.toEqual(arr(c.negative));
    // pool = 44 * 20 = 880 hardest background anchors: every sampled score is >= the 880th.
    const bgScores = arr(s.subarray(30)).sort((x, y) => y - x);
    const cut = bgScores[879];
    for (const i of a.negative) expect(s[i]).toBeGreaterThanOrEqual(cut);
    // Sorted ascending, no duplicates.
    for (let i = 1; i < a.negative.length; i++) expect(a.negative[i]).toBeGreaterThan(a.negative[i - 1]);
  });

  it('breaks score ties by index when building the pool', () => {
    // No foreground: numNeg 16, pool 16 * 20 = 320; all scores equal -> pool = the first 320.
    const m = labels(0, 1000);
    const { negative } = sampler.hardNegative(m, new Float32Array(1000), {}, 9);
    expect(negative.length).toBe(16);
    for (const i of negative) expect(i).toBeLessThan(320);
    // poolSize 1: the 16 hardest exactly.
    const s = Float32Array.from({ length: 1000 }, (_, i) => i);
    const h = sampler.hardNegative(m, s, { poolSize: 1 }, 9);
    expect(arr(h.negative)).toEqual(Array.from({ length: 16 }, (_, i) => 984 + i));
  });

  it('picks positives uniformly at random', () => {
    // 40 foreground anchors, 19 drawn per call: over 400 seeds each is drawn about 190 times.
    const m = labels(40, 100);
    const s = new Float32Array(140);
    const hits = new Array(40).fill(0);
    for (let seed = 0; seed < 400; seed++) for (const i of sampler.hardNegative(m, s, {}, seed).positive) hits[i]++;
    for (const h of hits) expect(h).toBeGreaterThan(130);
    for (const h of hits) expect(h).toBeLessThan(250);
  });

  it('rejects bad options', () => {
    const m = labels(1, 2);
    expect(() => sampler.hardNegative(m, new Float32Array(3), { positiveFraction: 0 })).toThrow(/positiveFraction/);
    expect(() => sampler.hardNegative(m, new Float32Array(2))).toThrow(/3 matched labels but 2 scores/);
  });
});
