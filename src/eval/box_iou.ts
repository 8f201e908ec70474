// Pairwise IoU of 3D boxes for evaluation (independent of the native IoU).
//
// Boxes are flat arrays of [x1, y1, z1, x2, y2, z2] per box covering
// [x1, x2) (MONAI StandardMode: size = max − min, no +1). MONAI's box_iou
// computes in float32 and divides by (union + float32 eps); we emulate that
// rounding step by step with Math.fround so that IoUs landing exactly on an
// IoU threshold (common with integer boxes) match MONAI's decision.

export type BoxArray = Float32Array | Float64Array;

const F32_EPS = 1.1920928955078125e-7; // torch.finfo(torch.float32).eps

const f = Math.fround;

/** Volume (max − min product) of box i, rounded like a float32 product. */
function volume32(b: BoxArray, i: number): number {
  const o = 6 * i;
  return f(f(f(f(b[o + 3]) - f(b[o])) * f(f(b[o + 4]) - f(b[o + 1]))) * f(f(b[o + 5]) - f(b[o + 2])));
}

/**
 * IoU matrix [na, nb] (row-major, row = box of `a`) as float32 values in a
 * Float64Array. Degenerate boxes (zero volume) give IoU 0 with everything.
 */
export function boxIou3d(a: BoxArray, b: BoxArray): Float64Array {
  if (a.length % 6 !== 0 || b.length % 6 !== 0) {
    throw new Error(`boxIou3d: box arrays must hold 6 numbers per box (x1,y1,z1,x2,y2,z2); got lengths ${a.length} and ${b.length}`);
  }
  const na = a.length / 6;
  const nb = b.length / 6;
  const out = new Float64Array(na * nb);
  const va = new Float64Array(na);
  const vb = new Float64Array(nb);
  for (let i = 0; i < na; i++) va[i] = volume32(a, i);
  for (let j = 0; j < nb; j++) vb[j] = volume32(b, j);
  for (let i = 0; i < na; i++) {
    const oa = 6 * i;
    for (let j = 0; j < nb; j++) {
      const ob = 6 * j;
      let inter = 1;
      for (let d = 0; d < 3; d++) {
        const lo = Math.max(f(a[oa + d]), f(b[ob + d]));
        const hi = Math.min(f(a[oa + 3 + d]), f(b[ob + 3 + d]));
        const w = Math.max(f(hi - lo), 0);
        inter = d === 0 ? w : f(inter * w);
      }
      const union = f(f(va[i] + vb[j]) - inter);
      out[i * nb + j] = f(inter / f(union + F32_EPS));
    }
  }
  return out;
}
