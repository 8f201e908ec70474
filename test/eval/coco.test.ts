import { describe, expect, it } from 'vitest';
import { coco, cocoStatistics, formatHeadline, linspace } from '../../src/eval/coco.js';
import { boxIou3d } from '../../src/eval/box_iou.js';

const box = (...b: number[]) => b;
const flat = (bs: number[][]) => new Float32Array(bs.flat());

// Hand-worked data set (classes a = 0, b = 1), used by several tests below.
//
// Class a (numGt = 2):
//   img0: GT A1=[0,0,0,10,10,10]; p1 (0.9) = A1 (IoU 1); p2 (0.6) = [0,0,0,10,10,3.3]
//         (IoU 0.33 with A1, but A1 is already taken by p1 → FP at every threshold).
//   img1: GT A2=[20,20,20,30,30,30]; p3 (0.7) = [20,20,20,30,30,23.3] (IoU 0.33: TP at
//         t ≤ 0.30, FP at t ≥ 0.35).
//   img2: no GT of a; p4 (0.8) → FP (image without ground truth).
//   pooled by score: p1 TP, p4 FP, p3 TP/FP, p2 FP.
//   t ≤ 0.30 (5 thresholds): rc .5 .5 1 1, pr 1 .5 2/3 .5 → monotone 1 2/3 2/3 .5;
//     recall points 0..0.50 (51) read 1, 0.51..1 (50) read 2/3: AP = (51 + 50·2/3)/101, R = 1.
//   t ≥ 0.35 (4 thresholds): rc .5 throughout, AP = 51/101, R = 0.5.
// Class b (numGt = 3):
//   img0: GT B1=[50,50,50,60,60,60], B2=[50,50,62,60,60,72];
//         q1 (0.5) = [50,50,50,60,60,72] overlaps both with the same IoU 1000/2200 = 0.4545;
//         the tie goes to the LATER GT (B2), so q2 (0.5, = B1) can still take B1.
//         q1 and q2 tie in score: stable order keeps q1 first.
//   img1: GT B3 with no detection (a miss).
//   t ≤ 0.45 (8 thresholds): TP TP → rc 1/3 2/3, pr 1 1: points 0..0.66 (67) read 1 → AP 67/101, R = 2/3.
//   t = 0.50: q1 FP, q2 TP → rc 0 1/3, pr 0 .5 → monotone .5 .5: points 0..0.33 (34) read .5
//     → AP 17/101, R = 1/3.
function dataset() {
  const preds = [
    {
      boxes: flat([box(0, 0, 0, 10, 10, 10), box(0, 0, 0, 10, 10, 3.3), box(50, 50, 50, 60, 60, 72), box(50, 50, 50, 60, 60, 60)]),
      scores: new Float32Array([0.9, 0.6, 0.5, 0.5]),
      labels: new Int32Array([0, 0, 1, 1]),
    },
    { boxes: flat([box(20, 20, 20, 30, 30, 23.3)]), scores: new Float32Array([0.7]), labels: new Int32Array([0]) },
    { boxes: flat([box(70, 70, 70, 75, 75, 75)]), scores: new Float32Array([0.8]), labels: new Int32Array([0]) },
  ];
  const gts = [
    { boxes: flat([box(0, 0, 0, 10, 10, 10), box(50, 50, 50, 60, 60, 60), box(50, 50, 62, 60, 60, 72)]), labels: new Int32Array([0, 1, 1]) },
    { boxes: flat([box(20, 20, 20, 30, 30, 30), box(0, 0, 0, 8, 8, 8)]), labels: new Int32Array([0, 1]) },
    { boxes: new Float32Array(0), labels: new Int32Array(0) },
  ];
  return { preds, gts };
}

const APa_lo = (51 + 50 * (2 / 3)) / 101;
const APa_hi = 51 / 101;
const APb_lo = 67 / 101;
const APb_hi = 17 / 101;
const mAPa = (5 * APa_lo + 4 * APa_hi) / 9;
const mAPb = (8 * APb_lo + APb_hi) / 9;

describe('box IoU (StandardMode, float32 like MONAI)', () => {
  it('computes overlaps of hand-made boxes', () => {
    const a = flat([box(0, 0, 0, 10, 10, 10), box(0, 0, 0, 2, 2, 2)]);
    const b = flat([box(5, 0, 0, 15, 10, 10), box(20, 20, 20, 21, 21, 21), box(0, 0, 0, 10, 10, 10)]);
    const iou = boxIou3d(a, b);
    // half overlap: 500 / 1500; disjoint: 0; identical: 1; small box inside: 8/1000
    expect(iou[0]).toBeCloseTo(1 / 3, 6);
    expect(iou[1]).toBe(0);
    expect(iou[2]).toBeCloseTo(1, 6);
    expect(iou[3]).toBe(0);
    expect(iou[5]).toBeCloseTo(8 / 1000, 6);
  });
});

describe('coco (MONAI COCOMetric semantics)', () => {
  it('reproduces the hand-worked two-class example', () => {
    const { preds, gts } = dataset();
    const m = coco(preds, gts, { classes: ['a', 'b'], iouList: [0.1, 0.5] });
    expect(Object.keys(m)).toEqual([
      'mAP_IoU_0.10_0.50_0.05_MaxDet_100',
      'a_mAP_IoU_0.10_0.50_0.05_MaxDet_100',
      'b_mAP_IoU_0.10_0.50_0.05_MaxDet_100',
      'AP_IoU_0.10_MaxDet_100',
      'a_AP_IoU_0.10_MaxDet_100',
      'b_AP_IoU_0.10_MaxDet_100',
      'AP_IoU_0.50_MaxDet_100',
      'a_AP_IoU_0.50_MaxDet_100',
      'b_AP_IoU_0.50_MaxDet_100',
      'mAR_IoU_0.10_0.50_0.05_MaxDet_100',
      'a_mAR_IoU_0.10_0.50_0.05_MaxDet_100',
      'b_mAR_IoU_0.10_0.50_0.05_MaxDet_100',
      'AR_IoU_0.10_MaxDet_100',
      'a_AR_IoU_0.10_MaxDet_100',
      'b_AR_IoU_0.10_MaxDet_100',
      'AR_IoU_0.50_MaxDet_100',
      'a_AR_IoU_0.50_MaxDet_100',
      'b_AR_IoU_0.50_MaxDet_100',
    ]);
    const close = (k: string, v: number) => expect(m[k], k).toBeCloseTo(v, 7);
    close('a_AP_IoU_0.10_MaxDet_100', APa_lo);
    close('a_AP_IoU_0.50_MaxDet_100', APa_hi);
    close('b_AP_IoU_0.10_MaxDet_100', APb_lo);
    close('b_AP_IoU_0.50_MaxDet_100', APb_hi);
    close('AP_IoU_0.10_MaxDet_100', (APa_lo + APb_lo) / 2);
    close('AP_IoU_0.50_MaxDet_100', (APa_hi + APb_hi) / 2);
    close('a_mAP_IoU_0.10_0.50_0.05_MaxDet_100', mAPa);
    close('b_mAP_IoU_0.10_0.50_0.05_MaxDet_100', mAPb);
    close('mAP_IoU_0.10_0.50_0.05_MaxDet_100', (mAPa + mAPb) / 2);
    // recall: a = 1 (5 thresholds), 0.5 (4); b = 2/3 (8), 1/3 (1)
    close('a_mAR_IoU_0.10_0.50_0.05_MaxDet_100', (5 + 4 * 0.5) / 9);
    close('b_mAR_IoU_0.10_0.50_0.05_MaxDet_100', (8 * (2 / 3) + (1 / 3)) / 9);
    close('mAR_IoU_0.10_0.50_0.05_MaxDet_100', (5 + 2 + 8 * (2 / 3) + (1 / 3)) / 18);
    close('AR_IoU_0.10_MaxDet_100', (1 + (2 / 3)) / 2);
    close('AR_IoU_0.50_MaxDet_100', (0.5 + (1 / 3)) / 2);
  });

  it('truncates to max_detection per image and class, keeping the stable score order', () => {
    const { preds, gts } = dataset();
    const m = coco(preds, gts, { classes: ['a', 'b'], iouList: [0.1], maxDetection: [1, 100], perClass: false });
    // MaxDet 1: class a keeps p1, p3, p4 (p2 dropped) → recall unchanged (1 ×5, 0.5 ×4);
    // class b keeps only q1 (first of the 0.5 tie) → recall 1/3 at t ≤ 0.45 (×8), 0 at 0.5.
    expect(m['mAR_IoU_0.10_0.50_0.05_MaxDet_1']).toBeCloseTo((5 + 2 + 8 * (1 / 3) + 0) / 18, 7);
    expect(m['mAR_IoU_0.10_0.50_0.05_MaxDet_100']).toBeCloseTo((5 + 2 + 8 * (2 / 3) + (1 / 3)) / 18, 7);
    // AP uses the last MaxDet entry only.
    expect(m['AP_IoU_0.10_MaxDet_100']).toBeCloseTo((APa_lo + APb_lo) / 2, 7);
    expect(Object.keys(m)).toEqual([
      'mAP_IoU_0.10_0.50_0.05_MaxDet_100',
      'AP_IoU_0.10_MaxDet_100',
      'mAR_IoU_0.10_0.50_0.05_MaxDet_1',
      'mAR_IoU_0.10_0.50_0.05_MaxDet_100',
      'AR_IoU_0.10_MaxDet_100',
    ]);
  });

  it('gives a class without any ground truth −1, averaged into mAP but not into mAR', () => {
    const { preds, gts } = dataset();
    // class c (index 2) gets one detection but no ground truth anywhere.
    preds[2] = { boxes: flat([box(70, 70, 70, 75, 75, 75), box(1, 1, 1, 4, 4, 4)]), scores: new Float32Array([0.8, 0.99]), labels: new Int32Array([0, 2]) };
    const m = coco(preds, gts, { classes: ['a', 'b', 'c'], iouList: [0.1] });
    expect(m['c_AP_IoU_0.10_MaxDet_100']).toBe(-1);
    expect(m['c_mAP_IoU_0.10_0.50_0.05_MaxDet_100']).toBe(-1);
    expect(m['c_AR_IoU_0.10_MaxDet_100']).toBe(-1);
    expect(m['c_mAR_IoU_0.10_0.50_0.05_MaxDet_100']).toBe(-1);
    expect(m['mAP_IoU_0.10_0.50_0.05_MaxDet_100']).toBeCloseTo((mAPa + mAPb - 1) / 3, 7);
    expect(m['AR_IoU_0.10_MaxDet_100']).toBeCloseTo((1 + (2 / 3)) / 2, 7);
    // The class-c detection does not disturb a and b.
    expect(m['a_AP_IoU_0.10_MaxDet_100']).toBeCloseTo(APa_lo, 7);
  });

  it('scores ground truth without any detection as AP 0 and recall 0', () => {
    const gts = [{ boxes: flat([box(0, 0, 0, 4, 4, 4)]), labels: new Int32Array([0]) }];
    const preds = [{ boxes: new Float32Array(0), scores: new Float32Array(0), labels: new Int32Array(0) }];
    const m = coco(preds, gts, { classes: ['x'] });
    expect(m['mAP_IoU_0.10_0.50_0.05_MaxDet_100']).toBe(0);
    expect(m['AR_IoU_0.10_MaxDet_100']).toBe(0);
  });

  it('matches perfect predictions with AP = AR = 1 and uses 9 + list thresholds', () => {
    const gts = [{ boxes: flat([box(0, 0, 0, 4, 4, 4), box(10, 10, 10, 20, 20, 14)]), labels: new Int32Array([0, 0]) }];
    const preds = [{ boxes: gts[0].boxes, scores: new Float32Array([0.3, 0.4]), labels: new Int32Array([0, 0]) }];
    const st = cocoStatistics(preds, gts, { classes: ['x'], iouList: [0.1, 0.75] });
    expect(st.iouThresholds.length).toBe(10); // 0.10 … 0.50 (9) ∪ {0.75}
    expect(st.recallThresholds.length).toBe(101);
    const m = coco(preds, gts, { classes: ['x'], iouList: [0.1, 0.75] });
    expect(m['mAP_IoU_0.10_0.50_0.05_MaxDet_100']).toBeCloseTo(1, 12);
    expect(m['AP_IoU_0.75_MaxDet_100']).toBeCloseTo(1, 12);
    expect(m['mAR_IoU_0.10_0.50_0.05_MaxDet_100']).toBeCloseTo(1, 12);
  });

  it('builds thresholds exactly like numpy linspace', () => {
    const v = linspace(0.1, 0.5, 9);
    expect(v[0]).toBe(0.1);
    expect(v[8]).toBe(0.5);
    expect(v[4]).toBe(4 * 0.05 + 0.1); // 0.30000000000000004, as numpy
  });

  it('explains bad input', () => {
    const { preds, gts } = dataset();
    expect(() => coco(preds, gts, { classes: ['a'] })).toThrow(/labels\[2\] = 1 is not a class index in \[0, 1\)/);
    expect(() => coco(preds.slice(1), gts, { classes: ['a', 'b'] })).toThrow(/2 prediction entries but 3 ground-truth/);
    const bad = [{ ...preds[0], scores: new Float32Array([1]) }, preds[1], preds[2]];
    expect(() => coco(bad, gts, { classes: ['a', 'b'] })).toThrow(/4 boxes but 1 scores/);
  });

  it('formats the headline line', () => {
    const { preds, gts } = dataset();
    const m = coco(preds, gts, { classes: ['a', 'b'], iouList: [0.1, 0.3, 0.5] });
    const line = formatHeadline(m);
    expect(line).toBe(
      `mAP ${((mAPa + mAPb) / 2).toFixed(4)} | mAP@0.1 ${((APa_lo + APb_lo) / 2).toFixed(4)} | ` +
        `mAP@0.3 ${((APa_lo + APb_lo) / 2).toFixed(4)} | mAP@0.5 ${((APa_hi + APb_hi) / 2).toFixed(4)} | ` +
        // iouList 0.3 is the double 0.3, the range holds 4*0.05+0.1 = 0.30000000000000004: MONAI's
        // union keeps both, so mAR averages 10 thresholds (a: 1 ×6, 0.5 ×4; b: 2/3 ×9, 1/3 ×1).
        `mAR ${((6 + 2 + 9 * (2 / 3) + (1 / 3)) / 20).toFixed(4)}`,
    );
    expect(formatHeadline(coco(preds, gts, { classes: ['a', 'b'] }))).toMatch(/mAP@0\.3 n\/a/);
    // With the LUNA16 iouList [0.1], AP@0.3/0.5 come from the statistics (range thresholds);
    // mAR then averages the 9 range thresholds only (a: 1 ×5, 0.5 ×4; b: 2/3 ×8, 1/3 ×1).
    const st = cocoStatistics(preds, gts, { classes: ['a', 'b'] });
    expect(formatHeadline(coco(preds, gts, { classes: ['a', 'b'] }), st)).toBe(
      `mAP ${((mAPa + mAPb) / 2).toFixed(4)} | mAP@0.1 ${((APa_lo + APb_lo) / 2).toFixed(4)} | ` +
        `mAP@0.3 ${((APa_lo + APb_lo) / 2).toFixed(4)} | mAP@0.5 ${((APa_hi + APb_hi) / 2).toFixed(4)} | ` +
        `mAR ${((5 + 2 + 8 * (2 / 3) + (1 / 3)) / 18).toFixed(4)}`,
    );
  });
});

// ---------------------------------------------------------------------------
// Randomized cross-check against a direct float64 re-implementation of the
// definition: greedy matching per image/class, pooled precision/recall, AP as
// the mean over r in {0, .01, …, 1} of max{precision_i : recall_i ≥ r}.
function mulberry32(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function iou64(a: ArrayLike<number>, ia: number, b: ArrayLike<number>, ib: number): number {
  let inter = 1;
  for (let d = 0; d < 3; d++) inter *= Math.max(0, Math.min(a[6 * ia + 3 + d], b[6 * ib + 3 + d]) - Math.max(a[6 * ia + d], b[6 * ib + d]));
  const vol = (x: ArrayLike<number>, i: number) => (x[6 * i + 3] - x[6 * i]) * (x[6 * i + 4] - x[6 * i + 1]) * (x[6 * i + 5] - x[6 * i + 2]);
  return inter / (vol(a, ia) + vol(b, ib) - inter);
}

type P = { boxes: Float32Array; scores: Float32Array; labels: Int32Array };
type G = { boxes: Float32Array; labels: Int32Array };

function reference(preds: P[], gts: G[], K: number, thresholds: number[], maxDet: number) {
  const ap: number[][] = []; // [t][k]
  const rec: number[][] = [];
  for (const t of thresholds) {
    const apRow: number[] = [];
    const recRow: number[] = [];
    for (let k = 0; k < K; k++) {
      const hits: { s: number; tp: boolean }[] = [];
      let numGt = 0;
      preds.forEach((p, i) => {
        const g = gts[i];
        const gIdx = [...g.labels.keys()].filter((j) => g.labels[j] === k);
        numGt += gIdx.length;
        const dIdx = [...p.labels.keys()].filter((j) => p.labels[j] === k).sort((x, y) => p.scores[y] - p.scores[x]).slice(0, maxDet);
        const used = new Set<number>();
        for (const d of dIdx) {
          let best = -1;
          let bestIou = t;
          for (const j of gIdx) {
            if (used.has(j)) continue;
            const v = iou64(p.boxes, d, g.boxes, j);
            if (v >= bestIou) {
              bestIou = v;
              best = j;
            }
          }
          if (best >= 0) used.add(best);
          hits.push({ s: p.scores[d], tp: best >= 0 });
        }
      });
      if (numGt === 0) {
        apRow.push(-1);
        recRow.push(-1);
        continue;
      }
      hits.sort((x, y) => y.s - x.s);
      let tp = 0;
      const pts = hits.map((h, i) => {
        if (h.tp) tp++;
        return { r: tp / numGt, p: tp / (i + 1) };
      });
      let sum = 0;
      for (let j = 0; j <= 100; j++) {
        const r = j === 100 ? 1 : j * 0.01;
        let best = 0;
        for (const q of pts) if (q.r >= r) best = Math.max(best, q.p);
        sum += best;
      }
      apRow.push(sum / 101);
      recRow.push(pts.length ? pts[pts.length - 1].r : 0);
    }
    ap.push(apRow);
    rec.push(recRow);
  }
  return { ap, rec };
}

describe('coco randomized cross-check', () => {
  it('agrees with a direct re-implementation on random scenes', () => {
    const rand = mulberry32(1234);
    const K = 2;
    // GT counts per class are prime to 100 (37, 29) so recall never lands exactly on a recall point.
    const gtCount = [37, 29];
    const nImg = 9;
    const gtLists: { b: number[]; l: number }[][] = Array.from({ length: nImg }, () => []);
    for (let k = 0; k < K; k++) for (let n = 0; n < gtCount[k]; n++) {
      const s = [4 + 8 * rand(), 4 + 8 * rand(), 3 + 6 * rand()];
      const c = [8 + 48 * rand(), 8 + 48 * rand(), 8 + 32 * rand()];
      gtLists[Math.floor(rand() * (nImg - 1))].push({ b: [c[0] - s[0] / 2, c[1] - s[1] / 2, c[2] - s[2] / 2, c[0] + s[0] / 2, c[1] + s[1] / 2, c[2] + s[2] / 2], l: k });
    }
    // last image has no GT at all
    const preds: P[] = [];
    const gts: G[] = [];
    for (let i = 0; i < nImg; i++) {
      const pb: number[][] = [];
      const pl: number[] = [];
      for (const g of gtLists[i]) {
        const copies = rand() < 0.8 ? (rand() < 0.25 ? 2 : 1) : 0;
        for (let c = 0; c < copies; c++) {
          const sz = [0, 1, 2].map((d) => g.b[d + 3] - g.b[d]);
          const jit = [0, 1, 2].map((d) => (rand() - 0.5) * 0.5 * sz[d]);
          const sc = [0, 1, 2].map(() => 0.8 + 0.4 * rand());
          pb.push([0, 1, 2, 0, 1, 2].map((d, j) => {
            const ctr = (g.b[d] + g.b[d + 3]) / 2 + jit[d];
            return ctr + (j < 3 ? -0.5 : 0.5) * sz[d] * sc[d];
          }));
          pl.push(rand() < 0.9 ? g.l : 1 - g.l);
        }
      }
      const nFp = Math.floor(rand() * 4);
      for (let n = 0; n < nFp; n++) {
        const c = [8 + 48 * rand(), 8 + 48 * rand(), 8 + 32 * rand()];
        pb.push([c[0] - 3, c[1] - 3, c[2] - 2, c[0] + 3, c[1] + 3, c[2] + 2]);
        pl.push(rand() < 0.5 ? 0 : 1);
      }
      preds.push({ boxes: new Float32Array(pb.flat()), scores: new Float32Array(pb.map(() => rand())), labels: new Int32Array(pl) });
      gts.push({ boxes: new Float32Array(gtLists[i].flatMap((g) => g.b)), labels: new Int32Array(gtLists[i].map((g) => g.l)) });
    }
    for (const maxDet of [100, 3]) {
      const m = coco(preds, gts, { classes: ['c0', 'c1'], iouList: [0.1, 0.25, 0.5], maxDetection: [maxDet] });
      const st = cocoStatistics(preds, gts, { classes: ['c0', 'c1'], iouList: [0.1, 0.25, 0.5], maxDetection: [maxDet] });
      const ref = reference(preds, gts, K, st.iouThresholds, maxDet);
      const T = st.iouThresholds.length;
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      for (let k = 0; k < K; k++) {
        for (let t = 0; t < T; t++) {
          const key = `c${k}_AP_IoU_${st.iouThresholds[t].toFixed(2)}_MaxDet_${maxDet}`;
          if (key in m) expect(m[key], key).toBeCloseTo(ref.ap[t][k], 6);
        }
        expect(m[`c${k}_mAP_IoU_0.10_0.50_0.05_MaxDet_${maxDet}`]).toBeCloseTo(mean(ref.ap.map((r) => r[k])), 6);
        expect(m[`c${k}_mAR_IoU_0.10_0.50_0.05_MaxDet_${maxDet}`]).toBeCloseTo(mean(ref.rec.map((r) => r[k])), 6);
      }
      expect(m[`mAP_IoU_0.10_0.50_0.05_MaxDet_${maxDet}`]).toBeCloseTo(mean(ref.ap.flat()), 6);
      // the scene is non-trivial: neither perfect nor empty
      expect(m[`mAP_IoU_0.10_0.50_0.05_MaxDet_${maxDet}`]).toBeGreaterThan(0.05);
      expect(m[`mAP_IoU_0.10_0.50_0.05_MaxDet_${maxDet}`]).toBeLessThan(0.95);
      expect(m[`AP_IoU_0.50_MaxDet_${maxDet}`]).toBeLessThan(m[`AP_IoU_0.10_MaxDet_${maxDet}`]);
    }
  });
});
