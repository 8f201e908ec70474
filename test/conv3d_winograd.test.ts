// The Winograd F(2,3) path of conv3d (float32, 3x3x3, stride 1, >= 64 channels
// in and out; native/ops/conv3d_winograd.cpp) against a float64 reference
// written here, on the AVX2 and AVX-512 paths with 1 and 2 threads.
// DETSEG3D_WINOGRAD=1 forces the path regardless of the size threshold (the
// shapes here are small so that the reference stays fast); "0" disables it.
// The shapes cover odd sizes and partial 2x2x2 tiles on every axis, padding 0,
// 1 and 2 (grad input then runs with padding 2, 1 and 0), batch 2, and channel
// counts that are not multiples of 16 or 8 (vector tails in the transforms).
import { afterAll, describe, expect, it } from 'vitest';
import { conv3d, conv3dBackward } from '../src/ops.js';
import { Tensor } from '../src/tensor.js';
import { info, setNumThreads, setSimdLevel } from '../src/info.js';
import { type Case, outSize, randF32, reference, relErr } from './conv3d_winograd_helpers.js';

type Level = 'scalar' | 'avx2' | 'avx512';
const initial = info();
const ALL: Level[] = ['scalar', 'avx2', 'avx512'];
const simdLevels = ALL.slice(1, ALL.indexOf(initial.simdSupported) + 1); // Winograd needs AVX2 or AVX-512
const envBefore = process.env.DETSEG3D_WINOGRAD;

function setMode(mode: '0' | '1' | 'auto') {
  if (mode === 'auto') delete process.env.DETSEG3D_WINOGRAD;
  else process.env.DETSEG3D_WINOGRAD = mode;
}
afterAll(() => {
  setSimdLevel(initial.simd);
  setNumThreads(initial.threads);
  if (envBefore === undefined) delete process.env.DETSEG3D_WINOGRAD;
  else process.env.DETSEG3D_WINOGRAD = envBefore;
});

const CASES: Case[] = [
  // Odd sizes on every axis: the last tile of each axis is partial (O = 5, 6, 7).
  { name: 'batch 2, pad 1, odd sizes, Ci 67 Co 70', N: 2, D: [5, 6, 7], Ci: 67, Co: 70, pad: [1, 1, 1] },
  // Padding 0 (grad input with padding 2): O = 5, 3, 4.
  { name: 'pad 0, Ci 64 Co 65', N: 1, D: [7, 5, 6], Ci: 64, Co: 65, pad: [0, 0, 0] },
  // Padding differs per axis, including 2 (grad input with padding 0 there).
  { name: 'pad [2, 0, 1], Ci 72 Co 64', N: 1, D: [3, 6, 4], Ci: 72, Co: 64, pad: [2, 0, 1] },
];

describe('conv3d Winograd path against a float64 reference', () => {
  for (const [ci, c] of CASES.entries()) {
    const O = outSize(c);
    const x = randF32(c.N * c.D[0] * c.D[1] * c.D[2] * c.Ci, 10 * ci + 1);
    const w = randF32(c.Co * 27 * c.Ci, 10 * ci + 2);
    const b = randF32(c.Co, 10 * ci + 3);
    const dy = randF32(c.N * O[0] * O[1] * O[2] * c.Co, 10 * ci + 4);
    const X = Tensor.from(x, [c.N, ...c.D, c.Ci]);
    const W = Tensor.from(w, [c.Co, 3, 3, 3, c.Ci]);
    const B = Tensor.from(b, [c.Co]);
    const DY = Tensor.from(dy, [c.N, ...O, c.Co]);
    const opts = { padding: c.pad };
    let ref: ReturnType<typeof reference> | null = null;
    const run = () => {
      const y = conv3d(X, W, B, opts).toArray() as Float32Array;
      const g = conv3dBackward(X, W, DY, opts);
      return { y, dx: g.gradInput!.toArray() as Float32Array, dw: g.gradWeight!.toArray() as Float32Array };
    };
    it(`${c.name}: every SIMD level, 1 and 2 threads`, () => {
      ref ??= reference(c, x, w, b, dy);
      try {
        for (const level of simdLevels) {
          setSimdLevel(level);
          const results = [];
          for (const threads of [1, 2]) {
            setNumThreads(threads);
            setMode('1');
            const r = run();
            // Measured worst case 6e-7 (the GEMM path: 4e-7); the suite's float32 bound is 2e-5.
            expect(relErr(r.y, ref.y), `${level} ${threads}t forward`).toBeLessThan(2e-5);
            expect(relErr(r.dx, ref.dx), `${level} ${threads}t grad input`).toBeLessThan(2e-5);
            expect(relErr(r.dw, ref.dw), `${level} ${threads}t grad weight`).toBeLessThan(2e-5);
            // Without bias: the reference minus the bias.
            const y0 = conv3d(X, W, null, opts).toArray() as Float32Array;
            expect(relErr(y0, ref.y.map((v, i) => v - b[i % c.Co])), `${level} no bias`).toBeLessThan(2e-5);
            results.push(r);
            // The path is really taken: the GEMM path rounds differently somewhere.
            setMode('0');
            const g = run();
            expect(relErr(g.y, ref.y)).toBeLessThan(2e-5);
            expect(Array.from(g.y)).not.toEqual(Array.from(r.y));
            expect(Array.from(g.dx)).not.toEqual(Array.from(r.dx));
            expect(Array.from(g.dw)).not.toEqual(Array.from(r.dw));
          }
          // Deterministic: the same bits for 1 and 2 threads (one thread per tile and per frequency).
          expect(Array.from(results[1].y)).toEqual(Array.from(results[0].y));
          expect(Array.from(results[1].dx)).toEqual(Array.from(results[0].dx));
          expect(Array.from(results[1].dw)).toEqual(Array.from(results[0].dw));
        }
      } finally {
        setMode('auto');
        setSimdLevel(initial.simd);
        setNumThreads(initial.threads);
      }
    });
  }

  // 256 -> 256 channels on 10x10x12: 150 tiles, more than one chunk of 128
  // (kChunkFloats), so the transformed weights are packed once and reused by
  // the second chunk's GEMMs. Checked against the GEMM path (itself checked
  // against float64 above) and for bit-identical results on 1 and 2 threads.
  it('several tile chunks (256 channels): matches the GEMM path, every SIMD level', () => {
    const c: Case = { name: 'chunks', N: 1, D: [10, 10, 12], Ci: 256, Co: 256, pad: [1, 1, 1] };
    const O = outSize(c);
    const X = Tensor.from(randF32(c.N * c.D[0] * c.D[1] * c.D[2] * c.Ci, 31), [c.N, ...c.D, c.Ci]);
    const W = Tensor.from(randF32(c.Co * 27 * c.Ci, 32), [c.Co, 3, 3, 3, c.Ci]);
    const DY = Tensor.from(randF32(c.N * O[0] * O[1] * O[2] * c.Co, 33), [c.N, ...O, c.Co]);
    const run = (mode: '0' | '1') => {
      setMode(mode);
      const y = conv3d(X, W, null, { padding: c.pad }).toArray() as Float32Array;
      const g = conv3dBackward(X, W, DY, { padding: c.pad });
      return [y, g.gradInput!.toArray() as Float32Array, g.gradWeight!.toArray() as Float32Array];
    };
    try {
      const ref = run('0');
      for (const level of simdLevels) {
        setSimdLevel(level);
        const per: Float32Array[][] = [];
        for (const threads of [1, 2]) {
          setNumThreads(threads);
          const r = run('1');
          for (let i = 0; i < 3; ++i) expect(relErr(r[i], ref[i]), `${level} ${threads}t output ${i}`).toBeLessThan(2e-5);
          per.push(r);
        }
        for (let i = 0; i < 3; ++i) expect(Array.from(per[1][i])).toEqual(Array.from(per[0][i]));
      }
    } finally {
      setMode('auto');
      setSimdLevel(initial.simd);
      setNumThreads(initial.threads);
    }
  });

  it('automatic mode: Winograd above the size threshold, the GEMM path below and for scalar/float64', () => {
    const pick = (c: Case, seed: number) => {
      const O = outSize(c);
      const X = Tensor.from(randF32(c.N * c.D[0] * c.D[1] * c.D[2] * c.Ci, seed), [c.N, ...c.D, c.Ci]);
      const W = Tensor.from(randF32(c.Co * 27 * c.Ci, seed + 1), [c.Co, 3, 3, 3, c.Ci]);
      const DY = Tensor.from(randF32(c.N * O[0] * O[1] * O[2] * c.Co, seed + 2), [c.N, ...O, c.Co]);
      const out = (mode: '0' | '1' | 'auto') => {
        setMode(mode);
        const y = conv3d(X, W, null, { padding: c.pad }).toArray() as Float32Array;
        const dx = conv3dBackward(X, W, DY, { padding: c.pad, weight: false }).gradInput!.toArray() as Float32Array;
        return [...Array.from(y), ...Array.from(dx)];
      };
      return { auto: out('auto'), wino: out('1'), gemm: out('0'), X, W };
    };
    try {
      // 16^3 positions x 64 channels = 2^18 >= 2^17: Winograd.
      const big = pick({ name: 'big', N: 1, D: [16, 16, 16], Ci: 64, Co: 64, pad: [1, 1, 1] }, 5);
      expect(big.auto).toEqual(big.wino);
      expect(big.auto).not.toEqual(big.gemm);
      // 6^3 x 64 = 13824 < 2^17: GEMM path.
      const small = pick({ name: 'small', N: 1, D: [6, 6, 6], Ci: 64, Co: 64, pad: [1, 1, 1] }, 6);
      expect(small.auto).toEqual(small.gemm);
      expect(small.auto).not.toEqual(small.wino);
      // 63 input channels: not eligible even when forced.
      const narrow = pick({ name: 'narrow', N: 1, D: [4, 4, 4], Ci: 63, Co: 64, pad: [1, 1, 1] }, 7);
      expect(narrow.wino).toEqual(narrow.gemm);
      // float64: never Winograd (the GEMM path bit for bit, forced or not).
      const x64 = Tensor.from(Float64Array.from(randF32(4 * 4 * 4 * 64, 9)), [1, 4, 4, 4, 64], 'float64');
      const w64 = Tensor.from(Float64Array.from(randF32(64 * 27 * 64, 10)), [64, 3, 3, 3, 64], 'float64');
      setMode('1');
      const forced = Array.from(conv3d(x64, w64, null, { padding: 1 }).toArray() as Float64Array);
      setMode('0');
      expect(forced).toEqual(Array.from(conv3d(x64, w64, null, { padding: 1 }).toArray() as Float64Array));
      // Scalar SIMD level: never Winograd.
      setSimdLevel('scalar');
      const sc = pick({ name: 'scalar', N: 1, D: [4, 4, 4], Ci: 64, Co: 64, pad: [1, 1, 1] }, 8);
      expect(sc.wino).toEqual(sc.gemm);
    } finally {
      setMode('auto');
      setSimdLevel(initial.simd);
    }
  });
});
