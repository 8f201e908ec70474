// conv3d's few-output-channel path (native/ops/conv3d_narrow.cpp: stride 1,
// >= 8 taps, >= 32 input channels, <= 24 output channels; the RetinaNet
// heads' final convs). Forward and grad weight are checked against a float64
// reference written here, with the P / Q buffers chunked over input planes
// (DETSEG3D_CONV_NARROW_CHUNK) and not, and against the GEMM path
// (DETSEG3D_CONV_NARROW=0), in float32 and float64.
import { afterEach, describe, expect, it } from 'vitest';
import { conv3d, conv3dBackward } from '../src/ops.js';
import { Tensor, type Triple } from '../src/tensor.js';

interface Case {
  name: string;
  N: number;
  D: Triple;
  Ci: number;
  Co: number;
  k: Triple;
  pad: Triple;
  dil: Triple;
}

function rand(n: number, seed: number): Float64Array {
  const a = new Float64Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; ++i) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

// Direct definitions: y[n,o,co] = b[co] + sum_{k,ci} x[n, o - pad + k*dil, ci] w[co,k,ci] (zero outside),
// dw[co,k,ci] = sum_{n,o} dy[n,o,co] x[n, o - pad + k*dil, ci].
function reference(c: Case, x: Float64Array, w: Float64Array, b: Float64Array, dy: Float64Array) {
  const O = [0, 1, 2].map((i) => c.D[i] + 2 * c.pad[i] - c.dil[i] * (c.k[i] - 1)) as Triple;
  const y = new Float64Array(c.N * O[0] * O[1] * O[2] * c.Co);
  const dw = new Float64Array(w.length);
  const taps = c.k[0] * c.k[1] * c.k[2];
  for (let n = 0; n < c.N; ++n)
    for (let o1 = 0; o1 < O[0]; ++o1)
      for (let o2 = 0; o2 < O[1]; ++o2)
        for (let o3 = 0; o3 < O[2]; ++o3) {
          const yo = (((n * O[0] + o1) * O[1] + o2) * O[2] + o3) * c.Co;
          for (let co = 0; co < c.Co; ++co) y[yo + co] = b[co];
          for (let a = 0; a < c.k[0]; ++a)
            for (let bb = 0; bb < c.k[1]; ++bb)
              for (let cc = 0; cc < c.k[2]; ++cc) {
                const i1 = o1 - c.pad[0] + a * c.dil[0], i2 = o2 - c.pad[1] + bb * c.dil[1], i3 = o3 - c.pad[2] + cc * c.dil[2];
                if (i1 < 0 || i1 >= c.D[0] || i2 < 0 || i2 >= c.D[1] || i3 < 0 || i3 >= c.D[2]) continue;
                const xo = (((n * c.D[0] + i1) * c.D[1] + i2) * c.D[2] + i3) * c.Ci;
                const t = (a * c.k[1] + bb) * c.k[2] + cc;
                for (let co = 0; co < c.Co; ++co) {
                  const wo = (co * taps + t) * c.Ci;
                  let s = 0;
                  const g = dy[yo + co];
                  for (let ci = 0; ci < c.Ci; ++ci) {
                    s += x[xo + ci] * w[wo + ci];
                    dw[wo + ci] += g * x[xo + ci];
                  }
                  y[yo + co] += s;
                }
              }
        }
  return { y, dw, O };
}

function expectClose(got: ArrayLike<number>, want: Float64Array, rel: number, what: string) {
  let scale = 1e-30;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < want.length; ++i) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(got.length, what).toBe(want.length);
  expect(worst / scale, what).toBeLessThan(rel);
}

const CASES: Case[] = [
  // Cout 3 at 40 channels: the classification head's shape in small.
  { name: '3x3x3 pad 1, Cout 3', N: 1, D: [6, 5, 7], Ci: 40, Co: 3, k: [3, 3, 3], pad: [1, 1, 1], dil: [1, 1, 1] },
  { name: 'batch 2, no padding, Cout 18', N: 2, D: [5, 6, 4], Ci: 64, Co: 18, k: [3, 3, 3], pad: [0, 0, 0], dil: [1, 1, 1] },
  { name: 'dilation 2, padding 2, Cout 5', N: 1, D: [6, 7, 5], Ci: 33, Co: 5, k: [3, 3, 3], pad: [2, 2, 2], dil: [2, 2, 2] },
  { name: 'anisotropic kernel [3,1,3], Cout 24', N: 1, D: [4, 5, 6], Ci: 32, Co: 24, k: [3, 1, 3], pad: [1, 0, 2], dil: [1, 1, 1] },
];

function run(c: Case, dtype: 'float32' | 'float64', seed: number) {
  const xs = [c.N, ...c.D, c.Ci], ws = [c.Co, ...c.k, c.Ci];
  const x = rand(xs.reduce((p, q) => p * q), seed), w = rand(ws.reduce((p, q) => p * q), seed + 1);
  const b = rand(c.Co, seed + 2);
  const O = [0, 1, 2].map((i) => c.D[i] + 2 * c.pad[i] - c.dil[i] * (c.k[i] - 1));
  const dy = rand(c.N * O[0] * O[1] * O[2] * c.Co, seed + 3);
  const T = (a: Float64Array, s: number[]) => Tensor.from(dtype === 'float32' ? Float32Array.from(a) : a, s, dtype);
  // The reference takes the values the tensors hold (float32-rounded in float32).
  const r = (a: Float64Array) => (dtype === 'float32' ? Float64Array.from(Float32Array.from(a)) : a);
  const ref = reference(c, r(x), r(w), r(b), r(dy));
  const opts = { padding: c.pad, dilation: c.dil };
  const X = T(x, xs), W = T(w, ws), B = T(b, [c.Co]), DY = T(dy, [c.N, ...O, c.Co]);
  return {
    ref,
    y: () => conv3d(X, W, B, opts).toArray() as ArrayLike<number>,
    dw: () => conv3dBackward(X, W, DY, { ...opts, input: false }).gradWeight!.toArray() as ArrayLike<number>,
  };
}

describe('conv3d few-output-channel path', () => {
  afterEach(() => {
    delete process.env.DETSEG3D_CONV_NARROW;
    delete process.env.DETSEG3D_CONV_NARROW_CHUNK;
  });

  for (const dtype of ['float32', 'float64'] as const)
    it(`matches a float64 reference (${dtype}), whole and chunked`, () => {
      const rel = dtype === 'float32' ? 2e-5 : 1e-12;
      CASES.forEach((c, i) => {
        const t = run(c, dtype, 31 * i + 5);
        expectClose(t.y(), t.ref.y, rel, `${c.name} forward`);
        expectClose(t.dw(), t.ref.dw, rel, `${c.name} grad weight`);
        // 1 plane per chunk (fewer than the kernel's reach: one output plane
        // per forward chunk) and 2-3 planes per chunk.
        for (const chunk of ['1', String(3 * c.D[1] * c.D[2] * c.k[0] * c.k[1] * c.k[2] * c.Co)]) {
          process.env.DETSEG3D_CONV_NARROW_CHUNK = chunk;
          expectClose(t.y(), t.ref.y, rel, `${c.name} forward, chunk ${chunk}`);
          expectClose(t.dw(), t.ref.dw, rel, `${c.name} grad weight, chunk ${chunk}`);
        }
      });
    });

  it('agrees with the GEMM path (float32): forward to rounding, and exactly at 256 channels', () => {
    const c: Case = { name: '256 channels', N: 1, D: [4, 5, 3], Ci: 256, Co: 3, k: [3, 3, 3], pad: [1, 1, 1], dil: [1, 1, 1] };
    const t = run(c, 'float32', 77);
    const y = Array.from(t.y()), dw = Array.from(t.dw());
    process.env.DETSEG3D_CONV_NARROW = '0';
    const yGemm = Array.from(t.y()), dwGemm = t.dw();
    // At 256 channels each 256-deep K block of the GEMM path is one tap, so both
    // paths add the same per-tap dot products in the same order.
    expect(y).toEqual(yGemm);
    expectClose(dw, Float64Array.from(dwGemm), 1e-6, 'grad weight vs GEMM path');
    expectClose(y, t.ref.y, 2e-5, 'forward vs reference');
  });
});
