import { describe, expect, it } from 'vitest';
import { froc, mulberry32, sensitivityAt, type FrocGroundTruth, type FrocPrediction } from '../../src/eval/froc.js';

const RATES = [0.125, 0.25, 0.5, 1, 2, 4, 8];

/** Box of size `d` (each axis) centred at c. */
function cube(c: number[], d: number): number[] {
  return [c[0] - d / 2, c[1] - d / 2, c[2] - d / 2, c[0] + d / 2, c[1] + d / 2, c[2] + d / 2];
}
function pred(id: string, items: [number[], number][], extra: Partial<FrocPrediction> = {}): FrocPrediction {
  return { id, boxes: new Float32Array(items.flatMap(([c]) => cube(c, 2))), scores: new Float32Array(items.map(([, s]) => s)), ...extra };
}

// Worked example (spacing 1, distance criterion):
//   scan A: lesion L1 = cube centre (15,15,15) side 10 (radius 5), L2 = cube centre (45,45,45) side 10.
//   scan B: lesion L3 = cube centre (4,4,4) side 8 (radius 4).
//   detections (centres):
//     A d1 (15,15,16) score 0.9 -> hits L1 (distance 1 < 5)
//     A d2 (16,15,15) score 0.6 -> hits L1 again: duplicate, ignored (neither TP nor FP)
//     A d3 (80,80,80) score 0.7 -> FP
//     A d4 (45,45,48) score 0.3 -> hits L2 (distance 3 < 5)
//     B d5 (30,30,30) score 0.8 -> FP; L3 is missed.
//   Entries: lesions 0.9 (L1), 0.3 (L2), missed L3; FPs 0.8, 0.7. 3 lesions, 2 scans.
//   Curve (FPs/scan, sensitivity) by descending threshold:
//     origin (0, 0); t=0.9 -> (0, 1/3); t=0.8 -> (0.5, 1/3); t=0.7 -> (1, 1/3); t=0.3 -> (1, 2/3).
//   Sensitivity (numpy.interp on the curve): 1/8, 1/4, 1/2 -> 1/3; at 1 the vertical step takes the
//   upper value 2/3; 2, 4, 8 (beyond the last point) -> 2/3.
//   CPM = (3 * 1/3 + 4 * 2/3) / 7 = 11/21.
const workedGt: FrocGroundTruth[] = [
  { id: 'A', boxes: new Float32Array([...cube([15, 15, 15], 10), ...cube([45, 45, 45], 10)]) },
  { id: 'B', boxes: new Float32Array(cube([4, 4, 4], 8)) },
];
const workedPred: FrocPrediction[] = [
  pred('A', [
    [[15, 15, 16], 0.9],
    [[16, 15, 15], 0.6],
    [[80, 80, 80], 0.7],
    [[45, 45, 48], 0.3],
  ]),
  pred('B', [[[30, 30, 30], 0.8]]),
];

describe('froc', () => {
  it('reproduces the hand-worked example', () => {
    const r = froc(workedPred, workedGt, { bootstraps: 0 });
    const third = 1 / 3;
    const expected = [third, third, third, 2 * third, 2 * third, 2 * third, 2 * third];
    r.sensitivity.forEach((s, i) => expect(s).toBeCloseTo(expected[i], 6));
    expect(r.cpm).toBeCloseTo(11 / 21, 6);
    // (0.5, 1/3) lies between (0, 1/3) and (1, 1/3) on a horizontal line and is dropped (drop_intermediate).
    expect(r.curve.fps).toEqual([0, 0, 1, 1]);
    r.curve.sensitivity.forEach((s, i) => expect(s).toBeCloseTo([0, third, third, 2 * third][i], 12));
    expect(r.curve.thresholds.map((t) => Math.round(t * 100) / 100)).toEqual([Infinity, 0.9, 0.7, 0.3]);
    expect(r.counts).toEqual({ scans: 2, lesions: 3, detectedLesions: 2, detections: 5, falsePositives: 2, duplicateHits: 1, ignored: 0 });
    expect(r.perScan).toEqual([
      { id: 'A', lesions: 2, detectedLesions: 2, falsePositives: 1 },
      { id: 'B', lesions: 1, detectedLesions: 0, falsePositives: 1 },
    ]);
    expect(r.bootstrap).toBeUndefined();
  });

  it('gives CPM 1 for a perfect detector and 0 for false positives only', () => {
    const gt: FrocGroundTruth[] = [
      { id: 's1', boxes: new Float32Array([...cube([10, 10, 10], 6), ...cube([30, 30, 30], 4)]) },
      { id: 's2', boxes: new Float32Array(cube([50, 20, 10], 8)) },
      { id: 's3', boxes: new Float32Array(0) },
    ];
    const perfect = gt.map((g) => ({ id: g.id, boxes: g.boxes, scores: new Float32Array(g.boxes.length / 6).fill(0.9) }));
    const r1 = froc(perfect, gt, { bootstraps: 200, seed: 3 });
    expect(r1.sensitivity).toEqual(RATES.map(() => 1));
    expect(r1.cpm).toBe(1);
    expect(r1.bootstrap!.cpm).toEqual({ mean: 1, lower: 1, upper: 1 });
    const fpOnly = [pred('s1', [[[90, 90, 90], 0.9]]), pred('s3', [[[5, 5, 5], 0.5], [[60, 60, 60], 0.99]])];
    const r0 = froc(fpOnly, gt, { bootstraps: 0 });
    expect(r0.cpm).toBe(0);
    expect(r0.counts.falsePositives).toBe(3);
    // No detections at all: sensitivity 0 everywhere.
    expect(froc([], gt, { bootstraps: 0 }).cpm).toBe(0);
  });

  it('follows LUNA16 hit semantics: strict radius, spacing in mm, ignore regions, multi-lesion hits', () => {
    const gt: FrocGroundTruth[] = [{ id: 'a', boxes: new Float32Array(cube([20, 20, 20], 10)) }];
    // Centre exactly 5 voxels away: distance == radius -> not a hit (LUNA16 uses dist < r).
    expect(froc([pred('a', [[[25, 20, 20], 0.5]])], gt, { bootstraps: 0 }).counts.falsePositives).toBe(1);
    expect(froc([pred('a', [[[24.9, 20, 20], 0.5]])], gt, { bootstraps: 0 }).counts.detectedLesions).toBe(1);
    // Spacing (1, 1, 3) on a lesion of 10 x 10 x 4 voxels = 10 x 10 x 12 mm: radius 6 mm (in voxels: 5).
    //   x offset 5.5 voxels = 5.5 mm < 6 mm -> hit with spacing, but 5.5 > 5 voxels -> miss without;
    //   z offset 2 voxels = 6 mm, not < 6 mm -> miss with spacing, but 2 < 5 voxels -> hit without.
    const flat = [15, 15, 18, 25, 25, 22];
    const gtS: FrocGroundTruth[] = [{ id: 'a', boxes: new Float32Array(flat), spacing: [1, 1, 3] }];
    const gtV: FrocGroundTruth[] = [{ id: 'a', boxes: new Float32Array(flat) }];
    expect(froc([pred('a', [[[25.5, 20, 20], 0.5]])], gtS, { bootstraps: 0 }).counts.detectedLesions).toBe(1);
    expect(froc([pred('a', [[[25.5, 20, 20], 0.5]])], gtV, { bootstraps: 0 }).counts.detectedLesions).toBe(0);
    expect(froc([pred('a', [[[20, 20, 22], 0.5]])], gtS, { bootstraps: 0 }).counts.detectedLesions).toBe(0);
    expect(froc([pred('a', [[[20, 20, 22], 0.5]])], gtV, { bootstraps: 0 }).counts.detectedLesions).toBe(1);
    // Spacing given on the prediction instead of the ground truth works the same.
    expect(froc([pred('a', [[[25.5, 20, 20], 0.5]], { spacing: [1, 1, 3] })], gtV, { bootstraps: 0 }).counts.detectedLesions).toBe(1);
    // Ignore region: a detection on it is dropped, not a FP.
    const gtIgn: FrocGroundTruth[] = [{ id: 'a', boxes: gt[0].boxes, ignore: new Float32Array(cube([60, 60, 60], 10)) }];
    const rIgn = froc([pred('a', [[[61, 60, 60], 0.5], [[90, 90, 90], 0.4]])], gtIgn, { bootstraps: 0 });
    expect(rIgn.counts.ignored).toBe(1);
    expect(rIgn.counts.falsePositives).toBe(1);
    // One detection between two overlapping lesions counts for both (LUNA16 behaviour).
    const gt2: FrocGroundTruth[] = [{ id: 'a', boxes: new Float32Array([...cube([20, 20, 20], 10), ...cube([24, 20, 20], 10)]) }];
    const r2 = froc([pred('a', [[[22, 20, 20], 0.5]])], gt2, { bootstraps: 0 });
    expect(r2.counts.detectedLesions).toBe(2);
    expect(r2.cpm).toBe(1);
  });

  it('supports the IoU criterion and class-aware matching', () => {
    const gt: FrocGroundTruth[] = [{ id: 'a', boxes: new Float32Array([0, 0, 0, 10, 10, 10]), labels: new Int32Array([1]) }];
    // Box [5,0,0,15,10,10): intersection 500, union 1500 -> IoU 1/3.
    const p: FrocPrediction = { id: 'a', boxes: new Float32Array([5, 0, 0, 15, 10, 10]), scores: new Float32Array([0.7]), labels: new Int32Array([1]) };
    expect(froc([p], gt, { criterion: 'iou', iouThreshold: 0.3, bootstraps: 0 }).cpm).toBe(1);
    expect(froc([p], gt, { criterion: 'iou', iouThreshold: 0.34, bootstraps: 0 }).cpm).toBe(0);
    const wrongClass = { ...p, labels: new Int32Array([2]) };
    expect(froc([wrongClass], gt, { criterion: 'iou', bootstraps: 0 }).cpm).toBe(0);
    expect(froc([wrongClass], gt, { criterion: 'iou', bootstraps: 0, classAware: false }).cpm).toBe(1);
  });

  it('interpolates like numpy.interp: linear across tied scores, upper value at a vertical step', () => {
    // One scan, two lesions; a TP and a FP share score 0.5: the curve goes (0,0) -> (1, 0.5) in one step.
    const gt: FrocGroundTruth[] = [{ id: 'a', boxes: new Float32Array([...cube([10, 10, 10], 6), ...cube([40, 40, 40], 6)]) }];
    const r = froc([pred('a', [[[10, 10, 10], 0.5], [[70, 70, 70], 0.5]])], gt, { bootstraps: 0 });
    expect(r.curve.fps).toEqual([0, 1]);
    expect(r.sensitivity[0]).toBeCloseTo(0.0625, 12); // 0.125 * 0.5
    expect(r.sensitivity[2]).toBeCloseTo(0.25, 12);
    expect(r.sensitivity[3]).toBe(0.5);
    expect(sensitivityAt({ fps: [0, 1, 1, 2], sensitivity: [0, 0.2, 0.6, 0.6] }, 1)).toBe(0.6);
    expect(sensitivityAt({ fps: [0, 1, 1, 2], sensitivity: [0, 0.2, 0.6, 0.6] }, 0.5)).toBeCloseTo(0.1, 12);
  });

  it('agrees with a brute-force threshold sweep on random cases (distinct scores)', () => {
    const rand = mulberry32(12345);
    for (let trial = 0; trial < 20; trial++) {
      const nScans = 1 + Math.floor(rand() * 6);
      const gt: FrocGroundTruth[] = [];
      const preds: FrocPrediction[] = [];
      const allScores: number[] = [];
      for (let s = 0; s < nScans; s++) {
        const nL = Math.floor(rand() * 4);
        const les: number[] = [];
        for (let j = 0; j < nL; j++) les.push(...cube([rand() * 100, rand() * 100, rand() * 100], 4 + rand() * 16));
        gt.push({ id: `s${s}`, boxes: new Float64Array(les), spacing: [0.5 + rand(), 0.5 + rand(), 1 + 2 * rand()] });
        const nD = Math.floor(rand() * 8);
        const det: number[] = [];
        const sc: number[] = [];
        for (let i = 0; i < nD; i++) {
          // Half of the detections near a lesion, half anywhere.
          const j = Math.floor(rand() * Math.max(1, nL));
          const near = nL > 0 && rand() < 0.5;
          const c = near ? [0, 1, 2].map((a) => (les[6 * j + a] + les[6 * j + 3 + a]) / 2 + (rand() - 0.5) * 8) : [rand() * 100, rand() * 100, rand() * 100];
          det.push(...cube(c, 3));
          sc.push(rand());
        }
        allScores.push(...sc);
        preds.push({ id: `s${s}`, boxes: new Float64Array(det), scores: new Float64Array(sc) });
      }
      const totalLes = gt.reduce((a, g) => a + g.boxes.length / 6, 0);
      if (totalLes === 0) continue;
      // Naive reference: at each threshold t, a lesion is detected if some detection with score >= t has its
      // centre within the lesion radius (mm); FPs are detections with score >= t hitting no lesion at all.
      const hitsLesion = (p: FrocPrediction, i: number, g: FrocGroundTruth, j: number) => {
        const sp = g.spacing!;
        let d2 = 0;
        let diam = 0;
        for (let a = 0; a < 3; a++) {
          const dc = ((p.boxes[6 * i + a] + p.boxes[6 * i + 3 + a]) / 2 - (g.boxes[6 * j + a] + g.boxes[6 * j + 3 + a]) / 2) * sp[a];
          d2 += dc * dc;
          diam = Math.max(diam, (g.boxes[6 * j + 3 + a] - g.boxes[6 * j + a]) * sp[a]);
        }
        return Math.sqrt(d2) < diam / 2;
      };
      const pointsAt = (t: number) => {
        let tp = 0;
        let fp = 0;
        gt.forEach((g, s) => {
          const p = preds[s];
          const nL = g.boxes.length / 6;
          for (let j = 0; j < nL; j++) {
            let found = false;
            for (let i = 0; i < p.scores.length; i++) if (p.scores[i] >= t && hitsLesion(p, i, g, j)) found = true;
            if (found) tp++;
          }
          for (let i = 0; i < p.scores.length; i++) {
            if (p.scores[i] < t) continue;
            let any = false;
            for (let j = 0; j < nL; j++) if (hitsLesion(p, i, g, j)) any = true;
            if (!any) fp++;
          }
        });
        return { fps: fp / nScans, sens: tp / totalLes };
      };
      const thresholds = [Infinity, ...allScores];
      const r = froc(preds, gt, { bootstraps: 0 });
      RATES.forEach((rate, k) => {
        // With distinct scores the curve is a staircase: the sensitivity at `rate` is the best
        // sensitivity among thresholds whose FP rate does not exceed it.
        let best = 0;
        for (const t of thresholds) {
          const q = pointsAt(t);
          if (q.fps <= rate) best = Math.max(best, q.sens);
        }
        expect(r.sensitivity[k]).toBeCloseTo(best, 12);
      });
    }
  });

  it('bootstraps deterministically by seed with the exact expected mean on two scans', () => {
    // Resampling two scans gives {A,A}, {A,B}, {B,A}, {B,B} with probabilities 1/4, 1/4, 1/4, 1/4:
    //   {A,A}: 4 lesions, 2 scans: (0,0) -> (0, 1/2) -> (1, 1/2) -> (1, 1): CPM (3*1/2 + 4*1)/7 = 5.5/7
    //   {A,B}: the worked example, CPM 11/21;  {B,B}: nothing detected, CPM 0.
    // Expected bootstrap mean CPM = (5.5/7)/4 + (11/21)/2 = 0.458333...
    const r1 = froc(workedPred, workedGt, { bootstraps: 4000, seed: 7 });
    const r2 = froc(workedPred, workedGt, { bootstraps: 4000, seed: 7 });
    const r3 = froc(workedPred, workedGt, { bootstraps: 4000, seed: 8 });
    expect(r1.bootstrap).toEqual(r2.bootstrap);
    expect(r3.bootstrap!.cpm.mean).not.toBe(r1.bootstrap!.cpm.mean);
    expect(r1.bootstrap!.used).toBe(4000);
    expect(r1.bootstrap!.cpm.mean).toBeCloseTo(5.5 / 7 / 4 + 11 / 21 / 2, 1);
    expect(Math.abs(r1.bootstrap!.cpm.mean - 0.4583333)).toBeLessThan(0.02);
    expect(r1.bootstrap!.cpm.lower).toBe(0);
    expect(r1.bootstrap!.cpm.upper).toBeCloseTo(5.5 / 7, 6);
  });

  it('bootstrap curves equal the point curve when every resample is the same study', () => {
    // A single scan: every resample draws it once, so each bootstrap curve is the point curve and the band
    // (streamed evaluation) must equal sensitivityAt on the full curve at each grid point.
    const les: number[] = [];
    for (let j = 0; j < 5; j++) les.push(...cube([20 * j + 10, 10, 10], 6));
    const items: [number[], number][] = [];
    // Lesion hits and FPs, with ties between them at 0.8 and 0.5.
    [0.9, 0.8, 0.8, 0.5, 0.3].forEach((s, j) => items.push([[20 * j + 10, 10, 11], s]));
    [0.95, 0.8, 0.7, 0.7, 0.6, 0.5, 0.4, 0.2, 0.2, 0.1, 0.1, 0.05].forEach((s, k) => items.push([[8 * k, 60, 60], s]));
    const r = froc([pred('a', items)], [{ id: 'a', boxes: new Float32Array(les) }], { bootstraps: 7 });
    const b = r.bootstrap!;
    r.sensitivity.forEach((v, i) => {
      expect(b.mean[i]).toBeCloseTo(v, 12);
      expect(b.lower[i]).toBeCloseTo(v, 12);
      expect(b.upper[i]).toBeCloseTo(v, 12);
    });
    b.band.fps.forEach((f, i) => {
      expect(b.band.mean[i]).toBeCloseTo(sensitivityAt(r.curve, f), 12);
      expect(b.band.lower[i]).toBeCloseTo(sensitivityAt(r.curve, f), 12);
    });
    expect(new Set(r.sensitivity).size).toBeGreaterThan(3);
  });

  it('gives a CI that contains the point estimate on a larger synthetic study', () => {
    const rand = mulberry32(99);
    const gt: FrocGroundTruth[] = [];
    const preds: FrocPrediction[] = [];
    for (let s = 0; s < 40; s++) {
      const c = [50 + rand() * 10, 50, 50];
      gt.push({ id: `s${s}`, boxes: new Float32Array(cube(c, 10)) });
      const items: [number[], number][] = [];
      if (rand() < 0.8) items.push([[c[0] + 1, c[1], c[2]], 0.3 + 0.7 * rand()]);
      const nFp = Math.floor(rand() * 6);
      for (let k = 0; k < nFp; k++) items.push([[rand() * 30, rand() * 30, 200], rand()]);
      preds.push(pred(`s${s}`, items));
    }
    const r = froc(preds, gt, { bootstraps: 500, seed: 1 });
    const b = r.bootstrap!;
    expect(b.used).toBe(500);
    r.sensitivity.forEach((s, i) => {
      expect(b.lower[i]).toBeLessThanOrEqual(s);
      expect(b.upper[i]).toBeGreaterThanOrEqual(s);
      expect(b.lower[i]).toBeLessThanOrEqual(b.mean[i]);
      expect(b.mean[i]).toBeLessThanOrEqual(b.upper[i]);
    });
    expect(b.cpm.lower).toBeLessThanOrEqual(r.cpm);
    expect(b.cpm.upper).toBeGreaterThanOrEqual(r.cpm);
    expect(b.cpm.upper - b.cpm.lower).toBeGreaterThan(0);
    expect(b.band.fps.length).toBe(121);
    expect(b.band.fps[0]).toBeCloseTo(0.1, 12);
    expect(b.band.fps[120]).toBeCloseTo(8.5, 12);
  });

  it('rejects corrupt inputs with clear errors', () => {
    const gt: FrocGroundTruth[] = [{ id: 'a', boxes: new Float32Array(cube([5, 5, 5], 4)) }];
    expect(() => froc([{ id: 'a', boxes: new Float32Array(7), scores: new Float32Array(1) }], gt)).toThrow(/multiple of 6/);
    expect(() => froc([{ id: 'a', boxes: new Float32Array(6), scores: new Float32Array(2) }], gt)).toThrow(/1 boxes but 2 scores/);
    expect(() => froc([{ id: 'a', boxes: new Float32Array(6), scores: new Float32Array([NaN]) }], gt)).toThrow(/not finite/);
    expect(() => froc([{ id: 'a', boxes: new Float32Array([0, 0, NaN, 1, 1, 1]), scores: new Float32Array(1) }], gt)).toThrow(/non-finite/);
    expect(() => froc([pred('zz', [])], gt)).toThrow(/no ground-truth entry/);
    expect(() => froc([pred('a', []), pred('a', [])], gt)).toThrow(/twice in predictions/);
    expect(() => froc([], [...gt, ...gt])).toThrow(/twice in groundTruth/);
    expect(() => froc([], [{ id: 'a', boxes: new Float32Array(0) }])).toThrow(/no lesions/);
    expect(() => froc([], gt, { criterion: 'center' as never })).toThrow(/criterion/);
    expect(() => froc([], [{ ...gt[0], spacing: [1, 0, 1] }])).toThrow(/spacing/);
    expect(() => froc([{ ...pred('a', []), spacing: [1, 1, 2] }], [{ ...gt[0], spacing: [1, 1, 1] }])).toThrow(/differs/);
    expect(() => froc([], gt, { fpRates: [0, 1] })).toThrow(/fpRates/);
  });
});
