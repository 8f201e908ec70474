// conv3d forward and backward against an independent float64 reference written
// here (plain loops over the definition), on every SIMD path and 1 vs 2
// threads; finite-difference gradient checks in float64; argument errors.
import { afterAll, describe, expect, it } from 'vitest';
import { conv3d, conv3dAsync, conv3dBackward, conv3dBackwardAsync } from '../src/ops.js';
import { Tensor, type Triple } from '../src/tensor.js';
import { info, setNumThreads, setSimdLevel } from '../src/info.js';

type Level = 'scalar' | 'avx2' | 'avx512';
const LEVELS: Level[] = ['scalar', 'avx2', 'avx512'];
const initial = info();
const supported = LEVELS.slice(0, LEVELS.indexOf(initial.simdSupported) + 1);

afterAll(() => {
  setSimdLevel(initial.simd);
  setNumThreads(initial.threads);
});

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
function randArray(n: number, seed: number): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n);
  for (let i = 0; i < n; ++i) a[i] = 2 * r();
  return a;
}

interface Case {
  name: string;
  N: number;
  D: Triple;
  Ci: number;
  Co: number;
  k: Triple;
  stride: Triple;
  padding: Triple;
  dilation: Triple;
}
const t3 = (a: number, b = a, c = a): Triple => [a, b, c];

function outSize(c: Case): Triple {
  return [0, 1, 2].map(
    (i) => Math.floor((c.D[i] + 2 * c.padding[i] - c.dilation[i] * (c.k[i] - 1) - 1) / c.stride[i]) + 1,
  ) as Triple;
}

// Reference: y[n,o,co] = b[co] + sum_{tap,ci} x[n, o*s - p + tap*d, ci] w[co,tap,ci];
// dX, dW, dB by the chain rule on the same loops.
function reference(c: Case, x: Float64Array, w: Float64Array, b: Float64Array | null, dy: Float64Array | null) {
  const O = outSize(c);
  const [D1, D2, D3] = c.D;
  const [K1, K2, K3] = c.k;
  const y = new Float64Array(c.N * O[0] * O[1] * O[2] * c.Co);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(c.Co);
  for (let n = 0; n < c.N; ++n)
    for (let o1 = 0; o1 < O[0]; ++o1)
      for (let o2 = 0; o2 < O[1]; ++o2)
        for (let o3 = 0; o3 < O[2]; ++o3) {
          const yo = (((n * O[0] + o1) * O[1] + o2) * O[2] + o3) * c.Co;
          for (let co = 0; co < c.Co; ++co) {
            y[yo + co] = b ? b[co] : 0;
            if (dy) db[co] += dy[yo + co];
          }
          for (let a = 0; a < K1; ++a) {
            const i1 = o1 * c.stride[0] - c.padding[0] + a * c.dilation[0];
            if (i1 < 0 || i1 >= D1) continue;
            for (let bb = 0; bb < K2; ++bb) {
              const i2 = o2 * c.stride[1] - c.padding[1] + bb * c.dilation[1];
              if (i2 < 0 || i2 >= D2) continue;
              for (let cc = 0; cc < K3; ++cc) {
                const i3 = o3 * c.stride[2] - c.padding[2] + cc * c.dilation[2];
                if (i3 < 0 || i3 >= D3) continue;
                const xo = (((n * D1 + i1) * D2 + i2) * D3 + i3) * c.Ci;
                const tap = (a * K2 + bb) * K3 + cc;
                for (let co = 0; co < c.Co; ++co) {
                  const wo = (co * K1 * K2 * K3 + tap) * c.Ci;
                  let s = 0;
                  const g = dy ? dy[yo + co] : 0;
                  for (let ci = 0; ci < c.Ci; ++ci) {
                    s += x[xo + ci] * w[wo + ci];
                    if (dy) {
                      dx[xo + ci] += g * w[wo + ci];
                      dw[wo + ci] += g * x[xo + ci];
                    }
                  }
                  y[yo + co] += s;
                }
              }
            }
          }
        }
  return { y, dx, dw, db, O };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; ++i) m = Math.max(m, Math.abs(a[i]));
  return m;
}
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string) {
  expect(got.length, `${what}: length`).toBe(want.length);
  const scale = Math.max(1, maxAbs(want));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; ++i) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  expect(worst / scale, `${what}: max error ${worst} at ${at} (scale ${scale})`).toBeLessThan(rel);
}

function tensors(c: Case, dtype: 'float32' | 'float64', seed: number) {
  const O = outSize(c);
  const xs = [c.N, ...c.D, c.Ci];
  const ws = [c.Co, ...c.k, c.Ci];
  const ys = [c.N, ...O, c.Co];
  const x = randArray(xs.reduce((p, q) => p * q), seed);
  const w = randArray(ws.reduce((p, q) => p * q), seed + 1);
  const b = randArray(c.Co, seed + 2);
  const dy = randArray(ys.reduce((p, q) => p * q), seed + 3);
  if (dtype === 'float32') for (const a of [x, w, b, dy]) a.set(Float32Array.from(a)); // exact f32 values
  const T = (a: Float64Array, s: number[]) =>
    Tensor.from(dtype === 'float32' ? Float32Array.from(a) : a, s, dtype);
  return { x, w, b, dy, X: T(x, xs), W: T(w, ws), B: T(b, [c.Co]), DY: T(dy, ys), xs, ws, ys };
}

function checkCase(c: Case, dtype: 'float32' | 'float64', seed: number) {
  const t = tensors(c, dtype, seed);
  const ref = reference(c, t.x, t.w, t.b, t.dy);
  const opts = { stride: c.stride, padding: c.padding, dilation: c.dilation };
  const rel = dtype === 'float32' ? 2e-5 : 1e-12;
  const y = conv3d(t.X, t.W, t.B, opts);
  expect(y.shape).toEqual([c.N, ...ref.O, c.Co]);
  expect(y.dtype).toBe(dtype);
  expectClose(y.toArray() as Float32Array, ref.y, rel, `${c.name} forward`);
  const yNoBias = conv3d(t.X, t.W, null, opts).toArray() as Float32Array;
  const bias = t.b;
  expectClose(
    yNoBias,
    ref.y.map((v, i) => v - bias[i % c.Co]),
    rel,
    `${c.name} forward without bias`,
  );
  const g = conv3dBackward(t.X, t.W, t.DY, { ...opts, bias: true });
  expect(g.gradInput!.shape).toEqual(t.xs);
  expect(g.gradWeight!.shape).toEqual(t.ws);
  expectClose(g.gradInput!.toArray() as Float32Array, ref.dx, rel, `${c.name} grad input`);
  expectClose(g.gradWeight!.toArray() as Float32Array, ref.dw, rel, `${c.name} grad weight`);
  expectClose(g.gradBias!.toArray() as Float32Array, ref.db, rel, `${c.name} grad bias`);
}

const CASES: Case[] = [
  { name: '3x3x3 pad 1 batch 2', N: 2, D: [5, 6, 7], Ci: 3, Co: 5, k: t3(3), stride: t3(1), padding: t3(1), dilation: t3(1) },
  { name: '1x1x1 pointwise', N: 2, D: [4, 5, 3], Ci: 17, Co: 33, k: t3(1), stride: t3(1), padding: t3(0), dilation: t3(1) },
  { name: '1x1x1 stride [1,2,2]', N: 1, D: [5, 5, 4], Ci: 8, Co: 10, k: t3(1), stride: [1, 2, 2], padding: t3(0), dilation: t3(1) },
  { name: '7x7x7 stem stride [1,2,2]', N: 1, D: [6, 9, 10], Ci: 1, Co: 9, k: t3(7), stride: [1, 2, 2], padding: t3(3), dilation: t3(1) },
  { name: 'anisotropic [1,3,5] stride [2,1,3] dil [1,2,1]', N: 1, D: [5, 7, 9], Ci: 6, Co: 7, k: [1, 3, 5], stride: [2, 1, 3], padding: [0, 1, 2], dilation: [1, 2, 1] },
  { name: 'dilation 2', N: 1, D: [6, 6, 7], Ci: 19, Co: 40, k: t3(3), stride: t3(1), padding: t3(2), dilation: t3(2) },
  { name: '3x3x3 stride 2 (K > KC)', N: 2, D: [9, 8, 11], Ci: 24, Co: 37, k: t3(3), stride: t3(2), padding: t3(1), dilation: t3(1) },
  { name: 'few output tiles (K split)', N: 1, D: [8, 10, 12], Ci: 2, Co: 3, k: t3(3), stride: t3(1), padding: t3(1), dilation: t3(1) },
  { name: 'large reduction, M > MC', N: 1, D: [10, 12, 20], Ci: 24, Co: 8, k: t3(3), stride: t3(1), padding: t3(1), dilation: t3(1) },
  { name: 'kernel 2 stride 3 no padding', N: 3, D: [7, 8, 9], Ci: 5, Co: 70, k: t3(2), stride: t3(3), padding: t3(0), dilation: t3(1) },
  // Ci = 40 = one full 32-wide B panel + 8 for the grad-input GEMM, whose B
  // operand is packed straight from the weights (stride 1: one phase; stride 2: 8 phases).
  { name: 'wide Cin, full panels', N: 1, D: [4, 5, 6], Ci: 40, Co: 36, k: t3(3), stride: t3(1), padding: t3(1), dilation: t3(1) },
  { name: 'wide Cin, stride 2', N: 1, D: [5, 4, 6], Ci: 40, Co: 12, k: t3(3), stride: t3(2), padding: t3(1), dilation: t3(1) },
  // 256 channels: every 256-wide K block is one tap, which the AVX-512 kernel
  // reads in place from x (forward) and dy (grad input), padding rows as zeros;
  // 27 rows leave a partial last micro-panel.
  { name: 'Cin = Cout = 256 (A read in place)', N: 1, D: [3, 3, 3], Ci: 256, Co: 256, k: t3(3), stride: t3(1), padding: t3(1), dilation: t3(1) },
  // 128 channels: a K block covers two taps of a run, which is packed where one of them is in the padding.
  { name: 'Cin 128 (blocks of two taps)', N: 1, D: [3, 4, 5], Ci: 128, Co: 8, k: t3(3), stride: t3(1), padding: t3(1), dilation: t3(1) },
];

describe('conv3d against a float64 reference', () => {
  for (const level of supported)
    for (const threads of [1, 2]) {
      it(`float32, simd ${level}, ${threads} thread(s)`, () => {
        setSimdLevel(level);
        setNumThreads(threads);
        try {
          CASES.forEach((c, i) => checkCase(c, 'float32', 100 * i + 7));
        } finally {
          setSimdLevel(initial.simd);
          setNumThreads(initial.threads);
        }
      });
    }

  it('float64 on every case (2 threads)', () => {
    setNumThreads(2);
    try {
      CASES.forEach((c, i) => checkCase(c, 'float64', 100 * i + 11));
    } finally {
      setNumThreads(initial.threads);
    }
  });

  it('async variants give the same results as the synchronous ones', async () => {
    const c = CASES[6];
    const t = tensors(c, 'float32', 21);
    const opts = { stride: c.stride, padding: c.padding, dilation: c.dilation };
    const y = await conv3dAsync(t.X, t.W, t.B, opts);
    expect(Array.from(y.toArray() as Float32Array)).toEqual(Array.from(conv3d(t.X, t.W, t.B, opts).toArray() as Float32Array));
    const g = await conv3dBackwardAsync(t.X, t.W, t.DY, { ...opts, bias: true });
    const ref = reference(c, t.x, t.w, t.b, t.dy);
    expectClose(g.gradInput!.toArray() as Float32Array, ref.dx, 2e-5, 'async grad input');
    expectClose(g.gradWeight!.toArray() as Float32Array, ref.dw, 2e-5, 'async grad weight');
  });

  it('computes only the requested gradients', () => {
    const c = CASES[0];
    const t = tensors(c, 'float32', 5);
    const g = conv3dBackward(t.X, t.W, t.DY, { padding: 1, input: false, weight: true });
    expect(g.gradInput).toBeNull();
    expect(g.gradBias).toBeNull();
    expect(g.gradWeight!.shape).toEqual(t.ws);
  });
});

describe('conv3d finite-difference gradients (float64)', () => {
  const c: Case = { name: 'fd', N: 2, D: [4, 5, 6], Ci: 3, Co: 4, k: [3, 2, 3], stride: [1, 2, 2], padding: [1, 0, 1], dilation: [2, 1, 1] };
  const opts = { stride: c.stride, padding: c.padding, dilation: c.dilation };
  const t = tensors(c, 'float64', 99);
  // L = sum(conv3d(x, w, b) * R), so dL/dy = R = dy.
  const loss = (x: Float64Array, w: Float64Array, b: Float64Array) => {
    const y = conv3d(Tensor.from(x, t.xs), Tensor.from(w, t.ws), Tensor.from(b, [c.Co]), opts).toArray() as Float64Array;
    let s = 0;
    for (let i = 0; i < y.length; ++i) s += y[i] * t.dy[i];
    return s;
  };
  it('matches central differences for input, weight and bias', () => {
    const g = conv3dBackward(t.X, t.W, t.DY, { ...opts, bias: true });
    const grads = {
      x: g.gradInput!.toArray() as Float64Array,
      w: g.gradWeight!.toArray() as Float64Array,
      b: g.gradBias!.toArray() as Float64Array,
    };
    const r = rng(3);
    const h = 1e-5;
    for (const which of ['x', 'w', 'b'] as const) {
      const base = { x: t.x, w: t.w, b: t.b }[which];
      for (let trial = 0; trial < 12; ++trial) {
        const i = Math.floor((r() + 0.5) * base.length) % base.length;
        const plus = Float64Array.from(base);
        const minus = Float64Array.from(base);
        plus[i] += h;
        minus[i] -= h;
        const args = (v: Float64Array) =>
          [which === 'x' ? v : t.x, which === 'w' ? v : t.w, which === 'b' ? v : t.b] as const;
        const fd = (loss(...args(plus)) - loss(...args(minus))) / (2 * h);
        expect(Math.abs(fd - grads[which][i]), `${which}[${i}]: fd ${fd} vs ${grads[which][i]}`).toBeLessThan(
          1e-7 * Math.max(1, Math.abs(fd)),
        );
      }
    }
  });
});

describe('conv3d argument errors', () => {
  const f32 = (shape: number[]) => Tensor.zeros(shape, 'float32');
  const x = f32([1, 4, 4, 4, 3]);
  const w = f32([5, 3, 3, 3, 3]);
  it('names the problem', () => {
    expect(() => conv3d(x, f32([5, 3, 3, 3, 2]), null)).toThrow(/3 channels but the weight expects 2/);
    expect(() => conv3d(f32([4, 4, 4, 3]), w, null)).toThrow(/conv3d input/);
    expect(() => conv3d(x, f32([5, 3, 3, 3]), null)).toThrow(/conv3d weight/);
    expect(() => conv3d(x.to('float64'), w, null)).toThrow(/float/);
    expect(() => conv3d(Tensor.zeros([1, 4, 4, 4, 3], 'int32'), Tensor.zeros([5, 3, 3, 3, 3], 'int32'), null)).toThrow(
      /float/,
    );
    expect(() => conv3d(x, w, null, { stride: 0 })).toThrow(/stride must be >= 1/);
    expect(() => conv3d(x, w, null, { stride: [1, -2, 1] })).toThrow(/stride/);
    expect(() => conv3d(x, w, null, { padding: -1 })).toThrow(/padding must be >= 0/);
    expect(() => conv3d(x, w, null, { dilation: [1, 1, 0] })).toThrow(/dilation must be >= 1/);
    expect(() => conv3d(x, f32([5, 5, 3, 3, 3]), null)).toThrow(/output size would be < 1 on axis 0/);
    expect(() => conv3d(x, w, null, { dilation: 2 })).toThrow(/output size would be < 1/);
    expect(() => conv3d(x, f32([5, 0, 3, 3, 3]), null)).toThrow(/kernel size must be >= 1|size/);
    expect(() => conv3d(f32([1, 0, 4, 4, 3]), w, null, { padding: 1 })).toThrow(/input spatial size must be >= 1|size/);
    expect(() => conv3d(x, w, f32([4]))).toThrow(/bias must have shape \[5\]/);
    expect(() => conv3d(x, w, f32([5]).to('float64'))).toThrow(/bias/);
    expect(() => conv3dBackward(x, w, f32([1, 2, 2, 3, 5]))).toThrow(/output gradient must have shape \[1, 2, 2, 2, 5\]/);
    expect(() => conv3dBackward(x, w, f32([1, 3, 2, 2, 5]), { padding: 0 })).toThrow(/output gradient must have shape/);
    expect(() => conv3dBackward(x, w, f32([1, 2, 2, 2, 5]).to('float64'))).toThrow(/output gradient/);
    expect(() => conv3dBackward(x, w, f32([1, 2, 2, 2, 4]))).toThrow(/output gradient must have shape/);
  });
});
