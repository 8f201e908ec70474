// Whole-volume prediction: test-time augmentation with a flip-equivariant toy
// network changes nothing, and without TTA the detections come from the
// network's head outputs through the real post-processing.
import { describe, expect, it } from 'vitest';
import { flipVolume, predictVolume, type HeadNetwork } from '../../src/infer/predict.js';
import { Tensor, type Triple } from '../../src/tensor.js';

/**
 * Toy network with two levels (strides 2 and 4, one anchor of width 4·2^l).
 * Each output cell looks only at the input block it covers: the class logit
 * grows with the block's mean, and the box regression points from the
 * anchor centre (cell index · stride, edge coordinates) to the block's
 * intensity-weighted centre of mass. Both are exactly flip-equivariant.
 */
function toyNetwork(): HeadNetwork {
  return {
    sizeDivisible: () => [4, 4, 4] as Triple,
    async forwardAsync(x: Tensor) {
      const [, Z, Y, X] = x.shape;
      const v = x.toFloat32();
      const clsLogits: Tensor[] = [];
      const boxRegression: Tensor[] = [];
      for (let l = 0; l < 2; l++) {
        const s = 2 ** (l + 1);
        const w = 4 * 2 ** l;
        const [fx, fy, fz] = [X / s, Y / s, Z / s];
        const cls = new Float32Array(fx * fy * fz);
        const box = new Float32Array(fx * fy * fz * 6);
        for (let cz = 0; cz < fz; cz++)
          for (let cy = 0; cy < fy; cy++)
            for (let cx = 0; cx < fx; cx++) {
              let sum = 0;
              const m = [0, 0, 0];
              for (let z = cz * s; z < (cz + 1) * s; z++)
                for (let y = cy * s; y < (cy + 1) * s; y++)
                  for (let xx = cx * s; xx < (cx + 1) * s; xx++) {
                    const val = v[(z * Y + y) * X + xx];
                    sum += val;
                    m[0] += val * (xx + 0.5);
                    m[1] += val * (y + 0.5);
                    m[2] += val * (z + 0.5);
                  }
              const i = (cz * fy + cy) * fx + cx;
              cls[i] = 12 * (sum / s ** 3 - 0.5);
              const c = [cx * s, cy * s, cz * s];
              for (let a = 0; a < 3; a++) box[6 * i + a] = sum > 0 ? (m[a] / sum - c[a]) / w : 0;
            }
        clsLogits.push(Tensor.from(cls, [1, fz, fy, fx, 1]));
        boxRegression.push(Tensor.from(box, [1, fz, fy, fx, 6]));
      }
      return { clsLogits, boxRegression };
    },
  };
}

function volume(dims: Triple): Float32Array {
  const [X, Y, Z] = dims;
  const v = new Float32Array(X * Y * Z);
  let s = 11;
  for (let i = 0; i < v.length; i++) v[i] = 0.1 * ((s = (s * 16807) % 2147483647) / 2147483647);
  // Two bright blocks off-centre, so flips move them.
  const put = (x0: number, y0: number, z0: number, n: number) => {
    for (let z = z0; z < z0 + n; z++) for (let y = y0; y < y0 + n; y++) for (let x = x0; x < x0 + n; x++) v[(z * Y + y) * X + x] = 1;
  };
  put(3, 5, 2, 5);
  put(17, 9, 8, 4);
  return v;
}

const opts = { roi: [32, 32, 16] as Triple, baseAnchorShapes: [[4, 4, 4]] as Triple[], numClasses: 1, scoreThresh: 0.5 };

describe('predictVolume', () => {
  it('flipVolume is an involution that mirrors every axis it is asked to', () => {
    const d: Triple = [3, 2, 2];
    const v = Float32Array.from({ length: 12 }, (_, i) => i);
    const f = flipVolume(v, d, [true, false, true]);
    // voxel (x=0, y=0, z=0) of the result is voxel (2, 0, 1) of the input: index (1*2 + 0)*3 + 2 = 8.
    expect(f[0]).toBe(8);
    expect(Array.from(flipVolume(f, d, [true, false, true]))).toEqual(Array.from(v));
  });

  it('test-time augmentation with a flip-equivariant network changes nothing', async () => {
    const dims: Triple = [24, 20, 16];
    const net = toyNetwork();
    const plain = await predictVolume(net, volume(dims), dims, opts);
    const tta = await predictVolume(net, volume(dims), dims, { ...opts, tta: true });
    expect(plain.scores.length).toBeGreaterThan(0);
    expect(tta.scores.length).toBe(plain.scores.length);
    for (let i = 0; i < plain.scores.length; i++) expect(tta.scores[i]).toBeCloseTo(plain.scores[i], 5);
    for (let i = 0; i < plain.boxes.length; i++) expect(tta.boxes[i]).toBeCloseTo(plain.boxes[i], 4);
    // The best detection sits on the first bright block [3, 8) x [5, 10) x [2, 7): its centre is the
    // block's centre of mass and its size the anchor's (the toy predicts no size change).
    const b = Array.from(plain.boxes.slice(0, 6));
    const centre = [(b[0] + b[3]) / 2, (b[1] + b[4]) / 2, (b[2] + b[5]) / 2];
    expect(centre[0]).toBeGreaterThan(3);
    expect(centre[0]).toBeLessThan(8);
    expect(centre[1]).toBeGreaterThan(5);
    expect(centre[1]).toBeLessThan(10);
  });

  it('rejects TTA on sizes the anchor grid cannot mirror, and mismatched data', async () => {
    await expect(predictVolume(toyNetwork(), new Float32Array(22 * 20 * 16), [22, 20, 16], { ...opts, tta: true })).rejects.toThrow(/multiple of 4x4x4/);
    await expect(predictVolume(toyNetwork(), new Float32Array(10), [24, 20, 16], opts)).rejects.toThrow(/do not match/);
  });
});
