// Patch (crop) selection and box clipping.
//
// Positive crops follow MONAI's RandCropBoxByPosNegLabel with whole_box: the
// crop is placed so that a randomly chosen ground-truth box lies entirely
// inside it (or, when the box is larger than the crop, so that the crop lies
// inside the box), and is then kept inside the volume when the volume is big
// enough. Negative crops are placed uniformly at random. When the volume is
// smaller than the crop along an axis the crop is centred and the outside is
// padded.
import type { Dims3 } from './resample.js';
import type { Rng } from './rng.js';

/** Start corner (x, y, z) of a crop of `size` in a volume of `dims`. */
export function chooseCrop(
  rng: Rng, dims: readonly number[], size: readonly number[], boxes: Float32Array, positive: boolean,
): Dims3 {
  const nBoxes = boxes.length / 6;
  const start: Dims3 = [0, 0, 0];
  const b = positive && nBoxes > 0 ? rng.int(0, nBoxes - 1) : -1;
  for (let a = 0; a < 3; a++) {
    const D = dims[a], P = size[a];
    // Range of starts keeping the crop inside the volume (a single centred value when D < P).
    const inLo = D >= P ? 0 : Math.floor((D - P) / 2);
    const inHi = D >= P ? D - P : inLo;
    let lo = inLo, hi = inHi;
    if (b >= 0) {
      const x1 = boxes[6 * b + a], x2 = boxes[6 * b + 3 + a];
      // whole box inside [s, s + P): s ≤ x1 and s + P ≥ x2; for a box longer than P: x1 ≤ s ≤ x2 − P.
      let bl = Math.ceil(x2 - P), bh = Math.floor(x1);
      if (bl > bh) { bl = Math.ceil(x1); bh = Math.floor(x2 - P); }
      if (bl > bh) bl = bh = Math.round((x1 + x2 - P) / 2);
      // Prefer starts that satisfy both; when impossible, the box wins (the patch is padded).
      lo = Math.max(bl, inLo);
      hi = Math.min(bh, inHi);
      if (lo > hi) {
        lo = bl;
        hi = bh;
        if (D >= P) { // clamp toward the volume as much as the box allows
          const c = Math.min(Math.max(inLo, bl), bh);
          lo = hi = c;
        }
      }
    }
    start[a] = rng.int(lo, hi);
  }
  return start;
}

/**
 * Clips boxes to [0, size) per axis and removes those that end up thinner than
 * `minSide` voxels along any axis (together with their labels).
 */
export function clipBoxes(
  boxes: Float32Array, labels: Int32Array, size: readonly number[], minSide = 1,
): { boxes: Float32Array; labels: Int32Array } {
  const keepB: number[] = [];
  const keepL: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const c = [0, 0, 0, 0, 0, 0];
    let ok = true;
    for (let a = 0; a < 3; a++) {
      c[a] = Math.min(Math.max(boxes[6 * i + a], 0), size[a]);
      c[a + 3] = Math.min(Math.max(boxes[6 * i + 3 + a], 0), size[a]);
      if (!(c[a + 3] - c[a] >= minSide)) ok = false;
    }
    if (ok) {
      keepB.push(...c);
      keepL.push(labels[i]);
    }
  }
  return { boxes: Float32Array.from(keepB), labels: Int32Array.from(keepL) };
}
