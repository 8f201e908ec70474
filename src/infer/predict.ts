// Whole-volume detection with a RetinaNet: sliding-window head outputs
// blended into full-volume maps (src/infer/sliding_window.ts), anchors for
// the padded volume, then one post-processing pass (score threshold, top-k,
// decode, clip to the real volume, per-class NMS, best N). Used by
// validation during training, `detseg3d validate` and `detseg3d infer`.
import { anchors as anchorGen, detector } from '../detection/index.js';
import type { Detections } from '../detection/postprocess.js';
import { Tensor, type Triple } from '../tensor.js';
import { slidingWindowHeads, type BlendMode, type BlendedMaps, type HeadOutputs } from './sliding_window.js';

export interface PredictOptions {
  /** Window size (x, y, z); MONAI's val_patch_size. */
  roi: Triple;
  overlap?: number;
  mode?: BlendMode;
  baseAnchorShapes: Triple[];
  numClasses: number;
  scoreThresh?: number;
  nmsThresh?: number;
  detectionsPerImg?: number;
  topkCandidatesPerLevel?: number;
  /** Normalised intensity used for padding (air in the CT window: 0). */
  padValue?: number;
  /** Test-time augmentation: average the head outputs of the 8 flip combinations. */
  tta?: boolean;
}

/** The network's head outputs for one window, as flat arrays with (x, y, z) map sizes. */
export async function windowHeads(model: HeadNetwork, window: Float32Array, roi: Triple): Promise<HeadOutputs> {
  const x = Tensor.from(window, [1, roi[2], roi[1], roi[0], 1]);
  const out = await model.forwardAsync(x, { requiresGrad: false });
  return {
    cls: out.clsLogits.map((t) => t.toFloat32()),
    box: out.boxRegression.map((t) => t.toFloat32()),
    sizes: out.clsLogits.map((t) => [t.shape[3], t.shape[2], t.shape[1]] as Triple),
  };
}

/** Flips a volume (x fastest) along the given axes, into a new array. */
export function flipVolume(data: ArrayLike<number>, dims: Triple, axes: readonly [boolean, boolean, boolean], channels = 1): Float32Array {
  const [X, Y, Z] = dims;
  const out = new Float32Array(X * Y * Z * channels);
  for (let z = 0; z < Z; z++) {
    const sz = axes[2] ? Z - 1 - z : z;
    for (let y = 0; y < Y; y++) {
      const sy = axes[1] ? Y - 1 - y : y;
      for (let x = 0; x < X; x++) {
        const sx = axes[0] ? X - 1 - x : x;
        const src = ((sz * Y + sy) * X + sx) * channels;
        const dst = ((z * Y + y) * X + x) * channels;
        for (let c = 0; c < channels; c++) out[dst + c] = data[src + c];
      }
    }
  }
  return out;
}

/**
 * Un-flips box-regression maps. Boxes use edge coordinates, so a flip along
 * axis a maps x -> N - x. The flipped map's location j = F - 1 - i has its
 * anchor centre at (F - 1 - i)·s = N - s - i·s, which mirrors to i·s + s:
 * one stride beyond the anchor of location i. So the centre offset of the
 * original anchor is d = w_c·s / w_anchor − d_flipped (w_c the box coder
 * weight); log-size terms are unchanged.
 */
function unflipBox(
  box: Float32Array,
  dims: Triple,
  axes: readonly [boolean, boolean, boolean],
  channels: number,
  stride: Triple,
  anchorWidths: Triple[],
): Float32Array {
  const out = flipVolume(box, dims, axes, channels);
  const A = anchorWidths.length;
  for (let i = 0; i < out.length; i += 6) {
    const w = anchorWidths[(i / 6) % A];
    for (let a = 0; a < 3; a++) if (axes[a]) out[i + a] = stride[a] / w[a] - out[i + a];
  }
  return out;
}

/** What prediction needs from a network: RetinaNet, or a toy model in tests. */
export interface HeadNetwork {
  sizeDivisible(): Triple;
  forwardAsync(x: Tensor, opts?: { requiresGrad?: boolean }): Promise<{ clsLogits: Tensor[]; boxRegression: Tensor[] }>;
}

async function blendedMaps(model: HeadNetwork, data: Float32Array, dims: Triple, opts: PredictOptions): Promise<BlendedMaps> {
  const A = opts.baseAnchorShapes.length;
  const swOpts = {
    roi: opts.roi,
    overlap: opts.overlap ?? 0.25,
    mode: opts.mode ?? 'constant',
    sizeDivisible: model.sizeDivisible(),
    clsChannels: A * opts.numClasses,
    boxChannels: A * 6,
    padValue: opts.padValue ?? 0,
  };
  const predictor = (w: Float32Array, roi: Triple) => windowHeads(model, w, roi);
  if (!opts.tta) return slidingWindowHeads(data, dims, predictor, swOpts);
  let acc: BlendedMaps | null = null;
  // Anchor widths per level and shape: the anchors of a single location per level.
  let widths: Triple[][] = [];
  for (let f = 0; f < 8; f++) {
    const axes: [boolean, boolean, boolean] = [(f & 1) !== 0, (f & 2) !== 0, (f & 4) !== 0];
    // The volume size is a multiple of every stride (checked by the caller), so
    // nothing is padded and the flipped maps cover exactly the flipped volume.
    const maps = await slidingWindowHeads(f ? flipVolume(data, dims, axes) : data, dims, predictor, swOpts);
    if (f) {
      maps.cls = maps.cls.map((c, l) => flipVolume(c, maps.sizes[l], axes, swOpts.clsChannels));
      if (!widths.length) {
        const one = anchorGen.generate({ imageSize: [1, 1, 1], featureMapSizes: maps.sizes.map(() => [1, 1, 1] as Triple), baseAnchorShapes: opts.baseAnchorShapes });
        widths = one.map((lv) => opts.baseAnchorShapes.map((_, k) => [0, 1, 2].map((a) => lv[k * 6 + 3 + a] - lv[k * 6 + a]) as Triple));
      }
      maps.box = maps.box.map((b, l) => {
        const stride = [0, 1, 2].map((a) => maps.paddedSize[a] / maps.sizes[l][a]) as Triple;
        return unflipBox(b, maps.sizes[l], axes, swOpts.boxChannels, stride, widths[l]);
      });
    }
    if (!acc) acc = maps;
    else
      for (let l = 0; l < acc.cls.length; l++) {
        for (let i = 0; i < acc.cls[l].length; i++) acc.cls[l][i] += maps.cls[l][i];
        for (let i = 0; i < acc.box[l].length; i++) acc.box[l][i] += maps.box[l][i];
      }
  }
  for (let l = 0; l < acc!.cls.length; l++) {
    for (let i = 0; i < acc!.cls[l].length; i++) acc!.cls[l][i] /= 8;
    for (let i = 0; i < acc!.box[l].length; i++) acc!.box[l][i] /= 8;
  }
  return acc!;
}

/** Detections of one whole (normalised) volume, boxes in its voxel coordinates. */
export async function predictVolume(model: HeadNetwork, data: Float32Array, dims: Triple, opts: PredictOptions): Promise<Detections> {
  if (data.length !== dims[0] * dims[1] * dims[2])
    throw new Error(`predictVolume: ${data.length} voxels do not match the size ${dims.join('x')}`);
  if (opts.tta) {
    const div = model.sizeDivisible();
    if (dims.some((d, a) => d % div[a] !== 0))
      throw new Error(
        `test-time augmentation needs a volume whose size is a multiple of ${div.join('x')} (x y z) so flipped anchors line up; ` +
          `got ${dims.join('x')}: crop or pad the volume first`,
      );
  }
  const maps = await blendedMaps(model, data, dims, opts);
  const A = opts.baseAnchorShapes.length;
  const head = {
    clsLogits: maps.cls.map((c, l) => Tensor.from(c, [1, maps.sizes[l][2], maps.sizes[l][1], maps.sizes[l][0], A * opts.numClasses])),
    boxRegression: maps.box.map((b, l) => Tensor.from(b, [1, maps.sizes[l][2], maps.sizes[l][1], maps.sizes[l][0], A * 6])),
  };
  const anchors = anchorGen.generate({ imageSize: maps.paddedSize, featureMapSizes: maps.sizes, baseAnchorShapes: opts.baseAnchorShapes });
  const [det] = await detector.postprocessAsync(head, anchors, dims, {
    numClasses: opts.numClasses,
    scoreThresh: opts.scoreThresh ?? 0.02,
    nmsThresh: opts.nmsThresh ?? 0.22,
    detectionsPerImg: opts.detectionsPerImg ?? 100,
    topkCandidatesPerLevel: opts.topkCandidatesPerLevel ?? 1000,
  });
  return det;
}
