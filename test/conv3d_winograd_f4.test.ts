// The mixed Winograd F(2,3) x F(4,3) x F(4,3) tiles of conv3d (2 x 4 x 4
// outputs per tile along D1 x D2 x D3; native/ops/conv3d_winograd_f4_tx.h)
// against float64 references, on the AVX2 and AVX-512 paths with 1 and 2
// threads. DETSEG3D_WINOGRAD=1 forces the Winograd path and
// DETSEG3D_WINOGRAD_TILE=4 forces these tiles regardless of the size
// thresholds; "2" forces the F(2,3) tiles.
// F(4,3) trades accuracy for speed: its transforms have entries up to 8 and
// 16/15, so float32 rounding grows. Measured (256 channels, inputs in [-1, 1],
// max |error| / max |float64|): forward / grad input ~4.5e-6, grad weight
// ~1.5e-6, against ~3.5e-7 for the GEMM path and ~6e-7 for F(2,3) tiles.
import { afterAll, describe, expect, it } from 'vitest';
import { conv3d, conv3dBackward } from '../src/ops.js';
import { Tensor } from '../src/tensor.js';
import { info, setNumThreads, setSimdLevel } from '../src/info.js';
import { type Case, outSize, randF32, reference, relErr } from './conv3d_winograd_helpers.js';

type Level = 'scalar' | 'avx2' | 'avx512';
const initial = info();
const ALL: Level[] = ['scalar', 'avx2', 'avx512'];
const simdLevels = ALL.slice(1, ALL.indexOf(initial.simdSupported) + 1); // Winograd needs AVX2 or AVX-512
const envBefore = { mode: process.env.DETSEG3D_WINOGRAD, tile: process.env.DETSEG3D_WINOGRAD_TILE };

function setEnv(name: string, v: string | undefined) {
  if (v === undefined) delete process.env[name];
  else process.env[name] = v;
}
// mode: '0' GEMM path, '1' Winograd forced, undefined automatic; tile: '2', '4' or undefined (automatic).
function setMode(mode: '0' | '1' | undefined, tile: '2' | '4' | undefined) {
  setEnv('DETSEG3D_WINOGRAD', mode);
  setEnv('DETSEG3D_WINOGRAD_TILE', tile);
}
function restore() {
  setEnv('DETSEG3D_WINOGRAD', envBefore.mode);
  setEnv('DETSEG3D_WINOGRAD_TILE', envBefore.tile);
  setSimdLevel(initial.simd);
  setNumThreads(initial.threads);
}
afterAll(restore);

function tensors(c: Case, seed: number) {
  const O = outSize(c);
  const x = randF32(c.N * c.D[0] * c.D[1] * c.D[2] * c.Ci, seed);
  const w = randF32(c.Co * 27 * c.Ci, seed + 1);
  const b = randF32(c.Co, seed + 2);
  const dy = randF32(c.N * O[0] * O[1] * O[2] * c.Co, seed + 3);
  return { x, w, b, dy, O };
}

// forward (with bias when given), grad input, grad weight, as float32 or float64 tensors.
function runAll(c: Case, t: ReturnType<typeof tensors>, dtype: 'float32' | 'float64' = 'float32', bias = true) {
  const cv = (a: Float32Array) => (dtype === 'float64' ? Float64Array.from(a) : a);
  const X = Tensor.from(cv(t.x), [c.N, ...c.D, c.Ci], dtype);
  const W = Tensor.from(cv(t.w), [c.Co, 3, 3, 3, c.Ci], dtype);
  const B = bias ? Tensor.from(cv(t.b), [c.Co], dtype) : null;
  const DY = Tensor.from(cv(t.dy), [c.N, ...t.O, c.Co], dtype);
  const y = conv3d(X, W, B, { padding: c.pad }).toArray() as Float32Array;
  const g = conv3dBackward(X, W, DY, { padding: c.pad });
  return [y, g.gradInput!.toArray() as Float32Array, g.gradWeight!.toArray() as Float32Array];
}
const PASSES = ['forward', 'grad input', 'grad weight'];

// Partial 4-wide tiles on D2 and D3 and a partial 2-wide tile on D1 in every case.
const CASES: Case[] = [
  // O = 5, 6, 7: one full and one partial tile on D2 and D3 (6 = 4 + 2, 7 = 4 + 3).
  { name: 'batch 2, pad 1, O 5x6x7, Ci 67 Co 70', N: 2, D: [5, 6, 7], Ci: 67, Co: 70, pad: [1, 1, 1] },
  // Padding 0 (grad input runs with padding 2): O = 5, 9, 5 (9 = 4 + 4 + 1).
  { name: 'pad 0, O 5x9x5, Ci 64 Co 65', N: 1, D: [7, 11, 7], Ci: 64, Co: 65, pad: [0, 0, 0] },
  // Padding 2 on one axis (grad input with padding 0 there): O = 5, 4, 6.
  { name: 'pad [2, 0, 1], O 5x4x6, Ci 72 Co 64', N: 1, D: [3, 6, 6], Ci: 72, Co: 64, pad: [2, 0, 1] },
];

describe('conv3d Winograd F(2,3) x F(4,3)^2 tiles', () => {
  for (const [i, c] of CASES.entries()) {
    const t = tensors(c, 100 * i + 1);
    let ref: ReturnType<typeof reference> | null = null;
    it(`${c.name}: float64 reference, every SIMD level, 1 and 2 threads`, () => {
      ref ??= reference(c, t.x, t.w, t.b, t.dy);
      const want = [ref.y, ref.dx, ref.dw];
      try {
        for (const level of simdLevels) {
          setSimdLevel(level);
          const per: Float32Array[][] = [];
          for (const threads of [1, 2]) {
            setNumThreads(threads);
            setMode('1', '4');
            const r = runAll(c, t);
            // Measured at these channel counts: <= 3e-6 (F(2,3) tiles: <= 6e-7).
            for (let p = 0; p < 3; ++p) expect(relErr(r[p], want[p]), `${level} ${threads}t ${PASSES[p]}`).toBeLessThan(1e-5);
            per.push(r);
            // The F(4,3) tiles are really used: the F(2,3) tiles round differently.
            setMode('1', '2');
            const f2 = runAll(c, t);
            for (let p = 0; p < 3; ++p) expect(Array.from(f2[p])).not.toEqual(Array.from(r[p]));
          }
          // Deterministic: the same bits for 1 and 2 threads.
          for (let p = 0; p < 3; ++p) expect(Array.from(per[1][p])).toEqual(Array.from(per[0][p]));
        }
      } finally {
        restore();
      }
    });
  }

  // 256 -> 256 channels, the detector's channel count: the error bound against
  // the library's float64 path (the GEMM path, itself checked against a naive
  // float64 convolution in conv3d.test.ts), and relative to the float32 GEMM
  // path's own error.
  it('256 channels: within 1e-5 of float64 and within 20x the GEMM path error, every SIMD level', () => {
    const c: Case = { name: '256', N: 1, D: [6, 7, 9], Ci: 256, Co: 256, pad: [1, 1, 1] };
    const t = tensors(c, 7);
    try {
      setMode('0', undefined);
      const ref = runAll(c, t, 'float64');
      const gemm = runAll(c, t);
      for (const level of simdLevels) {
        setSimdLevel(level);
        setMode('1', '4');
        const r = runAll(c, t);
        for (let p = 0; p < 3; ++p) {
          const e = relErr(r[p], ref[p]);
          expect(e, `${level} ${PASSES[p]}`).toBeLessThan(1e-5);
          expect(e, `${level} ${PASSES[p]} vs GEMM`).toBeLessThan(20 * relErr(gemm[p], ref[p]));
        }
      }
    } finally {
      restore();
    }
  });

  // 256 channels on 16^3: 8 x 4 x 4 = 128 tiles, three chunks (56 tiles at
  // 256 channels), so the transformed weights are packed once and reused by
  // later chunks, and grad weight accumulates over chunks. Checked against the
  // float32 GEMM path and for bit-identical results on 1 and 2 threads.
  it('several tile chunks (256 channels, 16^3): matches the GEMM path, every SIMD level', () => {
    const c: Case = { name: 'chunks', N: 1, D: [16, 16, 16], Ci: 256, Co: 256, pad: [1, 1, 1] };
    const t = tensors(c, 31);
    try {
      setMode('0', undefined);
      const gemm = runAll(c, t, 'float32', false);
      for (const level of simdLevels) {
        setSimdLevel(level);
        const per: Float32Array[][] = [];
        for (const threads of [1, 2]) {
          setNumThreads(threads);
          setMode('1', '4');
          const r = runAll(c, t, 'float32', false);
          for (let p = 0; p < 3; ++p) expect(relErr(r[p], gemm[p]), `${level} ${threads}t ${PASSES[p]}`).toBeLessThan(2e-5);
          per.push(r);
        }
        for (let p = 0; p < 3; ++p) expect(Array.from(per[1][p])).toEqual(Array.from(per[0][p]));
      }
    } finally {
      restore();
    }
  });

  it('automatic tiles: F(4,3) from 16 positions along D2 and D3, F(2,3) below', () => {
    try {
      const pick = (c: Case, seed: number) => {
        const t = tensors(c, seed);
        const out = (tile: '2' | '4' | undefined) => {
          setMode('1', tile);
          return runAll(c, t).map((a) => Array.from(a));
        };
        return { auto: out(undefined), f2: out('2'), f4: out('4') };
      };
      // O = 8 x 16 x 16: mixed tiles for forward, grad input (input extent 16) and grad weight.
      const big = pick({ name: 'big', N: 1, D: [8, 16, 16], Ci: 64, Co: 64, pad: [1, 1, 1] }, 51);
      expect(big.auto).toEqual(big.f4);
      expect(big.auto).not.toEqual(big.f2);
      // O = 8 x 12 x 16: D2 below the threshold, F(2,3) tiles.
      const small = pick({ name: 'small', N: 1, D: [8, 12, 16], Ci: 64, Co: 64, pad: [1, 1, 1] }, 52);
      expect(small.auto).toEqual(small.f2);
      expect(small.auto).not.toEqual(small.f4);
    } finally {
      restore();
    }
  });
});
