// FROC analysis and the LUNA16 competition performance metric (CPM).
//
// What is replicated from LUNA16's evaluation script (noduleCADEvaluationLUNA16.py,
// evaluateCAD / computeFROC / computeFROC_bootstrap):
// - Hit: a detection hits a lesion when its centre lies strictly within the
//   lesion's radius (distance < radius; LUNA16's radius is half the nodule
//   diameter; here half the lesion box's largest side, in mm when the scan's
//   spacing is given, else in voxels). criterion 'iou' replaces this by
//   IoU(detection, lesion) >= iouThreshold.
// - Per lesion only the highest-scoring hit counts (its score becomes the
//   lesion's score); every other detection that hits a lesion is ignored,
//   neither TP nor FP. A detection may hit several lesions and then counts for
//   each (LUNA16 logs this as "strange" but counts it). A missed lesion stays
//   in the sensitivity denominator. Detections hitting no lesion are FPs,
//   except those hitting an `ignore` region (LUNA16's annotations_excluded.csv
//   with bOtherNodulesAsIrrelevant), which are dropped.
// - The FROC curve is the ROC of the lesion scores (positives) against the FP
//   scores (negatives), one point per distinct score threshold plus (0, 0):
//   FPs per scan = FP count with score >= t / number of scans, sensitivity =
//   detected lesions with score >= t / all lesions. The middle one of three
//   points on a horizontal or vertical line is dropped (sklearn's
//   drop_intermediate), which leaves the interpolated curve unchanged.
// - Sensitivity at an FP rate f is numpy.interp(f, fps, sens) on that curve
//   (linear between points; at a vertical step the upper value; beyond the
//   last point the last value), as LUNA16's script and MONAI's
//   compute_froc_score do. CPM = mean over 1/8, 1/4, 1/2, 1, 2, 4, 8.
// - Bootstrap: scans are resampled with replacement (same count), the curve
//   recomputed, and per FP rate the mean and the percentile interval
//   sorted[floor(a*B)], sorted[floor((1-a)*B)] with a = (1-confidence)/2,
//   as compute_mean_ci does. Added here: a seeded generator, a CI for the CPM
//   itself, and skipping resamples that contain no lesion (LUNA16 would
//   produce NaN there); `bootstrap.used` says how many remained.
// Scans are the ground-truth entries (a scan without lesions needs an entry
// with no boxes); predictions for scans without a ground-truth entry are an
// error, scans without predictions have no detections.
import { checkBoxes } from '../infer/export.js';

type Boxes = Float32Array | Float64Array;
type Triple = [number, number, number];

export interface FrocPrediction {
  id: string;
  /** [x1,y1,z1,x2,y2,z2) per box, voxels (or mm with spacing [1,1,1]). */
  boxes: Boxes;
  scores: Float32Array | Float64Array;
  labels?: Int32Array;
  /** Voxel spacing (x, y, z) in mm; may be given here or on the ground truth (must agree). */
  spacing?: Triple;
}

export interface FrocGroundTruth {
  id: string;
  boxes: Boxes;
  labels?: Int32Array;
  /** Regions whose hits are neither TP nor FP (LUNA16's excluded annotations). */
  ignore?: Boxes;
  spacing?: Triple;
}

export const LUNA16_FP_RATES: readonly number[] = [0.125, 0.25, 0.5, 1, 2, 4, 8];

export interface FrocOptions {
  criterion?: 'distance' | 'iou';
  /** IoU needed for a hit with criterion 'iou' (default 0.1). */
  iouThreshold?: number;
  /** FP-per-scan rates of the sensitivities and the CPM (default LUNA16's seven). */
  fpRates?: readonly number[];
  /** Number of bootstrap resamples; 0 disables the CI (default 1000, as LUNA16). */
  bootstraps?: number;
  /** Seed of the bootstrap generator (default 0): same seed, same CI. */
  seed?: number;
  /** Confidence level of the intervals (default 0.95). */
  confidence?: number;
  /** With labels on both sides, only same-label hits count (default true). */
  classAware?: boolean;
  /** Keep only the top-k detections per scan (LUNA16's maxNumberOfCADMarks); default all. */
  maxDetectionsPerScan?: number;
  /** FP-rate range of the bootstrap band for plotting (default [0.1, 8.5], LUNA16's plot range). */
  plotRange?: readonly [number, number];
}

export interface FrocCurve {
  /** Average false positives per scan at each threshold (non-decreasing), starting at 0. */
  fps: number[];
  sensitivity: number[];
  /** Score threshold of each point (Infinity for the origin). */
  thresholds: number[];
}

export interface FrocBand {
  fps: number[];
  mean: number[];
  lower: number[];
  upper: number[];
}

export interface FrocResult {
  fpRates: number[];
  sensitivity: number[];
  cpm: number;
  curve: FrocCurve;
  counts: {
    scans: number;
    lesions: number;
    /** Lesions hit by at least one detection (at any threshold). */
    detectedLesions: number;
    detections: number;
    falsePositives: number;
    /** Extra hits on already-hit lesions (ignored), summed over lesions as LUNA16 does. */
    duplicateHits: number;
    /** Detections dropped because they hit only ignore regions. */
    ignored: number;
  };
  perScan: { id: string; lesions: number; detectedLesions: number; falsePositives: number }[];
  bootstrap?: {
    samples: number;
    used: number;
    seed: number;
    confidence: number;
    mean: number[];
    lower: number[];
    upper: number[];
    cpm: { mean: number; lower: number; upper: number };
    /** Mean and interval on a log-spaced grid over plotRange, for plotting. */
    band: FrocBand;
  };
}

interface ScanMatch {
  lesionScores: Float64Array; // -Infinity for missed lesions
  fpScores: Float64Array;
  duplicateHits: number;
  ignored: number;
  detections: number;
}

function checkSpacing(s: Triple | undefined, where: string): void {
  if (s === undefined) return;
  if (!Array.isArray(s) || s.length !== 3 || s.some((v) => !(Number.isFinite(v) && v > 0))) {
    throw new Error(`${where}: spacing must be three positive numbers (x, y, z mm), got ${JSON.stringify(s)}`);
  }
}

function iou3d(a: Boxes, i: number, b: Boxes, j: number): number {
  let inter = 1;
  let va = 1;
  let vb = 1;
  for (let k = 0; k < 3; k++) {
    const lo = Math.max(a[6 * i + k], b[6 * j + k]);
    const hi = Math.min(a[6 * i + 3 + k], b[6 * j + 3 + k]);
    inter *= Math.max(0, hi - lo);
    va *= a[6 * i + 3 + k] - a[6 * i + k];
    vb *= b[6 * j + 3 + k] - b[6 * j + k];
  }
  const union = va + vb - inter;
  return union > 0 ? inter / union : 0;
}

/** True when detection i hits region j of `gt` under the chosen criterion. */
function hits(det: Boxes, i: number, gt: Boxes, j: number, spacing: Triple, criterion: 'distance' | 'iou', iouThr: number): boolean {
  if (criterion === 'iou') return iou3d(det, i, gt, j) >= iouThr;
  let d2 = 0;
  let diameter = 0;
  for (let k = 0; k < 3; k++) {
    const cd = (det[6 * i + k] + det[6 * i + 3 + k]) / 2;
    const cg = (gt[6 * j + k] + gt[6 * j + 3 + k]) / 2;
    const dk = (cd - cg) * spacing[k];
    d2 += dk * dk;
    diameter = Math.max(diameter, (gt[6 * j + 3 + k] - gt[6 * j + k]) * spacing[k]);
  }
  return d2 < (diameter / 2) ** 2;
}

function matchScan(
  pred: FrocPrediction | undefined,
  gt: FrocGroundTruth,
  spacing: Triple,
  opts: Required<Pick<FrocOptions, 'criterion' | 'iouThreshold' | 'classAware'>> & { maxDet: number },
): ScanMatch {
  const nLes = gt.boxes.length / 6;
  const lesionScores = new Float64Array(nLes).fill(-Infinity);
  if (!pred) return { lesionScores, fpScores: new Float64Array(0), duplicateHits: 0, ignored: 0, detections: 0 };
  let order = Array.from({ length: pred.scores.length }, (_, i) => i).sort((a, b) => pred.scores[b] - pred.scores[a] || a - b);
  if (order.length > opts.maxDet) order = order.slice(0, opts.maxDet);
  const useLabels = opts.classAware && pred.labels !== undefined && gt.labels !== undefined;
  const matched = new Uint8Array(pred.scores.length);
  let duplicateHits = 0;
  for (let j = 0; j < nLes; j++) {
    let nHits = 0;
    for (const i of order) {
      if (useLabels && pred.labels![i] !== gt.labels![j]) continue;
      if (!hits(pred.boxes, i, gt.boxes, j, spacing, opts.criterion, opts.iouThreshold)) continue;
      nHits++;
      matched[i] = 1;
      lesionScores[j] = Math.max(lesionScores[j], pred.scores[i]);
    }
    duplicateHits += Math.max(0, nHits - 1);
  }
  const fp: number[] = [];
  let ignored = 0;
  const ign = gt.ignore;
  for (const i of order) {
    if (matched[i]) continue;
    let isIgnored = false;
    if (ign) {
      for (let j = 0; j < ign.length / 6 && !isIgnored; j++) isIgnored = hits(pred.boxes, i, ign, j, spacing, opts.criterion, opts.iouThreshold);
    }
    if (isIgnored) ignored++;
    else fp.push(pred.scores[i]);
  }
  return { lesionScores, fpScores: Float64Array.from(fp), duplicateHits, ignored, detections: order.length };
}

/** Sorted scoring events shared by the point estimate and every bootstrap resample. */
interface Events {
  score: Float64Array; // descending
  positive: Uint8Array; // 1 = lesion entry, 0 = FP
  scan: Int32Array;
}

function buildEvents(matches: ScanMatch[]): Events {
  let n = 0;
  for (const m of matches) {
    for (const s of m.lesionScores) if (s > -Infinity) n++;
    n += m.fpScores.length;
  }
  const score = new Float64Array(n);
  const positive = new Uint8Array(n);
  const scan = new Int32Array(n);
  let k = 0;
  matches.forEach((m, sc) => {
    for (const s of m.lesionScores) {
      if (s === -Infinity) continue;
      score[k] = s;
      positive[k] = 1;
      scan[k++] = sc;
    }
    for (const s of m.fpScores) {
      score[k] = s;
      scan[k++] = sc;
    }
  });
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => score[b] - score[a]);
  return {
    score: Float64Array.from(order, (i) => score[i]),
    positive: Uint8Array.from(order, (i) => positive[i]),
    scan: Int32Array.from(order, (i) => scan[i]),
  };
}

/** FROC curve with each scan counted `weight[scan]` times (all ones: the plain curve). */
function curveFromEvents(ev: Events, weight: Float64Array, lesionsPerScan: Int32Array): FrocCurve | null {
  let scans = 0;
  let lesions = 0;
  for (let s = 0; s < weight.length; s++) {
    scans += weight[s];
    lesions += weight[s] * lesionsPerScan[s];
  }
  if (lesions === 0) return null;
  const fps = [0];
  const sensitivity = [0];
  const thresholds = [Infinity];
  let tp = 0;
  let fp = 0;
  let k = 0;
  while (k < ev.score.length) {
    const t = ev.score[k];
    let any = false;
    for (; k < ev.score.length && ev.score[k] === t; k++) {
      const w = weight[ev.scan[k]];
      if (w === 0) continue;
      any = true;
      if (ev.positive[k]) tp += w;
      else fp += w;
    }
    if (!any) continue;
    const f = fp / scans;
    const sens = tp / lesions;
    // Drop the middle of three points on one horizontal or vertical line, as sklearn's
    // roc_curve(drop_intermediate=True) does; linear interpolation is unchanged by this.
    const m = fps.length;
    if (m >= 2 && ((sensitivity[m - 1] === sens && sensitivity[m - 2] === sens) || (fps[m - 1] === f && fps[m - 2] === f))) {
      fps[m - 1] = f;
      sensitivity[m - 1] = sens;
      thresholds[m - 1] = t;
    } else {
      fps.push(f);
      sensitivity.push(sens);
      thresholds.push(t);
    }
  }
  return { fps, sensitivity, thresholds };
}

/**
 * Sensitivities at sorted `queries` (ascending) of the curve with scan
 * weights, streamed over the events without building the curve (the
 * bootstrap's inner loop). Same numpy.interp semantics as sensitivityAt.
 * Returns false when the weighted study has no lesion.
 */
function sensitivitiesStreamed(ev: Events, weight: Float64Array, lesionsPerScan: Int32Array, queries: Float64Array, out: Float64Array): boolean {
  let scans = 0;
  let lesions = 0;
  for (let s = 0; s < weight.length; s++) {
    scans += weight[s];
    lesions += weight[s] * lesionsPerScan[s];
  }
  if (lesions === 0) return false;
  const nq = queries.length;
  let qi = 0;
  let prevF = 0;
  let prevS = 0;
  let tp = 0;
  let fp = 0;
  let k = 0;
  const n = ev.score.length;
  while (k < n && qi < nq) {
    const t = ev.score[k];
    let any = false;
    for (; k < n && ev.score[k] === t; k++) {
      const w = weight[ev.scan[k]];
      if (w === 0) continue;
      any = true;
      if (ev.positive[k]) tp += w;
      else fp += w;
    }
    if (!any) continue;
    const f = fp / scans;
    const sens = tp / lesions;
    // Pending queries q satisfy q >= prevF; those below f interpolate on (prev, this point).
    while (qi < nq && queries[qi] < f) {
      out[qi] = prevS + ((queries[qi] - prevF) / (f - prevF)) * (sens - prevS);
      qi++;
    }
    prevF = f;
    prevS = sens;
  }
  // The loop only ends with queries pending once every event is read: they lie at or beyond the
  // last point and take its sensitivity.
  for (; qi < nq; qi++) out[qi] = prevS;
  return true;
}

/**
 * Sensitivity at `rate` FPs per scan: numpy.interp semantics on the curve
 * (fps non-decreasing; at repeated fps values the last point wins).
 */
export function sensitivityAt(curve: Pick<FrocCurve, 'fps' | 'sensitivity'>, rate: number): number {
  const { fps, sensitivity: s } = curve;
  const n = fps.length;
  if (n === 0) return NaN;
  if (rate < fps[0]) return s[0];
  if (rate >= fps[n - 1]) return s[n - 1];
  // Last j with fps[j] <= rate; then fps[j + 1] > rate.
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fps[mid] <= rate) lo = mid;
    else hi = mid;
  }
  const t = (rate - fps[lo]) / (fps[lo + 1] - fps[lo]);
  return s[lo] + t * (s[lo + 1] - s[lo]);
}

/** Deterministic 32-bit generator (mulberry32), uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentileInterval(values: number[], confidence: number): { mean: number; lower: number; upper: number } {
  const v = values.slice().sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return { mean: NaN, lower: NaN, upper: NaN };
  const pz = (1 - confidence) / 2;
  const mean = v.reduce((a, b) => a + b, 0) / n;
  return { mean, lower: v[Math.min(n - 1, Math.floor(pz * n))], upper: v[Math.min(n - 1, Math.floor((1 - pz) * n))] };
}

function logGrid(lo: number, hi: number, n: number): number[] {
  const a = Math.log(lo);
  const b = Math.log(hi);
  return Array.from({ length: n }, (_, i) => Math.exp(a + ((b - a) * i) / (n - 1)));
}

/** FROC / CPM of predictions against ground truth; see the file comment for the exact semantics. */
export function froc(predictions: FrocPrediction[], groundTruth: FrocGroundTruth[], opts: FrocOptions = {}): FrocResult {
  const criterion = opts.criterion ?? 'distance';
  if (criterion !== 'distance' && criterion !== 'iou') throw new Error(`froc: criterion must be 'distance' or 'iou', got '${criterion}'`);
  const iouThreshold = opts.iouThreshold ?? 0.1;
  if (!(iouThreshold > 0 && iouThreshold <= 1)) throw new Error(`froc: iouThreshold must be in (0, 1], got ${iouThreshold}`);
  const fpRates = [...(opts.fpRates ?? LUNA16_FP_RATES)];
  if (fpRates.length === 0 || fpRates.some((r) => !(Number.isFinite(r) && r > 0))) throw new Error(`froc: fpRates must be positive numbers, got ${JSON.stringify(fpRates)}`);
  const nBoot = opts.bootstraps ?? 1000;
  if (!Number.isInteger(nBoot) || nBoot < 0) throw new Error(`froc: bootstraps must be a non-negative integer, got ${nBoot}`);
  const confidence = opts.confidence ?? 0.95;
  if (!(confidence > 0 && confidence < 1)) throw new Error(`froc: confidence must be in (0, 1), got ${confidence}`);
  const seed = opts.seed ?? 0;
  const maxDet = opts.maxDetectionsPerScan ?? Infinity;
  if (!(maxDet >= 1)) throw new Error(`froc: maxDetectionsPerScan must be >= 1, got ${maxDet}`);
  const plotRange = opts.plotRange ?? [0.1, 8.5];
  if (!(plotRange[0] > 0 && plotRange[1] > plotRange[0])) throw new Error(`froc: plotRange must be 0 < lo < hi, got ${JSON.stringify(plotRange)}`);

  if (!Array.isArray(groundTruth) || groundTruth.length === 0) throw new Error('froc: groundTruth must list every evaluated scan (at least one)');
  const gtIndex = new Map<string, number>();
  groundTruth.forEach((g, s) => {
    if (typeof g.id !== 'string') throw new Error(`froc: groundTruth[${s}].id must be a string`);
    if (gtIndex.has(g.id)) throw new Error(`froc: scan id '${g.id}' appears twice in groundTruth`);
    gtIndex.set(g.id, s);
    const n = checkBoxes(g.boxes, `groundTruth '${g.id}' boxes`);
    if (g.labels !== undefined && g.labels.length !== n) throw new Error(`groundTruth '${g.id}': ${n} boxes but ${g.labels.length} labels`);
    if (g.ignore !== undefined) checkBoxes(g.ignore, `groundTruth '${g.id}' ignore`);
    checkSpacing(g.spacing, `groundTruth '${g.id}'`);
  });
  const predFor: (FrocPrediction | undefined)[] = new Array(groundTruth.length);
  predictions.forEach((p, k) => {
    const s = gtIndex.get(p.id);
    if (s === undefined) {
      throw new Error(`froc: prediction for scan '${p.id}' has no ground-truth entry; add {id: '${p.id}', boxes: new Float32Array(0)} if it has no lesions`);
    }
    if (predFor[s]) throw new Error(`froc: scan id '${p.id}' appears twice in predictions`);
    const n = checkBoxes(p.boxes, `predictions '${p.id}' boxes`);
    if (p.scores.length !== n) throw new Error(`predictions '${p.id}': ${n} boxes but ${p.scores.length} scores`);
    if (p.labels !== undefined && p.labels.length !== n) throw new Error(`predictions '${p.id}': ${n} boxes but ${p.labels.length} labels`);
    for (let i = 0; i < n; i++) if (!Number.isFinite(p.scores[i])) throw new Error(`predictions '${p.id}': score ${i} is not finite (${p.scores[i]})`);
    checkSpacing(p.spacing, `predictions '${p.id}'`);
    const g = groundTruth[s].spacing;
    if (p.spacing && g && p.spacing.some((v, a) => Math.abs(v - g[a]) > 1e-6 * Math.max(1, Math.abs(g[a])))) {
      throw new Error(`froc: scan '${p.id}': prediction spacing ${p.spacing.join(',')} differs from ground-truth spacing ${g.join(',')}`);
    }
    predFor[s] = predictions[k];
  });

  const matchOpts = { criterion, iouThreshold, classAware: opts.classAware ?? true, maxDet };
  const matches = groundTruth.map((g, s) => matchScan(predFor[s], g, g.spacing ?? predFor[s]?.spacing ?? [1, 1, 1], matchOpts));
  const lesionsPerScan = Int32Array.from(matches, (m) => m.lesionScores.length);
  const totalLesions = lesionsPerScan.reduce((a, b) => a + b, 0);
  if (totalLesions === 0) throw new Error('froc: the ground truth has no lesions; sensitivity is undefined');

  const events = buildEvents(matches);
  const ones = new Float64Array(groundTruth.length).fill(1);
  const curve = curveFromEvents(events, ones, lesionsPerScan)!;
  const sensitivity = fpRates.map((r) => sensitivityAt(curve, r));
  const cpm = sensitivity.reduce((a, b) => a + b, 0) / sensitivity.length;

  const result: FrocResult = {
    fpRates,
    sensitivity,
    cpm,
    curve,
    counts: {
      scans: groundTruth.length,
      lesions: totalLesions,
      detectedLesions: matches.reduce((a, m) => a + m.lesionScores.filter((s) => s > -Infinity).length, 0),
      detections: matches.reduce((a, m) => a + m.detections, 0),
      falsePositives: matches.reduce((a, m) => a + m.fpScores.length, 0),
      duplicateHits: matches.reduce((a, m) => a + m.duplicateHits, 0),
      ignored: matches.reduce((a, m) => a + m.ignored, 0),
    },
    perScan: matches.map((m, s) => ({
      id: groundTruth[s].id,
      lesions: m.lesionScores.length,
      detectedLesions: m.lesionScores.filter((v) => v > -Infinity).length,
      falsePositives: m.fpScores.length,
    })),
  };

  if (nBoot > 0) {
    const rand = mulberry32(seed);
    const nScans = groundTruth.length;
    const weight = new Float64Array(nScans);
    const grid = logGrid(plotRange[0], plotRange[1], 121);
    // One ascending query list for the FP rates and the plotting grid.
    const all = [...fpRates.map((v, i) => ({ v, slot: i })), ...grid.map((v, i) => ({ v, slot: fpRates.length + i }))].sort((a, b) => a.v - b.v);
    const queries = Float64Array.from(all, (q) => q.v);
    const nq = queries.length;
    const out = new Float64Array(nq);
    const samples = new Float64Array(nBoot * nq); // [used sample][slot]
    const cpms: number[] = [];
    for (let b = 0; b < nBoot; b++) {
      weight.fill(0);
      for (let k = 0; k < nScans; k++) weight[Math.floor(rand() * nScans)] += 1;
      if (!sensitivitiesStreamed(events, weight, lesionsPerScan, queries, out)) continue; // no lesion drawn
      const row = samples.subarray(cpms.length * nq, (cpms.length + 1) * nq);
      for (let q = 0; q < nq; q++) row[all[q].slot] = out[q];
      let sum = 0;
      for (let i = 0; i < fpRates.length; i++) sum += row[i];
      cpms.push(sum / fpRates.length);
    }
    const used = cpms.length;
    const column = (slot: number) => Array.from({ length: used }, (_, r) => samples[r * nq + slot]);
    const perRate = fpRates.map((_, i) => percentileInterval(column(i), confidence));
    const perGrid = grid.map((_, i) => percentileInterval(column(fpRates.length + i), confidence));
    result.bootstrap = {
      samples: nBoot,
      used,
      seed,
      confidence,
      mean: perRate.map((p) => p.mean),
      lower: perRate.map((p) => p.lower),
      upper: perRate.map((p) => p.upper),
      cpm: percentileInterval(cpms, confidence),
      band: { fps: grid, mean: perGrid.map((p) => p.mean), lower: perGrid.map((p) => p.lower), upper: perGrid.map((p) => p.upper) },
    };
  }
  return result;
}
