import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/tensor.js';
import { anchors, detector, match } from '../../src/detection/index.js';
import type { DetectorLossOptions, ImageTargets } from '../../src/detection/index.js';
import { refDecode, rng, sigmoid } from './helpers.js';

// Head outputs of one level from flat data in [N, D1, D2, D3, channels] order.
function head(data: number[] | Float64Array, shape: number[], f64 = false): Tensor {
  return Tensor.from(f64 ? Float64Array.from(data) : Float32Array.from(data), shape);
}

const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
function focal(x: number, t: number, gamma = 2): number {
  const p = sigmoid(x);
  return t ? (1 - p) ** gamma * softplus(-x) : p ** gamma * softplus(x);
}
const bce = (x: number, t: number) => (t ? softplus(-x) : softplus(x));
function smoothL1(d: number, beta = 1 / 9): number {
  return Math.abs(d) < beta ? (0.5 * d * d) / beta : Math.abs(d) - 0.5 * beta;
}
function refGiou(p: number[], g: ArrayLike<number>, j: number): number {
  let inter = 1, vp = 1, vg = 1, encl = 1;
  for (let k = 0; k < 3; k++) {
    inter *= Math.max(0, Math.min(p[k + 3], g[6 * j + k + 3]) - Math.max(p[k], g[6 * j + k]));
    vp *= p[k + 3] - p[k];
    vg *= g[6 * j + k + 3] - g[6 * j + k];
    encl *= Math.max(p[k + 3], g[6 * j + k + 3]) - Math.min(p[k], g[6 * j + k]);
  }
  const uni = vp + vg - inter;
  const eps = 2 ** -23;
  return inter / (uni + eps) - (encl - uni) / (encl + eps);
}

describe('detector.loss: hand-worked case', () => {
  // Three 4-voxel anchors along x (centres 0, 4, 8), one class. GT [-1,-2,-2,3,2,2] matches
  // anchor 0 only (see match tests: IoUs 0.6, 0.142857, 0; threshold 0.561). The sampler takes
  // the single positive and both negatives (numNeg = min(#bg = 2, max(16, 2))).
  const lv = anchors.generate({ imageSize: [12, 4, 4], featureMapSizes: [[3, 1, 1]], baseAnchorShapes: [[4, 4, 4]] });
  const gt: ImageTargets = { boxes: new Float32Array([-1, -2, -2, 3, 2, 2]), labels: new Int32Array([0]) };
  const cls = head([0.5, -1, 2], [1, 1, 1, 3, 1]);
  const reg = head([0.1, 0.05, 0, 0, 0, -0.2, ...new Array(12).fill(0)], [1, 1, 1, 3, 6]);

  it('focal + smooth L1', () => {
    const r = detector.loss({ clsLogits: [cls], boxRegression: [reg] }, lv, [gt]);
    // Focal (gamma 2, no alpha):
    //   anchor 0, t=1, x=0.5: p=0.622459, (1-p)^2 * -log p = 0.142537 * 0.474077 = 0.067574
    //   anchor 1, t=0, x=-1: p=0.268941, p^2 * -log(1-p) = 0.072329 * 0.313262 = 0.022658
    //   anchor 2, t=0, x=2:  p=0.880797, p^2 * -log(1-p) = 0.775803 * 2.126928 = 1.650080
    //   mean over 3 anchors x 1 class = 0.580103
    expect(r.cls).toBeCloseTo(0.580103, 5);
    // Encoded target of anchor 0 (centre 0, size 4) for the GT (centre 1, size 4): (0.25,0,0,0,0,0).
    // Smooth L1 (beta 1/9) of pred - target = (-0.15, 0.05, 0, 0, 0, -0.2):
    //   0.15 - 1/18 = 0.094444; 0.5*0.05^2*9 = 0.01125; 0.2 - 1/18 = 0.144444 -> sum 0.250139 / 6 = 0.041690
    expect(r.box).toBeCloseTo(0.04169, 5);
    expect(r.total).toBeCloseTo(0.580103 + 0.04169, 5);
    expect([r.numSampledPositives, r.numSampledNegatives, r.numForeground]).toEqual([1, 2, 1]);
    // Box gradients: sign(d)/6 where |d| >= beta, d/beta/6 inside: (-1/6, 0.05*9/6, 0, 0, 0, -1/6).
    const g = r.boxGrads[0].toArray();
    [-1 / 6, 0.075, 0, 0, 0, -1 / 6].forEach((v, i) => expect(g[i]).toBeCloseTo(v, 6));
    for (let i = 6; i < 18; i++) expect(g[i]).toBe(0); // background anchors get no box gradient
    expect(r.clsGrads[0].shape).toEqual([1, 1, 1, 3, 1]);
    expect(r.boxGrads[0].shape).toEqual([1, 1, 1, 3, 6]);
  });

  it('BCE (the MONAI tutorial choice) + GIoU', () => {
    const r = detector.loss({ clsLogits: [cls], boxRegression: [reg] }, lv, [gt], { clsLoss: 'bce', boxLoss: 'giou' });
    // BCE: 0.474077 + 0.313262 + 2.126928 = 2.914267 / 3 = 0.971422
    expect(r.cls).toBeCloseTo(0.971422, 5);
    // Decoded anchor 0: x [-1.6, 2.4], y [-1.8, 2.2], z +-2e^-0.2 = +-1.637462.
    // GT [-1,-2,-2,3,2,2]: inter 3.4 * 3.8 * 3.274923 = 42.311; vol pred 4*4*3.274923 = 52.399,
    // vol gt 64, union 74.088 -> IoU 0.571093; enclosure 4.6 * 4.2 * 4 = 77.28:
    // GIoU = 0.571093 - (77.28 - 74.088)/77.28 = 0.529789 -> loss 1 - GIoU = 0.470211 (mean over 1 fg).
    expect(r.box).toBeCloseTo(0.470211, 4);
  });

  it('alpha weighting and the class loss weight', () => {
    const r = detector.loss({ clsLogits: [cls], boxRegression: [reg] }, lv, [gt], { focalAlpha: 0.25, clsLossWeight: 2 });
    // alpha_t = 0.25 for the positive, 0.75 for negatives: (0.25*0.067574 + 0.75*(0.022658 + 1.650080)) / 3
    const expected = (0.25 * 0.067574 + 0.75 * (0.022658 + 1.65008)) / 3;
    expect(r.cls).toBeCloseTo(expected, 5);
    expect(r.total).toBeCloseTo(2 * expected + 0.04169, 5);
  });
});

// A small two-level configuration: A = 2 shapes, 2 classes.
function smallConfig(seed: number, f64: boolean, N = 2) {
  const r = rng(seed);
  const lv = anchors.generate({ imageSize: [16, 16, 8], featureMapSizes: [[4, 4, 2], [2, 2, 1]], baseAnchorShapes: [[6, 8, 4], [8, 6, 5]] });
  const A = 2, C = 2;
  const dims = [[2, 4, 4], [1, 2, 2]]; // (D1, D2, D3) = (z, y, x)
  const cls = dims.map((d) => Float64Array.from({ length: N * d[0] * d[1] * d[2] * A * C }, () => r() * 4 - 2));
  const reg = dims.map((d) => Float64Array.from({ length: N * d[0] * d[1] * d[2] * A * 6 }, () => r() * 0.6 - 0.3));
  const shapesC = dims.map((d) => [N, ...d, A * C]);
  const shapesB = dims.map((d) => [N, ...d, A * 6]);
  const targets: ImageTargets[] = [
    { boxes: new Float32Array([2, 3, 1, 9, 10, 6, 8, 6, 2, 14, 13, 7]), labels: new Int32Array([0, 1]) },
    { boxes: new Float32Array(0), labels: new Int32Array(0) },
  ].slice(0, N);
  const make = (c: Float64Array[], b: Float64Array[]) => ({
    clsLogits: c.map((x, i) => head(x, shapesC[i], f64)),
    boxRegression: b.map((x, i) => head(x, shapesB[i], f64)),
  });
  return { lv, cls, reg, make, targets, C };
}

describe('detector.loss: gradients by finite differences (float64)', () => {
  for (const opts of [
    { clsLoss: 'focal', boxLoss: 'smoothl1' },
    { clsLoss: 'bce', boxLoss: 'giou', clsLossWeight: 0.7 },
    { clsLoss: 'focal', boxLoss: 'giou', focalAlpha: 0.25 },
  ] as DetectorLossOptions[]) {
    it(`${opts.clsLoss} + ${opts.boxLoss}`, () => {
      const { lv, cls, reg, make, targets, C } = smallConfig(17, true);
      const o = { ...opts, numClasses: C, seed: 5 };
      const base = detector.loss(make(cls, reg), lv, targets, o);
      expect(base.numForeground).toBeGreaterThan(0);
      expect(base.numSampledNegatives).toBeGreaterThan(0);
      const h = 1e-6;
      let checked = 0;
      for (const [arrays, grads] of [[cls, base.clsGrads], [reg, base.boxGrads]] as const) {
        for (let l = 0; l < arrays.length; l++) {
          const g = grads[l].toArray() as Float64Array;
          expect(grads[l].dtype).toBe('float64');
          for (let i = 0; i < arrays[l].length; i++) {
            const v = arrays[l][i];
            arrays[l][i] = v + h;
            const up = detector.loss(make(cls, reg), lv, targets, o).total;
            arrays[l][i] = v - h;
            const dn = detector.loss(make(cls, reg), lv, targets, o).total;
            arrays[l][i] = v;
            const fd = (up - dn) / (2 * h);
            expect(Math.abs(g[i] - fd)).toBeLessThan(1e-6 + 1e-5 * Math.abs(fd));
            if (g[i] !== 0) checked++;
          }
        }
      }
      expect(checked).toBeGreaterThan(20);
    });
  }
});

describe('detector.loss: against a float64 reference', () => {
  // 12 anchors in total, so every anchor is sampled (#fg <= 19, #bg <= 16) and the loss is
  // deterministic: cls = mean over all anchors and classes, box = mean over foreground anchors.
  const lv = anchors.generate({
    imageSize: [16, 4, 4],
    featureMapSizes: [[4, 1, 1], [2, 1, 1]],
    baseAnchorShapes: [[4, 4, 4], [6, 5, 6]],
  });
  const gt = new Float32Array([1, -1, -2, 6, 3, 2, 9, -2, -1, 15, 2, 3]);
  const labels = new Int32Array([1, 0]);
  const C = 2;

  for (const [clsLoss, boxLoss] of [['focal', 'smoothl1'], ['bce', 'giou']] as const) {
    it(`${clsLoss} + ${boxLoss}`, () => {
      const r = rng(23);
      const counts = lv.map((l) => l.length / 6);
      const x = counts.map((n) => Float32Array.from({ length: n * C }, () => r() * 6 - 3));
      const d = counts.map((n) => Float32Array.from({ length: n * 6 }, () => r() - 0.5));
      const heads = {
        clsLogits: x.map((a, l) => Tensor.from(a, [1, 1, 1, counts[l] / 2, 2 * C])),
        boxRegression: d.map((a, l) => Tensor.from(a, [1, 1, 1, counts[l] / 2, 12])),
      };
      const res = detector.loss(heads, lv, [{ boxes: gt, labels }], { numClasses: C, clsLoss, boxLoss });
      const m = match.atss(lv, gt);
      expect(m.some((v) => v >= 0)).toBe(true);
      let g = 0, clsSum = 0, boxSum = 0, fg = 0;
      for (let l = 0; l < lv.length; l++)
        for (let i = 0; i < counts[l]; i++, g++) {
          for (let c = 0; c < C; c++) {
            const t = m[g] >= 0 && labels[m[g]] === c ? 1 : 0;
            clsSum += clsLoss === 'focal' ? focal(x[l][i * C + c], t) : bce(x[l][i * C + c], t);
          }
          if (m[g] < 0) continue;
          fg++;
          const j = m[g];
          if (boxLoss === 'smoothl1') {
            for (let k = 0; k < 3; k++) {
              const sa = lv[l][6 * i + k + 3] - lv[l][6 * i + k];
              const ca = lv[l][6 * i + k] + sa / 2;
              const sg = gt[6 * j + k + 3] - gt[6 * j + k];
              const cg = gt[6 * j + k] + sg / 2;
              boxSum += smoothL1(d[l][6 * i + k] - Math.fround((cg - ca) / sa));
              boxSum += smoothL1(d[l][6 * i + k + 3] - Math.fround(Math.log(sg / sa)));
            }
          } else {
            boxSum += 1 - refGiou(refDecode(lv[l], i, d[l], i), gt, j);
          }
        }
      expect(res.numForeground).toBe(fg);
      expect(res.numSampledPositives + res.numSampledNegatives).toBe(g);
      expect(res.cls).toBeCloseTo(clsSum / (g * C), 6);
      expect(res.box).toBeCloseTo(boxSum / (boxLoss === 'smoothl1' ? fg * 6 : fg), 6);
    });
  }
});

describe('detector.loss: batches and edge cases', () => {
  it('a batch without any GT has zero box loss and trains on the hardest negatives', () => {
    const { lv, cls, reg, make, C } = smallConfig(31, false);
    const empty = { boxes: new Float32Array(0), labels: new Int32Array(0) };
    // poolSize 1: the 16 negatives with the highest max-logit of each image, no randomness.
    const r = detector.loss(make(cls, reg), lv, [empty, empty], { numClasses: C, sampler: { poolSize: 1 } });
    expect(r.box).toBe(0);
    expect(r.numForeground).toBe(0);
    expect([r.numSampledPositives, r.numSampledNegatives]).toEqual([0, 32]);
    for (const g of r.boxGrads) expect((g.toArray() as Float32Array).every((v) => v === 0)).toBe(true);
    // Reference: per image, rank anchors (levels concatenated) by max logit over classes.
    const counts = lv.map((l) => l.length / 6);
    let sum = 0;
    for (let b = 0; b < 2; b++) {
      const rows: number[][] = [];
      for (let l = 0; l < 2; l++)
        for (let i = 0; i < counts[l]; i++) {
          const off = (b * counts[l] + i) * C;
          rows.push([Math.fround(cls[l][off]), Math.fround(cls[l][off + 1])]);
        }
      rows.sort((p, q) => Math.max(...q) - Math.max(...p));
      for (const row of rows.slice(0, 16)) sum += focal(row[0], 0) + focal(row[1], 0);
    }
    expect(r.cls).toBeCloseTo(sum / (32 * C), 5);
  });

  it('is reproducible for a seed, sync and async agree, and float32 matches float64', async () => {
    const { lv, cls, reg, make, targets, C } = smallConfig(41, false);
    const a = detector.loss(make(cls, reg), lv, targets, { numClasses: C, seed: 3 });
    const b = await detector.lossAsync(make(cls, reg), lv, targets, { numClasses: C, seed: 3 });
    expect(b.total).toBe(a.total);
    expect(Array.from(b.clsGrads[0].toArray() as Float32Array)).toEqual(Array.from(a.clsGrads[0].toArray() as Float32Array));
    const { make: make64 } = smallConfig(41, true);
    const c = detector.loss(make64(cls, reg), lv, targets, { numClasses: C, seed: 3 });
    expect(c.total).toBeCloseTo(a.total, 5);
  });

  it('handles a GT larger than the image and boxes touching the border', () => {
    const { lv, cls, reg, make, C } = smallConfig(43, false, 1);
    const t = [{ boxes: new Float32Array([-5, -5, -5, 30, 30, 20, 0, 0, 0, 4, 4, 3]), labels: new Int32Array([0, 1]) }];
    const r = detector.loss(make(cls, reg), lv, t, { numClasses: C, boxLoss: 'giou' });
    expect(r.numForeground).toBeGreaterThan(0);
    expect(Number.isFinite(r.total)).toBe(true);
  });

  it('rejects bad inputs with clear errors', () => {
    const { lv, cls, reg, make, targets, C } = smallConfig(47, false);
    const h = make(cls, reg);
    expect(() => detector.loss(h, lv, targets.slice(0, 1), { numClasses: C })).toThrow(/1 targets for a batch of 2/);
    expect(() => detector.loss(h, [lv[0], lv[0]], targets, { numClasses: C })).toThrow(/level 1 has 64 anchors/);
    expect(() => detector.loss(h, lv, targets, { numClasses: 3 })).toThrow(/not a multiple of numClasses/);
    const bad = (boxes: number[], labels: number[]) => [{ boxes: new Float32Array(boxes), labels: new Int32Array(labels) }, targets[1]];
    expect(() => detector.loss(h, lv, bad([0, 0, 0, 4, 4, 4], [2]), { numClasses: C })).toThrow(/label 2/);
    expect(() => detector.loss(h, lv, bad([0, 0, 0, 4, 4], [0]), { numClasses: C })).toThrow(/multiple of 6/);
    expect(() => detector.loss(h, lv, bad([0, 0, 0, 4, 4, 4], [0, 1]), { numClasses: C })).toThrow(/1 boxes but 2 labels/);
    expect(() => detector.loss(h, lv, bad([4, 0, 0, 0, 4, 4], [0]), { numClasses: C })).toThrow(/x2 < x1/);
    expect(() => detector.loss(h, lv, bad([0, 0, 0, 4, 0, 4], [0]), { numClasses: C })).toThrow(/zero size on axis y/);
    expect(() => detector.loss(h, lv, bad([0, NaN, 0, 4, 4, 4], [0]), { numClasses: C })).toThrow(/non-finite/);
    expect(() => detector.loss(h, lv, targets, { numClasses: C, clsLoss: 'x' as never })).toThrow(/'focal' or 'bce'/);
    const nanCls = cls.map((a) => Float64Array.from(a));
    nanCls[1][3] = NaN;
    expect(() => detector.loss(make(nanCls, reg), lv, targets, { numClasses: C })).toThrow(/level 1 head outputs contain NaN or Inf/);
  });

  it('nonFiniteOk turns non-finite head outputs into a skippable result (float16 overflow)', () => {
    const { lv, cls, reg, make, targets, C } = smallConfig(53, false);
    const infReg = reg.map((a) => Float64Array.from(a));
    infReg[0][5] = Infinity;
    const h = make(cls, infReg);
    expect(() => detector.loss(h, lv, targets, { numClasses: C })).toThrow(/level 0 head outputs contain NaN or Inf/);
    const r = detector.loss(h, lv, targets, { numClasses: C, nonFiniteOk: true });
    expect(r.nonFinite).toBe(true);
    expect(Number.isNaN(r.total) && Number.isNaN(r.cls) && Number.isNaN(r.box)).toBe(true);
    // Zero gradients shaped like the head outputs, so a backward pass adds nothing.
    r.clsGrads.forEach((g, l) => {
      expect(g.shape).toEqual(h.clsLogits[l].shape);
      expect(Array.from(g.toArray()).every((v) => v === 0)).toBe(true);
    });
    r.boxGrads.forEach((g, l) => {
      expect(g.shape).toEqual(h.boxRegression[l].shape);
      expect(Array.from(g.toArray()).every((v) => v === 0)).toBe(true);
    });
    // Finite outputs are unaffected by the option.
    const ok = detector.loss(make(cls, reg), lv, targets, { numClasses: C, nonFiniteOk: true });
    const ref = detector.loss(make(cls, reg), lv, targets, { numClasses: C });
    expect(ok.nonFinite).toBe(false);
    expect(ok.total).toBe(ref.total);
  });

  it('async argument errors reject the promise', async () => {
    const { lv, cls, reg, make, targets, C } = smallConfig(47, false);
    await expect(detector.lossAsync(make(cls, reg), lv, targets.slice(0, 1), { numClasses: C })).rejects.toThrow(/targets for a batch/);
  });
});
