// Shared setup for the Winograd conv3d tests (conv3d_winograd*.test.ts):
// seeded float32 inputs, a direct float64 3x3x3 convolution (forward, grad
// input, grad weight) and the relative error measure they are checked with.
import { expect } from 'vitest';
import type { Triple } from '../src/tensor.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}
// Values in [-1, 1) that are exact float32 numbers, so the reference sees what the kernel sees.
export function randF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => 2 * r());
}

// A 3x3x3 stride-1 convolution case: input [N, ...D, Ci], weight [Co, 3, 3, 3, Ci].
export interface Case {
  name: string;
  N: number;
  D: Triple;
  Ci: number;
  Co: number;
  pad: Triple;
}
export const outSize = (c: Case): Triple => c.D.map((d, i) => d + 2 * c.pad[i] - 2) as Triple;

// Direct float64 convolution: y[n,o,co] = b[co] + sum_{a,b,c,ci} x[n, o - pad + (a,b,c), ci] w[co,a,b,c,ci]
// (zero outside x); dx and dw are the chain rule on the same loops with dL/dy = dy.
export function reference(c: Case, x: Float32Array, w: Float32Array, b: Float32Array, dy: Float32Array) {
  const O = outSize(c);
  const [D1, D2, D3] = c.D;
  const y = new Float64Array(c.N * O[0] * O[1] * O[2] * c.Co);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let n = 0; n < c.N; ++n)
    for (let o1 = 0; o1 < O[0]; ++o1)
      for (let o2 = 0; o2 < O[1]; ++o2)
        for (let o3 = 0; o3 < O[2]; ++o3) {
          const yo = (((n * O[0] + o1) * O[1] + o2) * O[2] + o3) * c.Co;
          for (let co = 0; co < c.Co; ++co) y[yo + co] = b[co];
          for (let ka = 0; ka < 3; ++ka) {
            const i1 = o1 - c.pad[0] + ka;
            if (i1 < 0 || i1 >= D1) continue;
            for (let kb = 0; kb < 3; ++kb) {
              const i2 = o2 - c.pad[1] + kb;
              if (i2 < 0 || i2 >= D2) continue;
              for (let kc = 0; kc < 3; ++kc) {
                const i3 = o3 - c.pad[2] + kc;
                if (i3 < 0 || i3 >= D3) continue;
                const xo = (((n * D1 + i1) * D2 + i2) * D3 + i3) * c.Ci;
                const tap = (ka * 3 + kb) * 3 + kc;
                for (let co = 0; co < c.Co; ++co) {
                  const wo = (co * 27 + tap) * c.Ci;
                  const g = dy[yo + co];
                  let s = 0;
                  for (let ci = 0; ci < c.Ci; ++ci) {
                    s += x[xo + ci] * w[wo + ci];
                    dx[xo + ci] += g * w[wo + ci];
                    dw[wo + ci] += g * x[xo + ci];
                  }
                  y[yo + co] += s;
                }
              }
            }
          }
        }
  return { y, dx, dw, O };
}

// max |got - want| / max(1, max |want|) (after checking that the lengths agree).
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let scale = 1;
  let worst = 0;
  for (let i = 0; i < want.length; ++i) {
    scale = Math.max(scale, Math.abs(want[i]));
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  return worst / scale;
}
