import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/tensor.js';
import { anchors, detector } from '../../src/detection/index.js';
import type { Triple } from '../../src/tensor.js';
import { refDecode, refIou, rng } from './helpers.js';

const arr = (a: ArrayLike<number>) => Array.from(a);

describe('detector.postprocess: hand-worked', () => {
  // Anchors [-2,2], [2,6], [6,10] in x and [-2,2] in y, z (image 12 x 4 x 4), two classes.
  const lv = anchors.generate({ imageSize: [12, 4, 4], featureMapSizes: [[3, 1, 1]], baseAnchorShapes: [[4, 4, 4]] });
  const size: Triple = [12, 4, 4];
  // logits [anchor][class]: anchor 0 (2.5, 3), anchor 1 (2, -9), anchor 2 (-9, 4).
  const cls = Tensor.from(new Float32Array([2.5, 3, 2, -9, -9, 4]), [1, 1, 1, 3, 2]);
  // Zero regression except anchor 2, moved by dx = 10 (40 voxels): [46, 50] clips to [12, 12] -> empty.
  const regData = new Float32Array(18);
  regData[12] = 10;
  const reg = Tensor.from(regData, [1, 1, 1, 3, 6]);

  it('scores, decodes, clips, drops empty boxes and runs per-class NMS', () => {
    const [d] = detector.postprocess({ clsLogits: [cls], boxRegression: [reg] }, lv, size, { numClasses: 2 });
    // Candidates: (a0,c1) sigmoid(3) = 0.952574, (a0,c0) sigmoid(2.5) = 0.924142,
    // (a1,c0) sigmoid(2) = 0.880797, (a2,c1) sigmoid(4) = 0.982014 but its box is empty after
    // clipping. Anchor 0 clips to [0,0,0,2,2,2], anchor 1 to [2,0,0,6,2,2]. The same box with two
    // labels survives per-class NMS; a0 and a1 (class 0) do not overlap.
    expect(arr(d.labels)).toEqual([1, 0, 0]);
    expect(d.scores[0]).toBeCloseTo(0.952574, 6);
    expect(d.scores[1]).toBeCloseTo(0.924142, 6);
    expect(d.scores[2]).toBeCloseTo(0.880797, 6);
    expect(arr(d.boxes)).toEqual([0, 0, 0, 2, 2, 2, 0, 0, 0, 2, 2, 2, 2, 0, 0, 6, 2, 2]);
  });

  it('applies scoreThresh, topk per level and detectionsPerImg', () => {
    const h = { clsLogits: [cls], boxRegression: [reg] };
    // Only scores > 0.93: (a0,c1) and the (empty) a2 box.
    expect(arr(detector.postprocess(h, lv, size, { numClasses: 2, scoreThresh: 0.93 })[0].labels)).toEqual([1]);
    // topk 1: only (a2,c1) survives selection, and it is dropped as empty.
    expect(detector.postprocess(h, lv, size, { numClasses: 2, topkCandidatesPerLevel: 1 })[0].scores.length).toBe(0);
    expect(arr(detector.postprocess(h, lv, size, { numClasses: 2, detectionsPerImg: 2 })[0].labels)).toEqual([1, 0]);
    // All below threshold: empty result with the right types.
    const none = detector.postprocess(h, lv, size, { numClasses: 2, scoreThresh: 0.999 })[0];
    expect(none.boxes).toBeInstanceOf(Float32Array);
    expect(none.labels).toBeInstanceOf(Int32Array);
    expect(none.boxes.length).toBe(0);
  });

  it('breaks score ties by the lower anchor index in the per-level top-k', () => {
    // 64 anchors along x with equal logits: topk 5 must take anchors 0..4 (here with no NMS
    // between them: 2-voxel anchors 4 voxels apart never overlap).
    const many = anchors.generate({ imageSize: [256, 4, 4], featureMapSizes: [[64, 1, 1]], baseAnchorShapes: [[2, 2, 2]] });
    const c = Tensor.from(new Float32Array(64).fill(1), [1, 1, 1, 64, 1]);
    const r = Tensor.from(new Float32Array(64 * 6), [1, 1, 1, 64, 6]);
    const [d] = detector.postprocess({ clsLogits: [c], boxRegression: [r] }, many, [256, 4, 4], { topkCandidatesPerLevel: 5, minSize: 0 });
    // Anchor i covers x in [4i - 1, 4i + 1], clipped at 0 for anchor 0.
    expect(arr(d.boxes.filter((_, i) => i % 6 === 3))).toEqual([1, 5, 9, 13, 17]);
  });

  it('suppresses overlapping boxes of the same class at nmsThresh', () => {
    // One class, anchors widened to 8 voxels in x: [-4,4], [0,8], [4,12] -> clipped [0,4], [0,8], [4,12].
    const wide = anchors.generate({ imageSize: [12, 4, 4], featureMapSizes: [[3, 1, 1]], baseAnchorShapes: [[8, 4, 4]] });
    const c = Tensor.from(new Float32Array([1, 3, 2]), [1, 1, 1, 3, 1]);
    const r = Tensor.from(new Float32Array(18), [1, 1, 1, 3, 6]);
    // Order a1 (3), a2 (2), a0 (1). IoU(a1 [0,8], a2 [4,12]) = 4/12 = 0.333 > 0.22: a2 suppressed.
    // IoU(a1, a0 [0,4]) = 4/8 = 0.5: a0 suppressed.
    const [d] = detector.postprocess({ clsLogits: [c], boxRegression: [r] }, wide, size);
    expect(arr(d.boxes)).toEqual([0, 0, 0, 8, 2, 2]);
    // Threshold 0.4 keeps a2 (0.333) but not a0 (0.5).
    expect(detector.postprocess({ clsLogits: [c], boxRegression: [r] }, wide, size, { nmsThresh: 0.4 })[0].scores.length).toBe(2);
  });
});

/** Float64 reference of the whole pipeline for one image. */
function refPostprocess(
  lv: Float32Array[], cls: Float32Array[], reg: Float32Array[], b: number, C: number, size: Triple,
  o = { thresh: 0.02, topk: 1000, nms: 0.22, det: 100 },
) {
  const boxesOut: number[][] = [];
  const scores: number[] = [];
  const labels: number[] = [];
  for (let l = 0; l < lv.length; l++) {
    const n = lv[l].length / 6;
    const cand: [number, number][] = [];
    for (let i = 0; i < n * C; i++) {
      const s = Math.fround(1 / (1 + Math.exp(-cls[l][b * n * C + i])));
      if (s > Math.fround(o.thresh)) cand.push([s, i]);
    }
    cand.sort((p, q) => q[0] - p[0] || p[1] - q[1]);
    for (const [s, i] of cand.slice(0, o.topk)) {
      const a = Math.floor(i / C);
      const bx = refDecode(lv[l], a, reg[l], b * n + a).map((v) => Math.fround(v));
      for (let k = 0; k < 3; k++) {
        bx[k] = Math.min(Math.max(bx[k], 0), size[k]);
        bx[k + 3] = Math.min(Math.max(bx[k + 3], 0), size[k]);
      }
      if ([0, 1, 2].some((k) => !(bx[k + 3] >= bx[k] + 1))) continue;
      boxesOut.push(bx);
      scores.push(s);
      labels.push(i % C);
    }
  }
  const order = scores.map((_, i) => i).sort((p, q) => scores[q] - scores[p] || p - q);
  const flat = boxesOut.flat();
  const kept: number[] = [];
  for (const i of order) {
    if (kept.length >= o.det) break;
    if (kept.some((k) => labels[k] === labels[i] && refIou(flat, k, flat, i) > o.nms)) continue;
    kept.push(i);
  }
  return { boxes: kept.flatMap((k) => boxesOut[k]), scores: kept.map((k) => scores[k]), labels: kept.map((k) => labels[k]) };
}

describe('detector.postprocess: against a float64 reference', () => {
  it('random three-level head outputs, two images of different sizes', async () => {
    const r = rng(99);
    const C = 2, A = 3, N = 2;
    const fms: Triple[] = [[8, 8, 4], [4, 4, 2], [2, 2, 1]];
    const lv = anchors.generate({ imageSize: [32, 32, 16], featureMapSizes: fms, baseAnchorShapes: [[6, 8, 4], [8, 6, 5], [10, 10, 6]] });
    const cls = fms.map((f) => Float32Array.from({ length: N * f[0] * f[1] * f[2] * A * C }, () => r() * 8 - 6));
    const reg = fms.map((f) => Float32Array.from({ length: N * f[0] * f[1] * f[2] * A * 6 }, () => r() * 1.6 - 0.8));
    const heads = {
      clsLogits: cls.map((x, l) => Tensor.from(x, [N, fms[l][2], fms[l][1], fms[l][0], A * C])),
      boxRegression: reg.map((x, l) => Tensor.from(x, [N, fms[l][2], fms[l][1], fms[l][0], A * 6])),
    };
    const sizes: Triple[] = [[32, 32, 16], [28, 30, 12]];
    for (const o of [
      { thresh: 0.02, topk: 1000, nms: 0.22, det: 100 },
      { thresh: 0.3, topk: 20, nms: 0.5, det: 15 },
    ]) {
      const opts = { numClasses: C, scoreThresh: o.thresh, topkCandidatesPerLevel: o.topk, nmsThresh: o.nms, detectionsPerImg: o.det };
      const got = detector.postprocess(heads, lv, sizes, opts);
      const gotAsync = await detector.postprocessAsync(heads, lv, sizes, opts);
      for (let b = 0; b < N; b++) {
        const ref = refPostprocess(lv, cls, reg, b, C, sizes[b], o);
        expect(ref.scores.length).toBeGreaterThan(5);
        expect(arr(got[b].labels)).toEqual(ref.labels);
        expect(arr(got[b].scores)).toEqual(ref.scores);
        expect(arr(got[b].boxes)).toEqual(ref.boxes);
        expect(arr(gotAsync[b].boxes)).toEqual(ref.boxes);
        // Property: boxes within the image, >= 1 voxel, same-class pairwise IoU <= nms threshold.
        const bx = got[b].boxes;
        for (let i = 0; i < bx.length / 6; i++) {
          for (let k = 0; k < 3; k++) {
            expect(bx[6 * i + k]).toBeGreaterThanOrEqual(0);
            expect(bx[6 * i + k + 3]).toBeLessThanOrEqual(sizes[b][k]);
            expect(bx[6 * i + k + 3] - bx[6 * i + k]).toBeGreaterThanOrEqual(1);
          }
          for (let j = i + 1; j < bx.length / 6; j++)
            if (got[b].labels[i] === got[b].labels[j]) expect(refIou(bx, i, bx, j)).toBeLessThanOrEqual(o.nms);
        }
      }
    }
  });

  it('rejects bad inputs', () => {
    const lv = anchors.generate({ imageSize: [12, 4, 4], featureMapSizes: [[3, 1, 1]], baseAnchorShapes: [[4, 4, 4]] });
    const c = Tensor.from(new Float32Array(3), [1, 1, 1, 3, 1]);
    const r = Tensor.from(new Float32Array(18), [1, 1, 1, 3, 6]);
    const r5 = Tensor.from(new Float32Array(15), [1, 1, 1, 3, 5]);
    expect(() => detector.postprocess({ clsLogits: [c], boxRegression: [r5] }, lv, [12, 4, 4])).toThrow(/expected A\*6 = 6/);
    expect(() => detector.postprocess({ clsLogits: [c], boxRegression: [r] }, lv, [[12, 4, 4], [12, 4, 4]])).toThrow(/2 image sizes for a batch of 1/);
    expect(() => detector.postprocess({ clsLogits: [c], boxRegression: [r] }, [lv[0].subarray(0, 12)], [12, 4, 4])).toThrow(/has 2 anchors/);
    expect(() => detector.postprocess({ clsLogits: [c], boxRegression: [r] }, lv, [12, 0, 4])).toThrow(/image size must be positive/);
  });
});
