// COCO-style detection metrics with the semantics of MONAI's COCOMetric
// (monai.apps.detection.metrics.coco, adapted there from nnDetection):
//
//  * IoU thresholds = sorted union of `iouList` and
//    linspace(iouRange[0], iouRange[1], round((b − a)/step) + 1) (exact double
//    values, as numpy computes them).
//  * Matching per image and class (see coco_matching.ts); each image keeps at
//    most max(maxDetection) detections per class, sorted by score.
//  * Per class, threshold and maxDetection entry m: the first m detections of
//    each image (per class) are pooled over images and stably sorted by
//    descending score; cumulative TP/FP give recall = TP/numGt and precision =
//    TP/(TP+FP+2^-52) in float64, as MONAI computes them under NumPy 2 (under
//    NumPy 1 its recall was float32; results differ by < 1e-7); precision is made
//    monotone (running max from the end) and read at the 101 recall points
//    0, 0.01, …, 1 at the first detection whose recall reaches the point (0
//    where recall never gets there). AP = mean of those 101 values; recall
//    (for AR) = the final recall, 0 with no detections.
//  * A class with no ground truth in any image keeps the placeholder −1 for
//    precision and recall (MONAI's choice). mAP/AP over classes average the
//    placeholders in too (so a class absent from the ground truth pulls mAP
//    down, exactly as in MONAI); mAR/AR average only entries > −1 and are −1
//    when none exist.
//  * mAR averages over ALL IoU thresholds (range ∪ list), as MONAI does.
//
// Result keys, in MONAI's order (a = iouRange formatted with 2 decimals, M =
// last maxDetection):  mAP_IoU_a0_a1_a2_MaxDet_M, <cls>_mAP_…, then per
// iouList value v: AP_IoU_v_MaxDet_M, <cls>_AP_…; then per maxDetection entry
// m: mAR_IoU_a0_a1_a2_MaxDet_m, <cls>_mAR_…; then AR_IoU_v_MaxDet_M, <cls>_AR_….
//
// One deliberate difference: MONAI's matching_batch truncates to its own
// default of 100 detections per image and class whatever `max_detection` the
// metric has; here the matching keeps max(maxDetection), which is the same for
// every maxDetection ≤ 100 (the LUNA16 tutorial uses [100]).
import { matchBatch, type ClassMatch, type EvalGroundTruth, type EvalPrediction } from './coco_matching.js';

export type { EvalGroundTruth, EvalPrediction } from './coco_matching.js';

export interface CocoOptions {
  /** Class names; label i refers to classes[i]. */
  classes: readonly string[];
  /** IoU thresholds reported individually (AP_IoU_…, AR_IoU_…). Default [0.1] (MONAI LUNA16 tutorial). */
  iouList?: readonly number[];
  /** (start, stop, step) of the IoU range averaged into mAP/mAR. Default [0.1, 0.5, 0.05]. */
  iouRange?: readonly [number, number, number];
  /** Maximum detections per image and class; one mAR key per entry, AP uses the last. Default [100]. */
  maxDetection?: readonly number[];
  /** Also report every metric per class (keys prefixed with the class name). Default true. */
  perClass?: boolean;
}

export interface CocoStatistics {
  iouThresholds: number[];
  recallThresholds: number[];
  /** [T, R, K, M] row-major; −1 where a class has no ground truth. */
  precision: Float64Array;
  /** [T, K, M]; −1 where a class has no ground truth. */
  recall: Float64Array;
  /** Score at which each recall point is reached, [T, R, K, M]; −1 / 0 as MONAI. */
  scores: Float64Array;
  counts: [number, number, number, number];
}

/** np.spacing(1) = 2^-52, added to TP+FP in the precision denominator as MONAI does (only visible when TP+FP = 1). */
const NP_SPACING_1 = 2.220446049250313e-16;

/** numpy's np.round: round half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** numpy.linspace(start, stop, num) with endpoint=True, value for value. */
export function linspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(i * step + start);
  out[num - 1] = stop;
  return out;
}

function resolveOptions(opts: CocoOptions) {
  if (!opts || !Array.isArray(opts.classes) || opts.classes.length === 0) {
    throw new Error('coco: options.classes must be a non-empty array of class names (label i = classes[i])');
  }
  const iouList = [...(opts.iouList ?? [0.1])];
  const iouRange = (opts.iouRange ?? [0.1, 0.5, 0.05]) as [number, number, number];
  const maxDetection = [...(opts.maxDetection ?? [100])];
  for (const v of [...iouList, iouRange[0], iouRange[1]]) {
    if (!(v > 0 && v <= 1)) throw new Error(`coco: IoU thresholds must lie in (0, 1]; got ${v}`);
  }
  if (!(iouRange[2] > 0) || iouRange[1] < iouRange[0]) {
    throw new Error(`coco: iouRange must be [start, stop, step] with start ≤ stop and step > 0; got [${iouRange.join(', ')}]`);
  }
  if (maxDetection.length === 0 || maxDetection.some((m) => !Number.isInteger(m) || m < 1)) {
    throw new Error(`coco: maxDetection must be a non-empty list of positive integers; got [${maxDetection.join(', ')}]`);
  }
  const rangeVals = linspace(iouRange[0], iouRange[1], roundHalfEven((iouRange[1] - iouRange[0]) / iouRange[2]) + 1);
  const iouThresholds = [...new Set([...iouList, ...rangeVals])].sort((a, b) => a - b);
  const listIdx = iouList.map((v) => iouThresholds.indexOf(v));
  const rangeIdx = rangeVals.map((v) => iouThresholds.indexOf(v));
  const recallThresholds = linspace(0, 1, roundHalfEven((1 - 0) / 0.01) + 1);
  return { classes: opts.classes, iouList, iouRange, maxDetection, perClass: opts.perClass ?? true, iouThresholds, listIdx, rangeIdx, recallThresholds };
}

/** Precision/recall statistics over the data set (MONAI's _compute_statistics). */
function accumulate(perImage: Map<number, ClassMatch>[], K: number, iouThresholds: number[], recallThresholds: number[], maxDetection: number[]): CocoStatistics {
  const T = iouThresholds.length;
  const R = recallThresholds.length;
  const M = maxDetection.length;
  const precision = new Float64Array(T * R * K * M).fill(-1);
  const recall = new Float64Array(T * K * M).fill(-1);
  const scoresAt = new Float64Array(T * R * K * M).fill(-1);
  for (let k = 0; k < K; k++) {
    const results = perImage.map((m) => m.get(k)).filter((r): r is ClassMatch => r !== undefined);
    if (results.length === 0) continue;
    const numGt = results.reduce((s, r) => s + r.numGt, 0);
    if (numGt === 0) continue;
    for (let mi = 0; mi < M; mi++) {
      const maxDet = maxDetection[mi];
      // Pool the first maxDet detections of every image: (score, image, index).
      const pool: { s: number; r: ClassMatch; d: number }[] = [];
      for (const r of results) {
        const n = Math.min(maxDet, r.scores.length);
        for (let d = 0; d < n; d++) pool.push({ s: r.scores[d], r, d });
      }
      pool.sort((a, b) => b.s - a.s); // stable, like numpy mergesort on −score
      const n = pool.length;
      const rc = new Float64Array(n);
      const pr = new Float64Array(n);
      for (let t = 0; t < T; t++) {
        let tp = 0;
        for (let i = 0; i < n; i++) {
          const e = pool[i];
          tp += e.r.matches[t * e.r.scores.length + e.d];
          rc[i] = tp / numGt;
          pr[i] = tp / (i + 1 + NP_SPACING_1);
        }
        recall[(t * K + k) * M + mi] = n > 0 ? rc[n - 1] : 0;
        for (let i = n - 1; i > 0; i--) if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
        let i = 0;
        for (let j = 0; j < R; j++) {
          const at = ((t * R + j) * K + k) * M + mi;
          while (i < n && rc[i] < recallThresholds[j]) i++;
          if (i >= n) {
            // MONAI stops filling at the first unreachable recall point: zeros remain.
            for (let jj = j; jj < R; jj++) {
              precision[((t * R + jj) * K + k) * M + mi] = 0;
              scoresAt[((t * R + jj) * K + k) * M + mi] = 0;
            }
            break;
          }
          precision[at] = pr[i];
          scoresAt[at] = pool[i].s;
        }
      }
    }
  }
  return { iouThresholds, recallThresholds, precision, recall, scores: scoresAt, counts: [T, R, K, M] };
}

/** Mean precision over the given thresholds, all recall points and the given classes (−1 entries included, as MONAI). */
function selectAp(st: CocoStatistics, tIdx: number[], kIdx: number[], mi: number): number {
  const [, R, K, M] = st.counts;
  let s = 0;
  let c = 0;
  for (const t of tIdx) for (let j = 0; j < R; j++) for (const k of kIdx) {
    s += st.precision[((t * R + j) * K + k) * M + mi];
    c++;
  }
  return s / c;
}

/** Mean recall over entries > −1; −1 when there are none (MONAI's _select_ar). */
function selectAr(st: CocoStatistics, tIdx: number[], kIdx: number[], mi: number): number {
  const [, , K, M] = st.counts;
  let s = 0;
  let c = 0;
  for (const t of tIdx) for (const k of kIdx) {
    const v = st.recall[(t * K + k) * M + mi];
    if (v > -1) {
      s += v;
      c++;
    }
  }
  return c === 0 ? -1 : s / c;
}

const fmt2 = (v: number) => v.toFixed(2);

/**
 * Computes the statistics (precision/recall arrays) behind `coco`, for
 * plotting or custom summaries.
 */
export function cocoStatistics(predictions: readonly EvalPrediction[], groundTruth: readonly EvalGroundTruth[], options: CocoOptions): CocoStatistics {
  return cocoWithStatistics(predictions, groundTruth, options).statistics;
}

/**
 * COCO metrics of per-image predictions against per-image ground truth
 * (same order, one entry per image). Returns MONAI-named keys → values.
 */
export function coco(predictions: readonly EvalPrediction[], groundTruth: readonly EvalGroundTruth[], options: CocoOptions): Record<string, number> {
  return cocoWithStatistics(predictions, groundTruth, options).metrics;
}

/** `coco` and `cocoStatistics` in one pass (the matching runs once). */
export function cocoWithStatistics(
  predictions: readonly EvalPrediction[],
  groundTruth: readonly EvalGroundTruth[],
  options: CocoOptions,
): { metrics: Record<string, number>; statistics: CocoStatistics } {
  const o = resolveOptions(options);
  const st = accumulate(
    matchBatch(predictions, groundTruth, o.iouThresholds, o.classes.length, Math.max(...o.maxDetection)),
    o.classes.length,
    o.iouThresholds,
    o.recallThresholds,
    o.maxDetection,
  );
  const K = o.classes.length;
  const allK = [...Array(K).keys()];
  const allT = [...o.iouThresholds.keys()];
  const lastM = o.maxDetection.length - 1;
  const maxDetLast = o.maxDetection[lastM];
  const range = `IoU_${fmt2(o.iouRange[0])}_${fmt2(o.iouRange[1])}_${fmt2(o.iouRange[2])}`;
  const out: Record<string, number> = {};

  out[`mAP_${range}_MaxDet_${maxDetLast}`] = selectAp(st, o.rangeIdx, allK, lastM);
  if (o.perClass) o.classes.forEach((name, k) => (out[`${name}_mAP_${range}_MaxDet_${maxDetLast}`] = selectAp(st, o.rangeIdx, [k], lastM)));
  for (const t of o.listIdx) {
    const key = `AP_IoU_${fmt2(o.iouThresholds[t])}_MaxDet_${maxDetLast}`;
    out[key] = selectAp(st, [t], allK, lastM);
    if (o.perClass) o.classes.forEach((name, k) => (out[`${name}_${key}`] = selectAp(st, [t], [k], lastM)));
  }
  o.maxDetection.forEach((m, mi) => {
    out[`mAR_${range}_MaxDet_${m}`] = selectAr(st, allT, allK, mi);
    if (o.perClass) o.classes.forEach((name, k) => (out[`${name}_mAR_${range}_MaxDet_${m}`] = selectAr(st, allT, [k], mi)));
  });
  for (const t of o.listIdx) {
    const key = `AR_IoU_${fmt2(o.iouThresholds[t])}_MaxDet_${maxDetLast}`;
    out[key] = selectAr(st, [t], allK, lastM);
    if (o.perClass) o.classes.forEach((name, k) => (out[`${name}_${key}`] = selectAr(st, [t], [k], lastM)));
  }
  return { metrics: out, statistics: st };
}

/**
 * AP at one IoU threshold of `st` (MONAI's _select_ap over all classes at the
 * last maxDetection entry). `iou` matches a threshold within 1e-9, so 0.3
 * finds the range value 0.30000000000000004; undefined when absent.
 */
export function apAtIou(st: CocoStatistics, iou: number): number | undefined {
  const t = st.iouThresholds.findIndex((v) => Math.abs(v - iou) < 1e-9);
  if (t < 0) return undefined;
  const [, , K, M] = st.counts;
  return selectAp(st, [t], [...Array(K).keys()], M - 1);
}

/**
 * One-line summary for logs: mAP over the IoU range, AP at IoU 0.1/0.3/0.5
 * and mAR, from a `coco` result. AP values whose key is not in the result
 * (e.g. 0.3 when iouList is the LUNA16 default [0.1]) are taken from
 * `statistics` when given (cocoStatistics of the same data, any threshold of
 * the range), else shown as "n/a".
 */
export function formatHeadline(metrics: Record<string, number>, statistics?: CocoStatistics): string {
  const keys = Object.keys(metrics);
  const find = (re: RegExp) => {
    const k = keys.find((key) => re.test(key));
    return k === undefined ? undefined : metrics[k];
  };
  const ap = (iou: number, re: RegExp) => find(re) ?? (statistics ? apAtIou(statistics, iou) : undefined);
  const show = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(4));
  // Class-less keys start with the metric name; the last mAR key uses the largest MaxDet entry.
  const marKeys = keys.filter((k) => /^mAR_IoU_/.test(k));
  const mar = marKeys.length ? metrics[marKeys[marKeys.length - 1]] : undefined;
  return [
    `mAP ${show(find(/^mAP_IoU_/))}`,
    `mAP@0.1 ${show(ap(0.1, /^AP_IoU_0\.10_/))}`,
    `mAP@0.3 ${show(ap(0.3, /^AP_IoU_0\.30_/))}`,
    `mAP@0.5 ${show(ap(0.5, /^AP_IoU_0\.50_/))}`,
    `mAR ${show(mar)}`,
  ].join(' | ');
}
