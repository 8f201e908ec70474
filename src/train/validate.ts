// Validation: whole-volume detection of every validation case and MONAI's
// COCO metrics over them. In data-parallel training each rank predicts its
// share of the cases (shardIndices: rank, rank + worldSize, ...), the
// predictions are gathered, rank 0 computes the metrics once and broadcasts
// them, so every rank returns the same result (and picks the same best model).
import type { ValidationLoader } from '../data/loader.js';
import type { ProcessGroup } from '../dist/process_group.js';
import { shardIndices } from '../dist/sampler.js';
import type { Detections } from '../detection/postprocess.js';
import { cocoWithStatistics, formatHeadline } from '../eval/coco.js';
import { predictVolume, type HeadNetwork, type PredictOptions } from '../infer/predict.js';
import type { TrainConfig } from './config.js';

export interface ValidationResult {
  metrics: Record<string, number>;
  /** "mAP … | mAP@0.1 … | …" */
  headline: string;
  /** The headline metric used to pick the best model (mAP over IoU 0.1..0.5). */
  score: number;
  predictions: Detections[];
  caseIds: string[];
  seconds: number;
}

export function classNames(numClasses: number): string[] {
  return numClasses === 1 ? ['lesion'] : Array.from({ length: numClasses }, (_, i) => `class${i}`);
}

export function predictOptionsOf(cfg: TrainConfig): PredictOptions {
  return {
    roi: cfg.valPatchSize,
    overlap: cfg.valOverlap,
    baseAnchorShapes: cfg.baseAnchorShapes,
    numClasses: cfg.numClasses,
    scoreThresh: cfg.scoreThresh,
    nmsThresh: cfg.nmsThresh,
    detectionsPerImg: cfg.detectionsPerImg,
    topkCandidatesPerLevel: cfg.topkCandidatesPerLevel,
    padValue: 0,
  };
}

export const MAP_KEY = 'mAP_IoU_0.10_0.50_0.05_MaxDet_100';

type GroundTruth = { boxes: Float32Array; labels: Int32Array };

/** One rank's validation results in JSON form (typed arrays as plain arrays: float32 values survive exactly). */
interface ShardResult {
  indices: number[];
  predictions: { boxes: number[]; scores: number[]; labels: number[] }[];
  gts: { boxes: number[]; labels: number[] }[];
  caseIds: string[];
}

/**
 * Validates `model` on the loader's cases. With a process group of several
 * ranks (collective: every rank calls it), each rank predicts its share and
 * all return the metrics over all cases, computed once on rank 0.
 */
export async function validate(
  model: HeadNetwork & { eval(): unknown },
  loader: ValidationLoader,
  cfg: TrainConfig,
  onCase?: (done: number, total: number) => void,
  pg?: ProcessGroup | null,
): Promise<ValidationResult> {
  const t0 = performance.now();
  model.eval();
  const opts = predictOptionsOf(cfg);
  let predictions: Detections[] = [];
  let gts: GroundTruth[] = [];
  let caseIds: string[] = [];
  const total = loader.cases.length;
  const sharded = !!pg && pg.worldSize > 1;
  const indices = sharded ? shardIndices(total, pg!.rank, pg!.worldSize) : undefined;
  for await (const item of loader.items(indices)) {
    predictions.push(await predictVolume(model, item.images, item.patchSize, opts));
    gts.push({ boxes: item.boxes[0], labels: item.labels[0] });
    caseIds.push(item.caseIds[0]);
    onCase?.(caseIds.length, indices?.length ?? total);
  }
  if (sharded) {
    const mine: ShardResult = {
      indices: indices!,
      predictions: predictions.map((p) => ({ boxes: Array.from(p.boxes), scores: Array.from(p.scores), labels: Array.from(p.labels) })),
      gts: gts.map((g) => ({ boxes: Array.from(g.boxes), labels: Array.from(g.labels) })),
      caseIds,
    };
    // Back into the loader's case order, so the metrics see what one process would.
    const parts = await pg!.allGatherObject(mine);
    predictions = new Array(total);
    gts = new Array(total);
    caseIds = new Array(total);
    for (const part of parts)
      part.indices.forEach((c, k) => {
        const p = part.predictions[k];
        predictions[c] = { boxes: Float32Array.from(p.boxes), scores: Float32Array.from(p.scores), labels: Int32Array.from(p.labels) };
        gts[c] = { boxes: Float32Array.from(part.gts[k].boxes), labels: Int32Array.from(part.gts[k].labels) };
        caseIds[c] = part.caseIds[k];
      });
  }
  let summary: { metrics: Record<string, number>; headline: string } | null = null;
  if (!sharded || pg!.rank === 0) {
    const options = { classes: classNames(cfg.numClasses), iouList: [0.1], maxDetection: [100] };
    const { metrics, statistics } = cocoWithStatistics(predictions, gts, options);
    summary = { metrics, headline: formatHeadline(metrics, statistics) };
  }
  // JSON has no NaN (metrics of a class without ground truth): carry non-finite values as strings.
  if (sharded) summary = decodeMetrics((await pg!.broadcastObject(summary && encodeMetrics(summary), 0))!);
  return {
    metrics: summary!.metrics,
    headline: summary!.headline,
    score: summary!.metrics[MAP_KEY],
    predictions,
    caseIds,
    seconds: (performance.now() - t0) / 1000,
  };
}

function encodeMetrics(s: { metrics: Record<string, number>; headline: string }) {
  const m: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(s.metrics)) m[k] = Number.isFinite(v) ? v : String(v);
  return { metrics: m, headline: s.headline };
}

function decodeMetrics(s: { metrics: Record<string, number | string>; headline: string }) {
  const m: Record<string, number> = {};
  for (const [k, v] of Object.entries(s.metrics)) m[k] = Number(v);
  return { metrics: m, headline: s.headline };
}

