// The RetinaNet heads share each tower conv's Winograd weight transform over
// the pyramid levels (native/nn/head.cpp opens a Conv3dWeightReuse scope per
// layer). With the tile shape forced (so that both runs take the same path on
// every level), a forward + backward with the reuse gives head outputs,
// parameter gradients and the input gradient bit-identical to one with the
// reuse disabled (DETSEG3D_WINOGRAD_REUSE=0, i.e. every level transforming
// the weights itself). Without AVX2 both runs take the GEMM path (still equal).
import { afterEach, describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor.js';
import { LUNA16_CONFIG, RetinaNet, type RetinaNetConfig } from '../src/model/index.js';

// 64 FPN / head channels: the smallest width the Winograd path takes.
const CFG: RetinaNetConfig = {
  ...LUNA16_CONFIG,
  depth: 10,
  widths: [8, 8, 8, 8],
  fpnChannels: 64,
  headGroups: 8,
  numClasses: 2,
  seed: 3,
  dtype: 'float32',
};

function rand(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; ++i) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296 - 0.5) * scale;
  }
  return a;
}

// One training forward + backward from fresh weights: every output and gradient, flattened.
function step(): Map<string, number[]> {
  const m = RetinaNet.create(CFG);
  m.train();
  // (x, y, z) = (32, 32, 16): levels 8^3, 4^3 and 2^3.
  const x = Tensor.from(rand(16 * 32 * 32, 5), [1, 16, 32, 32, 1]);
  const out = m.forward(x);
  const r = new Map<string, number[]>();
  const mk = (ts: Tensor[], seed: number) => ts.map((t, i) => Tensor.from(rand(t.numel, seed + i, 1e-2), t.shape));
  out.clsLogits.forEach((t, i) => r.set(`cls ${i}`, Array.from(t.toFloat32())));
  out.boxRegression.forEach((t, i) => r.set(`box ${i}`, Array.from(t.toFloat32())));
  const dx = m.backward({ clsGrads: mk(out.clsLogits, 100), boxGrads: mk(out.boxRegression, 200) }, { inputGrad: true });
  r.set('input grad', Array.from(dx!.toFloat32()));
  for (const p of m.parameters()) if (p.name.includes('head')) r.set(p.name, Array.from(m.grad(p.name).toFloat32()));
  return r;
}

describe('head weight-transform reuse across pyramid levels', () => {
  afterEach(() => {
    for (const k of ['DETSEG3D_WINOGRAD', 'DETSEG3D_WINOGRAD_TILE', 'DETSEG3D_WINOGRAD_REUSE']) delete process.env[k];
  });

  for (const tile of ['2', '4'])
    it(`is bit-identical to per-level transforms (tile ${tile} forced)`, () => {
      process.env.DETSEG3D_WINOGRAD = '1';
      process.env.DETSEG3D_WINOGRAD_TILE = tile;
      process.env.DETSEG3D_WINOGRAD_REUSE = '0';
      const ref = step();
      delete process.env.DETSEG3D_WINOGRAD_REUSE;
      const got = step();
      expect([...got.keys()]).toEqual([...ref.keys()]);
      expect(ref.size).toBeGreaterThan(10); // outputs of 3 levels x 2 heads, input grad, head parameters
      for (const [k, v] of ref) {
        expect(v.some((e) => e !== 0), `${k} is not all zero`).toBe(true);
        expect(got.get(k), k).toEqual(v);
      }
    });
});
