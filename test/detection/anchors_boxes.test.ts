import { describe, expect, it } from 'vitest';
import { anchors, boxes } from '../../src/detection/index.js';
import { randomBoxes, refIou, rng, refDecode } from './helpers.js';

const arr = (a: ArrayLike<number>) => Array.from(a);

describe('anchors.generate', () => {
  it('places anchors like MONAI AnchorGeneratorWithAnchorShape (hand-worked)', () => {
    // imageSize (8, 8, 4), level 0 feature map (4, 4, 2): stride 8//4 = 2, 8//4 = 2, 4//2 = 2.
    // Base shape (8, 6, 5) at scale 1: half sizes 4, 3, 2.5 -> corners -4..4, -3..3, and
    // -round(2.5) = -2 .. round(2.5) = 2 (half to even), so the anchor is only 4 deep in z.
    // Level 1, feature map (2, 2, 1), scale 2: shape (16, 12, 10), corners -8..8, -6..6, -5..5,
    // stride (4, 4, 4).
    const lv = anchors.generate({ imageSize: [8, 8, 4], featureMapSizes: [[4, 4, 2], [2, 2, 1]], baseAnchorShapes: [[8, 6, 5]] });
    expect(lv.length).toBe(2);
    expect(lv[0].length).toBe(4 * 4 * 2 * 6);
    expect(lv[1].length).toBe(2 * 2 * 1 * 6);
    const box = (l: number, i: number) => arr(lv[l].subarray(6 * i, 6 * i + 6));
    expect(box(0, 0)).toEqual([-4, -3, -2, 4, 3, 2]); // centre (0, 0, 0)
    expect(box(0, 1)).toEqual([-2, -3, -2, 6, 3, 2]); // index 1 = (ix 1, iy 0, iz 0): x fastest, centre (2, 0, 0)
    expect(box(0, 4)).toEqual([-4, -1, -2, 4, 5, 2]); // index 4 = (0, 1, 0): centre (0, 2, 0)
    expect(box(0, 16)).toEqual([-4, -3, 0, 4, 3, 4]); // index 16 = (0, 0, 1): centre (0, 0, 2)
    expect(box(0, 31)).toEqual([2, 3, 0, 10, 9, 4]); // last = (3, 3, 1): centre (6, 6, 2)
    expect(box(1, 3)).toEqual([-4, -2, -5, 12, 10, 5]); // level 1 index 3 = (1, 1, 0): centre (4, 4, 0)
  });

  it('orders base shapes fastest and rounds half to even on each side', () => {
    // Shapes (3, 5, 7): halves 1.5, 2.5, 3.5 round to 2, 2, 4 -> [-2, -2, -4, 2, 2, 4].
    // Shape (2, 2, 2): [-1, -1, -1, 1, 1, 1]. Two shapes -> A = 2, location-major.
    const [l0] = anchors.generate({ imageSize: [4, 2, 2], featureMapSizes: [[2, 1, 1]], baseAnchorShapes: [[3, 5, 7], [2, 2, 2]] });
    expect(arr(l0)).toEqual([
      -2, -2, -4, 2, 2, 4, // location (0,0,0), shape 0
      -1, -1, -1, 1, 1, 1, // location (0,0,0), shape 1
      0, -2, -4, 4, 2, 4, // location (1,0,0) centre x = 2, shape 0
      1, -1, -1, 3, 1, 1, // location (1,0,0), shape 1
    ]);
    expect(anchors.anchorsPerLocation(l0)).toBe(2);
  });

  it('uses floor division for the stride and explicit scales when given', () => {
    // imageSize 10 with 3 locations: stride 10 // 3 = 3, centres 0, 3, 6.
    const [l0] = anchors.generate({ imageSize: [10, 10, 10], featureMapSizes: [[3, 1, 1]], baseAnchorShapes: [[2, 2, 2]], featureMapScales: [3] });
    // scale 3: shape 6 -> corners -3..3
    expect(arr(l0.filter((_, i) => i % 6 === 0))).toEqual([-3, 0, 3]);
    expect(arr(l0.subarray(0, 6))).toEqual([-3, -3, -3, 3, 3, 3]);
  });

  it('rejects bad settings with clear errors', () => {
    expect(() => anchors.generate({ imageSize: [8, 8, 4], featureMapSizes: [[16, 4, 2]], baseAnchorShapes: [[4, 4, 4]] })).toThrow(/feature map size 16/);
    expect(() => anchors.generate({ imageSize: [8, 8, 4], featureMapSizes: [[4, 4, 2]], baseAnchorShapes: [[4, -1, 4]] })).toThrow(/positive/);
    expect(() => anchors.generate({ imageSize: [8, 8, 4], featureMapSizes: [], baseAnchorShapes: [[4, 4, 4]] })).toThrow(/at least one level/);
  });
});

describe('boxes.iou / giou', () => {
  const a = [0, 0, 0, 2, 2, 2]; // volume 8
  it('hand-worked IoU values', () => {
    const b = [
      1, 1, 1, 3, 3, 3, // overlap 1x1x1 = 1, union 15 -> 1/15
      0, 0, 0, 1, 1, 1, // inside a: 1 / 8
      2, 0, 0, 4, 2, 2, // touches a's face: [0,2) and [2,4) do not overlap -> 0
      10, 10, 10, 11, 11, 11, // disjoint -> 0
      0, 0, 0, 2, 2, 2, // identical -> 8 / (8 + 2^-23)
    ];
    const r = boxes.iou(a, b);
    expect(r.length).toBe(5);
    expect(r[0]).toBeCloseTo(1 / 15, 6);
    expect(r[1]).toBeCloseTo(0.125, 6);
    expect(r[2]).toBe(0);
    expect(r[3]).toBe(0);
    expect(r[4]).toBeCloseTo(1, 6);
  });

  it('hand-worked GIoU values', () => {
    const b = [
      1, 1, 1, 3, 3, 3, // iou 1/15, enclosure [0,3]^3 = 27, union 15: 1/15 - 12/27 = -0.377778
      2, 0, 0, 4, 2, 2, // touching: iou 0, enclosure 4*2*2 = 16 = union -> 0
      4, 0, 0, 6, 2, 2, // gap of 2: enclosure 24, union 16 -> -8/24 = -1/3
    ];
    const r = boxes.giou(a, b);
    expect(r[0]).toBeCloseTo(1 / 15 - 12 / 27, 6);
    expect(r[1]).toBeCloseTo(0, 6);
    expect(r[2]).toBeCloseTo(-1 / 3, 6);
  });

  it('is symmetric, in [0, 1], 1 on the diagonal and matches a float64 reference', () => {
    const r = rng(7);
    const A = randomBoxes(r, 30);
    const B = randomBoxes(r, 20);
    const ab = boxes.iou(A, B);
    const ba = boxes.iou(B, A);
    for (let i = 0; i < 30; i++)
      for (let j = 0; j < 20; j++) {
        const v = ab[i * 20 + j];
        expect(v).toBe(ba[j * 30 + i]);
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
        expect(v).toBeCloseTo(refIou(A, i, B, j), 6);
      }
    const aa = boxes.iou(A, A);
    for (let i = 0; i < 30; i++) expect(aa[i * 30 + i]).toBeCloseTo(1, 5);
    const g = boxes.giou(A, B);
    for (let i = 0; i < g.length; i++) {
      expect(g[i]).toBeLessThanOrEqual(ab[i] + 1e-6);
      expect(g[i]).toBeGreaterThanOrEqual(-1);
    }
  });

  it('handles empty inputs and rejects bad boxes', () => {
    expect(boxes.iou([], a).length).toBe(0);
    expect(boxes.iou(a, new Float32Array(0)).length).toBe(0);
    expect(() => boxes.iou([0, 0, 0, 1, 1, 1, 0], a)).toThrow(/multiple of 6/);
    expect(() => boxes.iou([0, 0, 0, 1, -1, 1], a)).toThrow(/y2 < y1/);
    expect(() => boxes.iou([0, NaN, 0, 1, 1, 1], a)).toThrow(/non-finite/);
  });
});

describe('boxes.clip / removeSmall', () => {
  it('clamps to [0, size] per axis and removes boxes thinner than 1 voxel', () => {
    // imageSize (4, 10, 10): x clamps to [0, 4], y and z to [0, 10].
    const c = boxes.clip([-1, 2, 3, 5, 12, 4, 1, 1, 1, 2, 2, 2], [4, 10, 10]);
    expect(arr(c)).toEqual([0, 2, 3, 4, 10, 4, 1, 1, 1, 2, 2, 2]);
    // A box completely outside becomes empty on that axis.
    const out = boxes.clip([6, 0, 0, 9, 1, 1], [4, 10, 10]);
    expect(arr(out)).toEqual([4, 0, 0, 4, 1, 1]);
    const r = boxes.removeSmall([
      0, 0, 0, 1, 1, 1, // exactly 1 voxel: kept (max >= min + 1)
      0, 0, 0, 0.5, 2, 2, // 0.5 wide in x: removed
      0, 0, 0, 2, 2, 0.99, // 0.99 deep in z: removed
      4, 0, 0, 4, 1, 1, // empty: removed
      1, 2, 3, 4, 5, 6, // kept
    ]);
    expect(arr(r.keep)).toEqual([0, 4]);
    expect(arr(r.boxes)).toEqual([0, 0, 0, 1, 1, 1, 1, 2, 3, 4, 5, 6]);
    expect(() => boxes.clip([0, 0, 0, 1, 1], [4, 4, 4])).toThrow(/multiple of 6/);
  });
});

describe('boxes.encode / decode', () => {
  it('hand-worked encoding', () => {
    // Anchor [0,0,0,4,4,4]: centre 2, size 4 on every axis.
    // GT [1,2,3,3,6,5]: centres (2, 4, 4), sizes (2, 4, 2).
    // dx = (2-2)/4 = 0, dy = (4-2)/4 = 0.5, dz = 0.5, dw = log(2/4), dh = log(1) = 0, dd = log(0.5).
    const d = boxes.encode([0, 0, 0, 4, 4, 4], [1, 2, 3, 3, 6, 5]);
    const l = Math.log(0.5);
    [0, 0.5, 0.5, l, 0, l].forEach((v, i) => expect(d[i]).toBeCloseTo(v, 6));
    // Weights multiply each term: (10, 10, 10, 5, 5, 5).
    const w = boxes.encode([0, 0, 0, 4, 4, 4], [1, 2, 3, 3, 6, 5], [10, 10, 10, 5, 5, 5]);
    [0, 5, 5, 5 * l, 0, 5 * l].forEach((v, i) => expect(w[i]).toBeCloseTo(v, 5));
  });

  it('clamps the decoded log-size at log(1000/16)', () => {
    // dw = 10 is clamped to log(62.5): size 62.5 * 4 = 250 around centre 2 -> [-123, 127].
    const b = boxes.decode([0, 0, 0, 4, 4, 4], [0, 0, 0, 10, 0, -1]);
    expect(b[0]).toBeCloseTo(-123, 4);
    expect(b[3]).toBeCloseTo(127, 4);
    // dd = -1: size 4 e^-1 = 1.4715 around 2.
    expect(b[5] - b[2]).toBeCloseTo(4 * Math.exp(-1), 5);
  });

  it('decode(encode(gt)) = gt and matches a float64 reference decode', () => {
    const r = rng(3);
    const A = randomBoxes(r, 50, 60, 2, 20);
    const G = randomBoxes(r, 50, 60, 1, 30);
    for (const w of [[1, 1, 1, 1, 1, 1], [10, 10, 10, 5, 5, 5]] as const) {
      const d = boxes.encode(A, G, [...w] as never);
      const back = boxes.decode(A, d, [...w] as never);
      for (let i = 0; i < G.length; i++) expect(back[i]).toBeCloseTo(G[i], 3);
      for (let i = 0; i < 50; i++) {
        const ref = refDecode(A, i, d, i, [...w]);
        for (let k = 0; k < 6; k++) expect(back[6 * i + k]).toBeCloseTo(ref[k], 3);
      }
    }
  });

  it('rejects zero-size boxes, mismatched lengths and bad weights', () => {
    expect(() => boxes.encode([0, 0, 0, 4, 4, 4], [1, 1, 1, 1, 2, 2])).toThrow(/GT box 0 has size 0/);
    expect(() => boxes.encode([0, 0, 0, 4, 4, 4], [])).toThrow(/pairwise/);
    expect(() => boxes.decode([0, 0, 0, 4, 4, 4], [0, 0, 0, 0, 0])).toThrow(/6 per anchor/);
    expect(() => boxes.decode([0, 0, 0, 4, 4, 4], [0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 1, 1])).toThrow(/weights/);
    expect(() => boxes.decode([0, 0, 0, 4, 4, 4], [0, NaN, 0, 0, 0, 0])).toThrow(/not finite/);
  });
});

describe('boxes.nms / batchedNms', () => {
  // A [0,0,0,10,10,10] (vol 1000), B = A shifted by 1 in x (IoU(A,B) = 900/1100 = 0.818),
  // C far away, D = lower half of A (IoU(A,D) = 500/1000 = 0.5, IoU(B,D) = 450/1050 = 0.4286).
  const bx = [0, 0, 0, 10, 10, 10, 1, 0, 0, 11, 10, 10, 20, 20, 20, 30, 30, 30, 0, 0, 0, 10, 10, 5];
  const sc = [0.9, 0.8, 0.7, 0.95];

  it('hand-worked greedy NMS with a strict ">" threshold', () => {
    // Order D(.95) A(.9) B(.8) C(.7). thr 0.5: A has IoU 0.5 with D, not > 0.5, kept; B is
    // suppressed by A (0.818); C kept.
    expect(arr(boxes.nms(bx, sc, 0.5))).toEqual([3, 0, 2]);
    // thr 0.49: A suppressed by D; B's IoU with D is 0.4286 <= 0.49, kept.
    expect(arr(boxes.nms(bx, sc, 0.49))).toEqual([3, 1, 2]);
    expect(arr(boxes.nms(bx, sc, 0.5, 2))).toEqual([3, 0]);
    expect(arr(boxes.nms(bx, sc, 0.5, 0))).toEqual([]);
  });

  it('threshold 0: touching boxes (IoU exactly 0) survive, any overlap is suppressed', () => {
    // [0,2) and [2,4) touch without overlapping: IoU 0 is not > 0. [3.9,6) overlaps [2,4).
    const t = [0, 0, 0, 2, 2, 2, 2, 0, 0, 4, 2, 2, 3.9, 0, 0, 6, 2, 2];
    expect(arr(boxes.nms(t, [0.9, 0.8, 0.7], 0))).toEqual([0, 1]);
    // IoU(1, 2) = 0.1*2*2 / (8 + 8.4 - 0.4) = 0.025: suppressed at 0.02, kept at 0.03.
    expect(arr(boxes.nms(t, [0.9, 0.8, 0.7], 0.02))).toEqual([0, 1]);
    expect(arr(boxes.nms(t, [0.9, 0.8, 0.7], 0.03))).toEqual([0, 1, 2]);
  });

  it('breaks score ties by index and handles empty input', () => {
    const same = [0, 0, 0, 2, 2, 2, 0, 0, 0, 2, 2, 2, 5, 5, 5, 6, 6, 6];
    expect(arr(boxes.nms(same, [0.5, 0.5, 0.5], 0.1))).toEqual([0, 2]);
    expect(arr(boxes.nms([], [], 0.5))).toEqual([]);
  });

  it('batched NMS only suppresses within a class', () => {
    // Labels: A and B differ, so B survives A; D (label 0) still suppresses nothing at 0.5.
    expect(arr(boxes.batchedNms(bx, sc, [0, 1, 0, 0], 0.5))).toEqual([3, 0, 1, 2]);
    expect(arr(boxes.batchedNms(bx, sc, [0, 0, 0, 0], 0.5))).toEqual([3, 0, 2]);
    // maxKeep applies to the merged, score-sorted result.
    expect(arr(boxes.batchedNms(bx, sc, [0, 1, 0, 0], 0.5, 3))).toEqual([3, 0, 1]);
  });

  it('property: kept boxes have pairwise IoU <= threshold and every dropped box overlaps a better kept one', () => {
    const r = rng(11);
    for (const thr of [0.1, 0.22, 0.5]) {
      const B = randomBoxes(r, 200, 50, 4, 20);
      const S = Float32Array.from({ length: 200 }, () => r());
      const keep = boxes.nms(B, S, thr);
      const kept = new Set(keep);
      for (let i = 0; i < keep.length; i++) {
        if (i > 0) expect(S[keep[i]]).toBeLessThanOrEqual(S[keep[i - 1]]);
        for (let j = i + 1; j < keep.length; j++) expect(refIou(B, keep[i], B, keep[j])).toBeLessThanOrEqual(thr + 1e-9);
      }
      for (let i = 0; i < 200; i++) {
        if (kept.has(i)) continue;
        expect(keep.some((k) => S[k] >= S[i] && refIou(B, k, B, i) > thr)).toBe(true);
      }
    }
  });

  it('rejects NaN scores and mismatched lengths', () => {
    expect(() => boxes.nms(bx, [0.9, NaN, 0.7, 0.95], 0.5)).toThrow(/NaN/);
    expect(() => boxes.nms(bx, [0.9], 0.5)).toThrow(/4 boxes but 1 scores/);
    expect(() => boxes.batchedNms(bx, sc, [0, 1], 0.5)).toThrow(/one score and one label/);
    expect(() => boxes.nms(bx, sc, -0.1)).toThrow(/>= 0/);
  });
});
