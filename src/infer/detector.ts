// Detector: a trained model (or an ensemble) applied to whole volumes.
//
//   const det = await Detector.load('outputs_detection/best_model');
//   const r = await det.detect('scan.nii.gz');   // or a Volume
//   r.detections.boxes  // voxel boxes of the input file, [x1,y1,z1,x2,y2,z2)
//
// Pre-processing is the training run's: reorientation to RAS, resampling to
// the configured spacing, the same intensity normalisation. Boxes found in
// the pre-processed grid are mapped back to the input file's voxel grid
// through the exact inverse edge map, so they line up with the file as read.
import { existsSync } from 'node:fs';
import { canonicalMap, spacingMap, spatialPreprocess, intensityValueMap, applyValueMap, volumeStats } from '../data/preprocess.js';
import { compose, identity4 } from '../data/resample.js';
import { boxes as boxOps } from '../detection/index.js';
import type { Detections } from '../detection/postprocess.js';
import { invertAffine, orientationCode, spacingFromAffine, transformBoxes } from '../io/affine.js';
import { readNifti } from '../io/nifti.js';
import type { Affine, Volume } from '../io/volume.js';
import { RetinaNet } from '../model/retinanet.js';
import type { Triple } from '../tensor.js';
import { checkpointPaths, loadCheckpoint } from '../train/checkpoint.js';
import { parseConfigObject, resolveTrainConfig, type TrainConfig } from '../train/config.js';
import { intensityOf } from '../train/data.js';
import { float32Map, modelConfigOf } from '../train/trainer.js';
import { predictOptionsOf } from '../train/validate.js';
import { predictVolume, type PredictOptions } from './predict.js';

export interface DetectOptions {
  /** Sliding-window size (x, y, z); default the training run's val_patch_size. */
  roi?: Triple;
  overlap?: number;
  mode?: 'constant' | 'gaussian';
  scoreThresh?: number;
  nmsThresh?: number;
  detectionsPerImg?: number;
  /** Average the 8 flip combinations (needs a volume size divisible by the network's size multiple after pre-processing; otherwise the volume is padded). */
  tta?: boolean;
}

export interface DetectionResult {
  /** The input path, when a path was given. */
  image?: string;
  /** Detections in the input volume's voxel coordinates, sorted by score. */
  detections: Detections;
  /** The input volume's size and affine (for world coordinates). */
  dims: Triple;
  affine: Affine;
  seconds: number;
}

/** The edge map spatialPreprocess applies (reorientation, then resampling), as one matrix. */
export function preprocessEdgeMap(vol: Volume, opts: { orientation?: string | null; spacing?: readonly number[] }): Affine {
  let map = identity4();
  let dims = vol.dims as Triple;
  let affine = vol.affine;
  const target = opts.orientation === undefined ? 'RAS' : opts.orientation;
  if (target !== null && orientationCode(affine) !== target.toUpperCase()) {
    const c = canonicalMap(affine, dims, target);
    map = compose(map, c.map);
    dims = c.dims;
    // Only the spacing of the reoriented axes matters below: permute it.
    const sp = spacingFromAffine(vol.affine);
    const perm = c.map.slice(0, 3).map((row) => row.slice(0, 3).findIndex((v) => v !== 0));
    affine = [0, 1, 2].map((r) => [0, 1, 2].map((cc) => (cc === r ? sp[perm[r]] : 0)).concat(0)).concat([[0, 0, 0, 1]]);
  }
  if (opts.spacing) {
    const cur = spacingFromAffine(affine);
    if (cur.some((c, a) => Math.abs(c - opts.spacing![a]) > 1e-6 * c)) map = compose(map, spacingMap(dims, cur, opts.spacing).map);
  }
  return map;
}

/** Merges the detections of several models: per-class NMS over the union (scores unchanged). */
export function mergeEnsemble(all: Detections[], nmsThresh: number, maxDetections: number): Detections {
  if (all.length === 1) return all[0];
  const n = all.reduce((s, d) => s + d.scores.length, 0);
  const boxes = new Float32Array(6 * n);
  const scores = new Float32Array(n);
  const labels = new Int32Array(n);
  let k = 0;
  for (const d of all) {
    boxes.set(d.boxes, 6 * k);
    scores.set(d.scores, k);
    labels.set(d.labels, k);
    k += d.scores.length;
  }
  const keep = Array.from(boxOps.batchedNms(boxes, scores, labels, nmsThresh)).slice(0, maxDetections);
  return {
    boxes: Float32Array.from(keep.flatMap((i) => Array.from(boxes.subarray(6 * i, 6 * i + 6)))),
    scores: Float32Array.from(keep.map((i) => scores[i])),
    labels: Int32Array.from(keep.map((i) => labels[i])),
  };
}

export class Detector {
  readonly models: RetinaNet[];
  readonly config: TrainConfig;
  readonly paths: string[];

  private constructor(models: RetinaNet[], config: TrainConfig, paths: string[]) {
    this.models = models;
    this.config = config;
    this.paths = paths;
  }

  /**
   * Loads one checkpoint (path with or without `.safetensors`) or several
   * (an ensemble; they must share the pre-processing and classes).
   */
  static async load(checkpoints: string | string[]): Promise<Detector> {
    const list = Array.isArray(checkpoints) ? checkpoints : [checkpoints];
    if (list.length === 0) throw new Error('Detector.load: give at least one checkpoint');
    const models: RetinaNet[] = [];
    let config: TrainConfig | null = null;
    for (const raw of list) {
      const path = raw.replace(/\.safetensors$/, '');
      if (!existsSync(checkpointPaths(path).weights)) throw new Error(`no checkpoint at ${checkpointPaths(path).weights}`);
      const ck = loadCheckpoint(path, { loadState: false });
      const cfg = resolveTrainConfig(parseConfigObject(ck.config, checkpointPaths(path).weights));
      if (config) {
        for (const k of ['intensity', 'aMin', 'aMax', 'spacing', 'numClasses', 'baseAnchorShapes'] as const)
          if (JSON.stringify(cfg[k]) !== JSON.stringify(config[k]))
            throw new Error(`ensemble: ${raw} differs from ${list[0]} in ${k}; ensemble members must share pre-processing and classes`);
      } else config = cfg;
      const model = RetinaNet.create(modelConfigOf(cfg));
      model.setWeights(float32Map(ck.weights));
      model.eval();
      models.push(model);
    }
    return new Detector(models, config!, list);
  }

  /** Detects lesions in a volume (a NIfTI path or a Volume). */
  async detect(input: string | Volume, opts: DetectOptions = {}): Promise<DetectionResult> {
    const t0 = performance.now();
    const vol = typeof input === 'string' ? await readNifti(input) : input;
    const cfg = this.config;
    const sp = spatialPreprocess(vol, new Float32Array(0), { orientation: 'RAS', spacing: cfg.spacing ?? undefined });
    const vm = intensityValueMap(intensityOf(cfg), cfg.intensity === 'zscore' ? volumeStats(sp.image.data) : undefined);
    const data = applyValueMap(sp.image.data, vm);
    const popts: PredictOptions = {
      ...predictOptionsOf(cfg),
      ...(opts.roi ? { roi: opts.roi } : {}),
      ...(opts.overlap !== undefined ? { overlap: opts.overlap } : {}),
      ...(opts.mode ? { mode: opts.mode } : {}),
      ...(opts.scoreThresh !== undefined ? { scoreThresh: opts.scoreThresh } : {}),
      ...(opts.nmsThresh !== undefined ? { nmsThresh: opts.nmsThresh } : {}),
      ...(opts.detectionsPerImg !== undefined ? { detectionsPerImg: opts.detectionsPerImg } : {}),
    };
    const dims = sp.image.dims as Triple;
    let work = data;
    let workDims = dims;
    if (opts.tta) {
      // TTA needs sizes divisible by the network's multiple: pad (boxes are clipped to `dims` below).
      const div = this.models[0].sizeDivisible();
      workDims = dims.map((d, a) => Math.ceil(d / div[a]) * div[a]) as Triple;
      if (workDims.some((d, a) => d !== dims[a])) {
        const { padVolume } = await import('./sliding_window.js');
        work = padVolume(data, dims, workDims, popts.padValue ?? 0);
      }
    }
    const per: Detections[] = [];
    for (const m of this.models) per.push(await predictVolume(m, work, workDims, { ...popts, tta: opts.tta }));
    let det = mergeEnsemble(per, popts.nmsThresh ?? 0.22, popts.detectionsPerImg ?? 100);
    if (workDims !== dims) det = { ...det, boxes: boxOps.clip(det.boxes, dims) };
    // Back to the input file's voxel grid.
    const back = invertAffine(preprocessEdgeMap(vol, { orientation: 'RAS', spacing: cfg.spacing ?? undefined }));
    const boxes = transformBoxes(back, det.boxes);
    return {
      image: typeof input === 'string' ? input : undefined,
      detections: { boxes, scores: det.scores, labels: det.labels },
      dims: vol.dims as Triple,
      affine: vol.affine,
      seconds: (performance.now() - t0) / 1000,
    };
  }
}
