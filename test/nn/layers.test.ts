// Layer-level checks of the network's native layers: forward against naive
// float64 references written here, hand-worked cases, and backward passes
// against central finite differences (float64) of L = sum(y * R) for a
// random R.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/tensor.js';
import * as L from '../../src/model/layers.js';
import { dot, expectClose, f64, finiteDiff, numelOf, rng, randArray, randTensor, sampleIndices } from './helpers.js';

const EPS = 1e-5;

// Naive BatchNorm reference over [rows, C] (channels last), biased variance.
function bnRef(x: Float64Array, C: number, gamma: Float64Array, beta: Float64Array, mean: number[], varr: number[], res: Float64Array | null, relu: boolean): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = i % C;
    let v = (gamma[c] * (x[i] - mean[c])) / Math.sqrt(varr[c] + EPS) + beta[c];
    if (res) v += res[i];
    y[i] = relu ? Math.max(0, v) : v;
  }
  return y;
}
function channelStats(x: Float64Array, C: number): { mean: number[]; biased: number[]; unbiased: number[] } {
  const M = x.length / C;
  const mean = Array(C).fill(0);
  for (let i = 0; i < x.length; i++) mean[i % C] += x[i] / M;
  const ss = Array(C).fill(0);
  for (let i = 0; i < x.length; i++) ss[i % C] += (x[i] - mean[i % C]) ** 2;
  return { mean, biased: ss.map((s) => s / M), unbiased: ss.map((s) => s / (M - 1)) };
}

describe('BatchNorm3d', () => {
  it('hand-worked training step: normalisation and running statistics', () => {
    // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased var 5/3.
    const x = Tensor.from(new Float64Array([1, 2, 3, 4]), [1, 1, 1, 4, 1]);
    const rm = Tensor.from(new Float64Array([0]), [1]);
    const rv = Tensor.from(new Float64Array([1]), [1]);
    const g = Tensor.from(new Float64Array([2]), [1]);
    const b = Tensor.from(new Float64Array([0.5]), [1]);
    const { y } = L.batchNorm(x, g, b, rm, rv, null, { training: true });
    const s = Math.sqrt(1.25 + 1e-5);
    const want = [1, 2, 3, 4].map((v) => (2 * (v - 2.5)) / s + 0.5);
    f64(y).forEach((v, i) => expect(v).toBeCloseTo(want[i], 12));
    // running_mean = 0.9*0 + 0.1*2.5; running_var = 0.9*1 + 0.1*(5/3) (unbiased).
    expect(f64(rm)[0]).toBeCloseTo(0.25, 14);
    expect(f64(rv)[0]).toBeCloseTo(0.9 + 0.1 * (5 / 3), 14);
    // Eval mode uses the running statistics and leaves them unchanged.
    const e = L.batchNorm(x, g, b, rm, rv, null, { training: false });
    const se = Math.sqrt(0.9 + 0.1 * (5 / 3) + 1e-5);
    f64(e.y).forEach((v, i) => expect(v).toBeCloseTo((2 * ([1, 2, 3, 4][i] - 0.25)) / se + 0.5, 12));
    expect(f64(rm)[0]).toBeCloseTo(0.25, 14);
  });

  it('matches a naive reference with residual and ReLU, in float32 too', () => {
    const r = rng(1);
    const shape = [2, 3, 2, 3, 5];
    const C = 5;
    const x = randArray(numelOf(shape), r, -2, 3);
    const res = randArray(x.length, r);
    const gamma = randArray(C, r, 0.5, 1.5);
    const beta = randArray(C, r);
    const st = channelStats(x, C);
    const want = bnRef(x, C, gamma, beta, st.mean, st.biased, res, true);
    for (const dt of ['float64', 'float32'] as const) {
      const t = (a: Float64Array, s: number[]) => Tensor.from(a, s, dt);
      const rm = t(new Float64Array(C), [C]);
      const rv = t(new Float64Array(C).fill(1), [C]);
      const out = L.batchNorm(t(x, shape), t(gamma, [C]), t(beta, [C]), rm, rv, t(res, shape), { training: true, relu: true });
      const got = dt === 'float64' ? f64(out.y) : out.y.toFloat32();
      const tol = dt === 'float64' ? 1e-10 : 2e-5;
      want.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThan(tol * (1 + Math.abs(v))));
      const rmv = rm.toFloat32();
      const rvv = rv.toFloat32();
      for (let c = 0; c < C; c++) {
        expect(rmv[c]).toBeCloseTo(0.1 * st.mean[c], 5);
        expect(rvv[c]).toBeCloseTo(0.9 + 0.1 * st.unbiased[c], 5);
      }
    }
  });

  for (const training of [true, false])
    for (const relu of [false, true])
      it(`backward matches finite differences (${training ? 'train' : 'eval'}, relu ${relu}, residual)`, () => {
        const r = rng(10 + Number(training) * 2 + Number(relu));
        const shape = [2, 2, 3, 2, 4];
        const C = 4;
        const x = randArray(numelOf(shape), r, -2, 2);
        const res = randArray(x.length, r, -0.5, 0.5);
        const gamma = randArray(C, r, 0.5, 1.5);
        const beta = randArray(C, r, -0.3, 0.3);
        const rmv = randArray(C, r, -0.2, 0.2);
        const rvv = randArray(C, r, 0.5, 2);
        const R = randArray(x.length, r);
        const run = (xv: Float64Array, g: Float64Array, b: Float64Array, rs: Float64Array) =>
          L.batchNorm(
            Tensor.from(xv, shape), Tensor.from(g, [C]), Tensor.from(b, [C]),
            Tensor.from(Float64Array.from(rmv), [C]), Tensor.from(Float64Array.from(rvv), [C]),
            Tensor.from(rs, shape), { training, relu },
          );
        const loss = (xv: Float64Array, g: Float64Array, b: Float64Array, rs: Float64Array) => dot(f64(run(xv, g, b, rs).y), R);
        const out = run(x, gamma, beta, res);
        const grads = L.batchNormBackward(Tensor.from(x, shape), out.y, Tensor.from(gamma, [C]), out, Tensor.from(R, shape), {
          training, relu, gradPre: true,
        });
        const ix = sampleIndices(x.length, 24, r);
        expectClose(ix.map((i) => f64(grads.gradInput)[i]), finiteDiff(x, ix, (v) => loss(v, gamma, beta, res)), 'dL/dx');
        const ic = [0, 1, 2, 3];
        expectClose(ic.map((i) => f64(grads.gradGamma)[i]), finiteDiff(gamma, ic, (v) => loss(x, v, beta, res)), 'dL/dgamma');
        expectClose(ic.map((i) => f64(grads.gradBeta)[i]), finiteDiff(beta, ic, (v) => loss(x, gamma, v, res)), 'dL/dbeta');
        expectClose(ix.map((i) => f64(grads.gradPre!)[i]), finiteDiff(res, ix, (v) => loss(x, gamma, beta, v)), 'dL/dresidual');
      });

  it('rejects a single value per channel in training and mismatched parameters', () => {
    const x = Tensor.from(new Float64Array([1, 2]), [1, 1, 1, 1, 2]);
    const v = (n: number, fill = 1) => Tensor.from(new Float64Array(n).fill(fill), [n]);
    expect(() => L.batchNorm(x, v(2), v(2), v(2, 0), v(2), null, { training: true })).toThrow(/more than one value/);
    expect(() => L.batchNorm(x, v(3), v(2), v(2, 0), v(2), null, { training: false })).toThrow(/shape \[2\]/);
  });
});

function gnRef(x: Float64Array, shape: number[], G: number, gamma: Float64Array, beta: Float64Array, relu: boolean): Float64Array {
  const [N, , , , C] = shape;
  const S = numelOf(shape) / (N * C);
  const Cg = C / G;
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < G; g++) {
      const vals: number[] = [];
      for (let s = 0; s < S; s++) for (let c = g * Cg; c < (g + 1) * Cg; c++) vals.push(x[(n * S + s) * C + c]);
      const m = vals.reduce((a, b) => a + b, 0) / vals.length;
      const v = vals.reduce((a, b) => a + (b - m) ** 2, 0) / vals.length;
      for (let s = 0; s < S; s++)
        for (let c = g * Cg; c < (g + 1) * Cg; c++) {
          const i = (n * S + s) * C + c;
          const o = (gamma[c] * (x[i] - m)) / Math.sqrt(v + EPS) + beta[c];
          y[i] = relu ? Math.max(0, o) : o;
        }
    }
  return y;
}

describe('GroupNorm', () => {
  it('matches a naive reference (per sample and group statistics)', () => {
    const r = rng(3);
    const shape = [2, 2, 3, 2, 6];
    const x = randArray(numelOf(shape), r, -1, 2);
    const gamma = randArray(6, r, 0.5, 1.5);
    const beta = randArray(6, r);
    const want = gnRef(x, shape, 3, gamma, beta, true);
    const got = f64(L.groupNorm(Tensor.from(x, shape), Tensor.from(gamma, [6]), Tensor.from(beta, [6]), 3, { relu: true }).y);
    want.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 10));
  });

  for (const relu of [false, true])
    it(`backward matches finite differences (relu ${relu})`, () => {
      const r = rng(20 + Number(relu));
      const shape = [2, 2, 2, 3, 4];
      const G = 2;
      const x = randArray(numelOf(shape), r, -2, 2);
      const gamma = randArray(4, r, 0.5, 1.5);
      const beta = randArray(4, r, -0.3, 0.3);
      const R = randArray(x.length, r);
      const run = (xv: Float64Array, g: Float64Array, b: Float64Array) =>
        L.groupNorm(Tensor.from(xv, shape), Tensor.from(g, [4]), Tensor.from(b, [4]), G, { relu });
      const loss = (xv: Float64Array, g: Float64Array, b: Float64Array) => dot(f64(run(xv, g, b).y), R);
      const out = run(x, gamma, beta);
      const gr = L.groupNormBackward(Tensor.from(x, shape), out.y, Tensor.from(gamma, [4]), G, out, Tensor.from(R, shape), { relu });
      const ix = sampleIndices(x.length, 24, r);
      expectClose(ix.map((i) => f64(gr.gradInput)[i]), finiteDiff(x, ix, (v) => loss(v, gamma, beta)), 'dL/dx');
      const ic = [0, 1, 2, 3];
      expectClose(ic.map((i) => f64(gr.gradGamma)[i]), finiteDiff(gamma, ic, (v) => loss(x, v, beta)), 'dL/dgamma');
      expectClose(ic.map((i) => f64(gr.gradBeta)[i]), finiteDiff(beta, ic, (v) => loss(x, gamma, v)), 'dL/dbeta');
    });

  it('rejects a group count that does not divide the channels', () => {
    const x = Tensor.from(new Float64Array(6), [1, 1, 1, 1, 6]);
    const v = Tensor.from(new Float64Array(6), [6]);
    expect(() => L.groupNorm(x, v, v, 4)).toThrow(/cannot be split into 4 groups/);
  });
});

describe('ReLU and add', () => {
  it('relu forward/backward and add on a hand-worked case', () => {
    const x = Tensor.from(new Float32Array([-1, 0, 2, -3, 5]), [5]);
    const y = L.relu(x);
    expect(Array.from(y.toFloat32())).toEqual([0, 0, 2, 0, 5]);
    // The gradient passes only where the output is positive (not at 0).
    const dx = L.reluBackward(y, Tensor.from(new Float32Array([1, 2, 3, 4, 5]), [5]));
    expect(Array.from(dx.toFloat32())).toEqual([0, 0, 3, 0, 5]);
    expect(Array.from(L.add(x, y).toFloat32())).toEqual([-1, 0, 4, -3, 10]);
    expect(() => L.add(x, Tensor.from(new Float32Array(4), [4]))).toThrow(/must match/);
  });
});

// Naive MaxPool3d reference (implicit -inf padding).
function maxpoolRef(x: Float64Array, shape: number[], k: number[], s: number[], p: number[]): { y: Float64Array; oshape: number[] } {
  const [N, D1, D2, D3, C] = shape;
  const O = [D1, D2, D3].map((d, i) => Math.floor((d + 2 * p[i] - k[i]) / s[i]) + 1);
  const y = new Float64Array(N * O[0] * O[1] * O[2] * C);
  let idx = 0;
  for (let n = 0; n < N; n++)
    for (let a = 0; a < O[0]; a++)
      for (let b = 0; b < O[1]; b++)
        for (let c3 = 0; c3 < O[2]; c3++)
          for (let c = 0; c < C; c++) {
            let m = -Infinity;
            for (let i = 0; i < k[0]; i++)
              for (let j = 0; j < k[1]; j++)
                for (let l = 0; l < k[2]; l++) {
                  const u = a * s[0] - p[0] + i, v = b * s[1] - p[1] + j, w = c3 * s[2] - p[2] + l;
                  if (u < 0 || v < 0 || w < 0 || u >= D1 || v >= D2 || w >= D3) continue;
                  m = Math.max(m, x[(((n * D1 + u) * D2 + v) * D3 + w) * C + c]);
                }
            y[idx++] = m;
          }
  return { y, oshape: [N, ...O, C] };
}

describe('MaxPool3d', () => {
  for (const [k, s, p] of [
    [[3, 3, 3], [2, 2, 2], [1, 1, 1]], // the ResNet stem pool
    [[1, 1, 1], [2, 2, 2], [0, 0, 0]], // the FPN extra level
    [[2, 3, 1], [1, 2, 1], [1, 1, 0]],
  ])
    it(`kernel ${k} stride ${s} padding ${p}: forward vs naive, backward vs finite differences`, () => {
      const r = rng(30 + k[1]);
      const shape = [2, 5, 4, 3, 3];
      const x = randArray(numelOf(shape), r);
      const ref = maxpoolRef(x, shape, k, s, p);
      const out = L.maxPool3d(Tensor.from(x, shape), { kernel: k as never, stride: s as never, padding: p as never });
      expect(out.y.shape).toEqual(ref.oshape);
      expect(Array.from(f64(out.y))).toEqual(Array.from(ref.y));
      const R = randArray(ref.y.length, r);
      const dx = f64(L.maxPool3dBackward(Tensor.from(R, ref.oshape), out.argmax, shape));
      const ix = sampleIndices(x.length, 40, r);
      // Values are distinct, so a small step never changes the winners: the difference quotient is exact.
      expectClose(ix.map((i) => dx[i]), finiteDiff(x, ix, (v) => dot(maxpoolRef(v, shape, k, s, p).y, R), 1e-7), 'dL/dx', 1e-6, 1e-8);
    });

  it('reports inputs smaller than the kernel', () => {
    const x = Tensor.from(new Float32Array(2), [1, 1, 1, 2, 1]);
    expect(() => L.maxPool3d(x, { kernel: 3 })).toThrow(/too small/);
  });
});

describe('nearest upsampling', () => {
  it('hand-worked resize 2 -> 3 and 2 -> 4 (index floor(o * in / out))', () => {
    // Along D3: [a, b] -> size 3 reads [0, 0, 1]; along D2: [p, q] -> size 4 reads [0, 0, 1, 1].
    const x = Tensor.from(new Float64Array([1, 2, 3, 4]), [1, 1, 2, 2, 1]); // (d2, d3) = [[1,2],[3,4]]
    const y = L.upsampleNearest(x, [1, 4, 3]);
    expect(y.shape).toEqual([1, 1, 4, 3, 1]);
    expect(Array.from(f64(y))).toEqual([1, 1, 2, 1, 1, 2, 3, 3, 4, 3, 3, 4]);
  });

  it('backward is the adjoint of forward: <up(x), g> = <x, up_T(g)>', () => {
    const r = rng(40);
    const shape = [2, 2, 3, 2, 3];
    const x = randArray(numelOf(shape), r);
    const size: [number, number, number] = [4, 5, 4];
    const y = f64(L.upsampleNearest(Tensor.from(x, shape), size));
    const g = randArray(y.length, r);
    const gx = f64(L.upsampleNearestBackward(Tensor.from(g, [2, ...size, 3]), shape));
    expect(dot(y, g)).toBeCloseTo(dot(x, gx), 10);
    // Every input position receives the sum over its copies: with g = 1 that is the copy count (2*... per axis).
    const ones = f64(L.upsampleNearestBackward(Tensor.from(new Float64Array(y.length).fill(1), [2, ...size, 3]), shape));
    // Counts per axis: 2 -> 4 gives (2, 2); 3 -> 5 gives floor(o*3/5) for o=0..4 = 0,0,1,1,2 -> (2, 2, 1); 2 -> 4 gives (2, 2).
    const c1 = [2, 2], c2 = [2, 2, 1], c3 = [2, 2];
    let i = 0;
    for (let n = 0; n < 2; n++)
      for (let a = 0; a < 2; a++)
        for (let b = 0; b < 3; b++)
          for (let c = 0; c < 2; c++)
            for (let ch = 0; ch < 3; ch++) expect(ones[i++]).toBe(c1[a] * c2[b] * c3[c]);
  });
});

describe('float32 layers agree with float64', () => {
  it('groupnorm backward in float32 is close to float64', () => {
    const r = rng(50);
    const shape = [1, 3, 3, 3, 8];
    const x = randTensor(shape, r);
    const gm = randTensor([8], r, 0.5, 1.5);
    const bt = randTensor([8], r);
    const dy = randTensor(shape, r);
    const run = (dt: 'float32' | 'float64') => {
      const c = (t: Tensor) => t.to(dt);
      const o = L.groupNorm(c(x), c(gm), c(bt), 4, { relu: true });
      return L.groupNormBackward(c(x), o.y, c(gm), 4, o, c(dy), { relu: true }).gradInput.toFloat32();
    };
    const a = run('float32');
    const b = run('float64');
    a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-4));
  });
});
