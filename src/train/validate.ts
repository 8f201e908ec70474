// Validation: whole-volume detection of every validation case and MONAI's
// COCO metrics over them.
import type { ValidationLoader } from '../data/loader.js';
import type { Detections } from '../detection/postprocess.js';
import { coco, cocoWithStatistics, formatHeadline } from '../eval/coco.js';
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

export async function validate(
  model: HeadNetwork & { eval(): unknown },
  loader: ValidationLoader,
  cfg: TrainConfig,
  onCase?: (done: number, total: number) => void,
): Promise<ValidationResult> {
  const t0 = performance.now();
  model.eval();
  const opts = predictOptionsOf(cfg);
  const predictions: Detections[] = [];
  const gts: { boxes: Float32Array; labels: Int32Array }[] = [];
  const caseIds: string[] = [];
  const total = loader.cases.length;
  for await (const item of loader.items()) {
    predictions.push(await predictVolume(model, item.images, item.patchSize, opts));
    gts.push({ boxes: item.boxes[0], labels: item.labels[0] });
    caseIds.push(item.caseIds[0]);
    onCase?.(caseIds.length, total);
  }
  const options = { classes: classNames(cfg.numClasses), iouList: [0.1], maxDetection: [100] };
  const { metrics, statistics } = cocoWithStatistics(predictions, gts, options);
  return {
    metrics,
    headline: formatHeadline(metrics, statistics),
    score: metrics[MAP_KEY],
    predictions,
    caseIds,
    seconds: (performance.now() - t0) / 1000,
  };
}

export { coco };
