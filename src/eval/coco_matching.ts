// Per-image, per-class greedy matching of detections to ground truth, with
// the semantics of MONAI's `matching_batch` (monai.apps.detection.metrics,
// itself from nnDetection / pycocotools):
//   - detections of one class in one image are stably sorted by descending
//     score and truncated to `maxDetections`;
//   - for every IoU threshold t independently, detections are visited from the
//     highest score; each takes, among the ground-truth boxes not yet matched
//     at t, the one with the highest IoU ≥ t (ties in IoU go to the later
//     ground-truth box, as MONAI's `<` comparison does);
//   - an image with detections but no ground truth of a class yields only
//     false positives; ground truth without detections yields only misses.
// No ground-truth "ignore" flags exist in detseg3d, so none are modelled.
import { boxIou3d, type BoxArray } from './box_iou.js';

export interface EvalPrediction {
  /** 6 numbers per box: x1, y1, z1, x2, y2, z2 (voxel units, [x1, x2)). */
  boxes: BoxArray;
  scores: Float32Array | Float64Array;
  /** Class index per box, 0-based into `classes`. */
  labels: Int32Array | Uint8Array | Uint16Array | Uint32Array | Int16Array | Float32Array | number[];
}

export interface EvalGroundTruth {
  boxes: BoxArray;
  labels: EvalPrediction['labels'];
}

/** Matching of one class in one image. */
export interface ClassMatch {
  /** Scores of the kept detections, sorted descending (stable). */
  scores: Float64Array;
  /** matches[t * nDet + d] = 1 when detection d is a true positive at threshold t. */
  matches: Uint8Array;
  numGt: number;
}

function ascendingStableByScoreDesc(scores: ArrayLike<number>, idx: number[]): number[] {
  // Array.prototype.sort is stable (ES2019), which matches numpy's mergesort.
  return idx.sort((p, q) => scores[q] - scores[p]);
}

/** Validates one image's arrays and returns the number of boxes. */
function checkImage(what: string, i: number, boxes: BoxArray, labels: ArrayLike<number>, numClasses: number, scores?: ArrayLike<number>): number {
  if (!boxes || boxes.length % 6 !== 0) {
    throw new Error(`coco: ${what}[${i}].boxes must hold 6 numbers per box (x1,y1,z1,x2,y2,z2); got length ${boxes?.length}`);
  }
  const n = boxes.length / 6;
  if (!labels || labels.length !== n) {
    throw new Error(`coco: ${what}[${i}] has ${n} boxes but ${labels?.length} labels; give one label per box`);
  }
  if (scores !== undefined && (!scores || scores.length !== n)) {
    throw new Error(`coco: ${what}[${i}] has ${n} boxes but ${scores?.length} scores; give one score per box`);
  }
  for (let k = 0; k < n; k++) {
    const l = labels[k];
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) {
      throw new Error(`coco: ${what}[${i}].labels[${k}] = ${l} is not a class index in [0, ${numClasses}); labels index into options.classes`);
    }
    if (scores !== undefined && Number.isNaN(scores[k])) {
      throw new Error(`coco: ${what}[${i}].scores[${k}] is NaN`);
    }
  }
  return n;
}

function gather(boxes: BoxArray, idx: number[]): Float64Array {
  const out = new Float64Array(idx.length * 6);
  idx.forEach((b, k) => {
    for (let j = 0; j < 6; j++) out[6 * k + j] = boxes[6 * b + j];
  });
  return out;
}

/**
 * Matches every image: result[image] maps class index → ClassMatch, with an
 * entry only for classes present among that image's detections or ground truth.
 */
export function matchBatch(
  predictions: readonly EvalPrediction[],
  groundTruth: readonly EvalGroundTruth[],
  iouThresholds: readonly number[],
  numClasses: number,
  maxDetections: number,
): Map<number, ClassMatch>[] {
  if (predictions.length !== groundTruth.length) {
    throw new Error(`coco: ${predictions.length} prediction entries but ${groundTruth.length} ground-truth entries; give one of each per image, in the same order`);
  }
  const T = iouThresholds.length;
  const out: Map<number, ClassMatch>[] = [];
  for (let i = 0; i < predictions.length; i++) {
    const p = predictions[i];
    const g = groundTruth[i];
    const np = checkImage('predictions', i, p.boxes, p.labels, numClasses, p.scores);
    const ng = checkImage('groundTruth', i, g.boxes, g.labels, numClasses);
    const byClass = new Map<number, { det: number[]; gt: number[] }>();
    const slot = (c: number) => {
      let s = byClass.get(c);
      if (!s) byClass.set(c, (s = { det: [], gt: [] }));
      return s;
    };
    for (let k = 0; k < np; k++) slot(p.labels[k]).det.push(k);
    for (let k = 0; k < ng; k++) slot(g.labels[k]).gt.push(k);

    const result = new Map<number, ClassMatch>();
    for (const [c, { det, gt }] of [...byClass.entries()].sort((a, b) => a[0] - b[0])) {
      const kept = ascendingStableByScoreDesc(p.scores, det).slice(0, maxDetections);
      const D = kept.length;
      const scores = new Float64Array(D);
      kept.forEach((k, d) => (scores[d] = p.scores[k]));
      const matches = new Uint8Array(T * D);
      if (D > 0 && gt.length > 0) {
        const G = gt.length;
        const ious = boxIou3d(gather(p.boxes, kept), gather(g.boxes, gt));
        const gtTaken = new Uint8Array(G);
        for (let t = 0; t < T; t++) {
          gtTaken.fill(0);
          for (let d = 0; d < D; d++) {
            let best = Math.min(iouThresholds[t], 1 - 1e-10);
            let m = -1;
            for (let j = 0; j < G; j++) {
              if (gtTaken[j]) continue;
              const v = ious[d * G + j];
              if (v < best) continue;
              best = v;
              m = j;
            }
            if (m >= 0) {
              matches[t * D + d] = 1;
              gtTaken[m] = 1;
            }
          }
        }
      }
      result.set(c, { scores, matches, numGt: gt.length });
    }
    out.push(result);
  }
  return out;
}
