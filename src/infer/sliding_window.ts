// Sliding-window inference over a whole volume, blending the network's
// per-level head outputs (not the final boxes) into full-volume maps, as
// MONAI's RetinaNetDetector does with its SlidingWindowInferer. The maps are
// then post-processed once (score threshold, top-k, decode, NMS).
//
// Alignment: every FPN level l has an integer stride s_l per axis (the input
// size divided by the level's size). Window origins are kept on multiples of
// the coarsest stride, so each window's level-l output lands exactly on the
// full map's grid at origin / s_l: the blended maps equal the whole-volume
// maps wherever the receptive field stays inside a window (MONAI rescales
// window positions and rounds; aligning instead makes blending exact).
//
// The volume is padded (zero, i.e. the normalised background value of the
// caller's choice) to a multiple of `sizeDivisible` and to at least one ROI,
// as MONAI's detector pads its inputs.
import type { Int3 } from '../train/config.js';

export type BlendMode = 'constant' | 'gaussian';

export interface HeadOutputs {
  /** Per level, channels-last [1, D1, D2, D3, C] as flat arrays (x fastest, channel innermost). */
  cls: Float32Array[];
  box: Float32Array[];
  /** Per level (x, y, z) size of the maps. */
  sizes: Int3[];
}

/** Runs the network on one padded window (x fastest, [Z, Y, X] voxels) of size roi (x, y, z). */
export type WindowPredictor = (window: Float32Array, roi: Int3) => Promise<HeadOutputs>;

export interface SlidingWindowOptions {
  /** Window size in voxels (x, y, z); clipped to the padded volume size. */
  roi: Int3;
  /** Fraction of overlap between neighbouring windows, in [0, 1). */
  overlap: number;
  /** Network input multiple (x, y, z): 2^(levels) * stem stride, e.g. [16, 16, 8]. */
  sizeDivisible: Int3;
  /** Channels of the class and box maps per location (A*numClasses and A*6). */
  clsChannels: number;
  boxChannels: number;
  mode?: BlendMode;
  /** Gaussian sigma as a fraction of the window size per level (MONAI: 0.125). */
  sigmaScale?: number;
  /** Value used for padding (e.g. the normalised intensity of air). */
  padValue?: number;
}

export interface BlendedMaps extends HeadOutputs {
  /** Size of the padded volume the maps cover (x, y, z). */
  paddedSize: Int3;
  /** Number of windows evaluated. */
  windows: number;
}

/**
 * Window origins along one axis: windows of `roi` covering [0, size) with the
 * given overlap, origins multiples of `align`, the last window flush with the end.
 * size and roi must be multiples of align, roi <= size.
 */
export function windowOrigins(size: number, roi: number, overlap: number, align: number): number[] {
  if (!(overlap >= 0 && overlap < 1)) throw new Error(`overlap must be in [0, 1), got ${overlap}`);
  if (roi > size) throw new Error(`window ${roi} larger than the volume ${size}`);
  if (roi === size) return [0];
  const interval = Math.max(align, Math.floor((roi * (1 - overlap)) / align) * align);
  const out: number[] = [];
  for (let o = 0; ; o += interval) {
    if (o + roi >= size) {
      out.push(size - roi);
      break;
    }
    out.push(o);
  }
  return [...new Set(out)];
}

function roundUp(v: number, m: number): number {
  return Math.ceil(v / m) * m;
}

/** Pads (or copies) a volume to `size` (x, y, z), placing it at the origin. */
export function padVolume(data: ArrayLike<number>, dims: Int3, size: Int3, padValue = 0): Float32Array {
  const [X, Y, Z] = dims;
  const [PX, PY] = size;
  const out = new Float32Array(size[0] * size[1] * size[2]);
  if (padValue !== 0) out.fill(padValue);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++) {
      const src = (z * Y + y) * X;
      const dst = (z * PY + y) * PX;
      for (let x = 0; x < X; x++) out[dst + x] = data[src + x];
    }
  return out;
}

function cropWindow(vol: Float32Array, size: Int3, origin: Int3, roi: Int3): Float32Array {
  const out = new Float32Array(roi[0] * roi[1] * roi[2]);
  for (let z = 0; z < roi[2]; z++)
    for (let y = 0; y < roi[1]; y++) {
      const src = ((origin[2] + z) * size[1] + origin[1] + y) * size[0] + origin[0];
      out.set(vol.subarray(src, src + roi[0]), (z * roi[1] + y) * roi[0]);
    }
  return out;
}

/** 1D Gaussian importance weights centred on the window (MONAI-style, sigma = scale * n). */
function gaussian1d(n: number, sigmaScale: number): Float32Array {
  const w = new Float32Array(n);
  const sigma = Math.max(sigmaScale * n, 1e-3);
  const c = (n - 1) / 2;
  let max = 0;
  for (let i = 0; i < n; i++) {
    w[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
    max = Math.max(max, w[i]);
  }
  for (let i = 0; i < n; i++) w[i] = Math.max(w[i] / max, 1e-3);
  return w;
}

/**
 * Runs `predict` on every window and blends the head outputs into maps of
 * the padded volume. With one window covering everything this is exactly
 * the whole-volume output.
 */
export async function slidingWindowHeads(
  data: ArrayLike<number>,
  dims: Int3,
  predict: WindowPredictor,
  opts: SlidingWindowOptions,
): Promise<BlendedMaps> {
  const div = opts.sizeDivisible;
  const padded: Int3 = [0, 1, 2].map((a) => roundUp(Math.max(dims[a], 1), div[a])) as Int3;
  const roi: Int3 = [0, 1, 2].map((a) => {
    const r = roundUp(opts.roi[a], div[a]);
    return Math.min(r, padded[a]);
  }) as Int3;
  // A volume smaller than the ROI is padded up to it (as MONAI pads to roi_size).
  for (let a = 0; a < 3; a++) padded[a] = Math.max(padded[a], roi[a]);
  const vol = padVolume(data, dims, padded, opts.padValue ?? 0);
  const origins = [0, 1, 2].map((a) => windowOrigins(padded[a], roi[a], opts.overlap, div[a]));

  let cls: Float32Array[] = [];
  let box: Float32Array[] = [];
  let wsum: Float32Array[] = [];
  let sizes: Int3[] = [];
  let strides: Int3[] = [];
  let weights: Float32Array[][] = [];
  let windows = 0;
  const mode = opts.mode ?? 'constant';

  for (const oz of origins[2])
    for (const oy of origins[1])
      for (const ox of origins[0]) {
        const origin: Int3 = [ox, oy, oz];
        const win = cropWindow(vol, padded, origin, roi);
        const out = await predict(win, roi);
        if (windows === 0) {
          strides = out.sizes.map((s) => [0, 1, 2].map((a) => roi[a] / s[a]) as Int3);
          for (const st of strides)
            for (let a = 0; a < 3; a++)
              if (!Number.isInteger(st[a]) || origins[a].some((o) => o % st[a] !== 0))
                throw new Error(
                  `sliding window: level stride ${st.join('x')} does not divide the window grid; ` +
                    `sizeDivisible ${div.join('x')} must be a multiple of every level's stride`,
                );
          sizes = strides.map((st) => [0, 1, 2].map((a) => padded[a] / st[a]) as Int3);
          const locs = sizes.map((s) => s[0] * s[1] * s[2]);
          cls = locs.map((n) => new Float32Array(n * opts.clsChannels));
          box = locs.map((n) => new Float32Array(n * opts.boxChannels));
          wsum = locs.map((n) => new Float32Array(n));
          weights = out.sizes.map((s) =>
            [0, 1, 2].map((a) => (mode === 'gaussian' ? gaussian1d(s[a], opts.sigmaScale ?? 0.125) : new Float32Array(s[a]).fill(1))),
          );
        }
        windows++;
        for (let l = 0; l < sizes.length; l++) {
          const [wx, wy, wz] = out.sizes[l];
          const [fx, fy] = sizes[l];
          const st = strides[l];
          const [bx, by, bz] = [ox / st[0], oy / st[1], oz / st[2]];
          const [gx, gy, gz] = weights[l];
          const cc = opts.clsChannels;
          const bc = opts.boxChannels;
          const wc = out.cls[l];
          const wb = out.box[l];
          if (wc.length !== wx * wy * wz * cc || wb.length !== wx * wy * wz * bc)
            throw new Error(`sliding window: level ${l} output has an unexpected size`);
          for (let z = 0; z < wz; z++)
            for (let y = 0; y < wy; y++)
              for (let x = 0; x < wx; x++) {
                const w = gx[x] * gy[y] * gz[z];
                const src = (z * wy + y) * wx + x;
                const dst = ((bz + z) * fy + by + y) * fx + bx + x;
                wsum[l][dst] += w;
                for (let c = 0; c < cc; c++) cls[l][dst * cc + c] += w * wc[src * cc + c];
                for (let c = 0; c < bc; c++) box[l][dst * bc + c] += w * wb[src * bc + c];
              }
        }
      }
  for (let l = 0; l < sizes.length; l++) {
    const n = wsum[l].length;
    for (let i = 0; i < n; i++) {
      const inv = 1 / wsum[l][i];
      for (let c = 0; c < opts.clsChannels; c++) cls[l][i * opts.clsChannels + c] *= inv;
      for (let c = 0; c < opts.boxChannels; c++) box[l][i * opts.boxChannels + c] *= inv;
    }
  }
  return { cls, box, sizes, paddedSize: padded, windows };
}
