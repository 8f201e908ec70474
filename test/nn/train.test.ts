// Training: SGD's update against torch.optim.SGD's rule worked out here in
// float64, optimiser state round trips, an overfitting sanity check, and
// the asynchronous forward/backward/step.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/tensor.js';
import { LUNA16_CONFIG, RetinaNet, SGD, type RetinaNetConfig, type RetinaNetOutput } from '../../src/model/index.js';
import { f64, randArray, rng } from './helpers.js';

const TINY: RetinaNetConfig = {
  ...LUNA16_CONFIG,
  depth: 10,
  widths: [4, 8, 8, 8],
  fpnChannels: 8,
  headGroups: 2,
  numClasses: 2,
  numAnchors: 2,
  seed: 3,
};
const X_SHAPE = [2, 8, 16, 16, 1];

// Gradients of L = sum(out * R) are simply R; R is fixed per level.
function backwardWithR(m: RetinaNet, out: RetinaNetOutput, dtype: 'float32' | 'float64', seed: number): void {
  const r = rng(seed);
  const mk = (t: Tensor) => Tensor.from(randArray(t.numel, r), t.shape, dtype);
  m.backward({ clsGrads: out.clsLogits.map(mk), boxGrads: out.boxRegression.map(mk) });
}

describe('SGD', () => {
  for (const variant of [
    { momentum: 0.9, nesterov: true, weightDecay: 0.01, dampening: 0 },
    { momentum: 0.8, nesterov: false, weightDecay: 0, dampening: 0.25 },
    { momentum: 0, nesterov: false, weightDecay: 0.1, dampening: 0 },
  ])
    it(`follows torch.optim.SGD exactly (${JSON.stringify(variant)})`, () => {
      const m = RetinaNet.create({ ...TINY, dtype: 'float64' });
      const x = Tensor.from(randArray(2 * 16 * 16 * 8, rng(1)), X_SHAPE);
      const lr = 0.05;
      const opt = new SGD(m, { lr, ...variant });
      const names = ['feature_extractor.body.conv1.weight', 'classification_head.cls_logits.bias', 'feature_extractor.body.bn1.weight'];
      const bufs = new Map<string, Float64Array>();
      for (let step = 0; step < 3; step++) {
        m.zeroGrad();
        backwardWithR(m, m.forward(x), 'float64', 10 + step);
        const before = new Map(names.map((n) => [n, f64(m.getTensor(n))]));
        const grads = new Map(names.map((n) => [n, f64(m.grad(n))]));
        opt.lr = lr * (step + 1); // the rate may change every step
        opt.step();
        for (const n of names) {
          const p = before.get(n)!;
          const g = grads.get(n)!;
          const after = f64(m.getTensor(n));
          let buf = bufs.get(n);
          for (let i = 0; i < p.length; i++) {
            let d = g[i] + variant.weightDecay * p[i];
            if (variant.momentum !== 0) {
              if (!buf) buf = new Float64Array(p.length);
              buf[i] = step === 0 ? d : variant.momentum * buf[i] + (1 - variant.dampening) * d;
              d = variant.nesterov ? d + variant.momentum * buf[i] : buf[i];
            }
            expect(after[i]).toBeCloseTo(p[i] - opt.lr * d, 12);
          }
          if (buf) bufs.set(n, buf);
        }
      }
      if (variant.momentum !== 0) {
        const st = opt.state();
        expect(st.size).toBe(m.parameters().length);
        const b = st.get('classification_head.cls_logits.bias')!;
        Array.from(bufs.get('classification_head.cls_logits.bias')!).forEach((v, i) => expect(b[i]).toBeCloseTo(v, 5));
      }
    });

  it('restores momentum buffers from state() (checkpoint resume gives the same step)', () => {
    const make = () => RetinaNet.create({ ...TINY, dtype: 'float64' });
    const x = Tensor.from(randArray(2 * 16 * 16 * 8, rng(2)), X_SHAPE);
    const a = make();
    const optA = new SGD(a, { lr: 0.01, momentum: 0.9, nesterov: true });
    backwardWithR(a, a.forward(x), 'float64', 1);
    optA.step();
    // Snapshot: weights + optimiser state (float64 weights via getTensor for an exact copy).
    const b = make();
    for (const p of [...a.parameters(), ...a.buffers()]) b.setTensor(p.name, a.getTensor(p.name));
    const optB = new SGD(b, { lr: 0.01, momentum: 0.9, nesterov: true });
    const st = optA.state();
    optB.loadState(st);
    for (const [m, opt] of [[a, optA], [b, optB]] as const) {
      m.zeroGrad();
      backwardWithR(m, m.forward(x), 'float64', 2);
      opt.step();
    }
    const wa = f64(a.getTensor('feature_extractor.body.layer1.0.conv1.weight'));
    const wb = f64(b.getTensor('feature_extractor.body.layer1.0.conv1.weight'));
    // State is exchanged as float32, so agreement is to float32 precision of the momentum term.
    wa.forEach((v, i) => expect(wb[i]).toBeCloseTo(v, 7));
    expect(() => optB.loadState(new Map([['nope', new Float32Array(1)]]))).toThrow(/unknown parameter 'nope'/);
    expect(() => new SGD(a, { lr: 0.1, nesterov: true })).toThrow(/Nesterov momentum requires momentum > 0/);
  });
});

describe('training sanity', () => {
  it('overfits a fixed batch: 30 SGD steps cut a simple head-output loss by more than 90%', () => {
    const m = RetinaNet.create({ ...TINY, widths: [8, 8, 8, 8], fpnChannels: 16, headGroups: 4 });
    const x = Tensor.from(new Float32Array(randArray(2 * 16 * 16 * 8, rng(5))), X_SHAPE);
    const opt = new SGD(m, { lr: 0.02, momentum: 0.9, nesterov: true, weightDecay: 3e-5 });
    // Target: every class logit 1 and every box delta 0.5; loss = mean squared error over all outputs.
    const targetOf = (cls: boolean) => (cls ? 1 : 0.5);
    const lossAndGrads = (out: RetinaNetOutput) => {
      const all = [...out.clsLogits.map((t) => [t, true] as const), ...out.boxRegression.map((t) => [t, false] as const)];
      const count = all.reduce((s, [t]) => s + t.numel, 0);
      let loss = 0;
      const grads = all.map(([t, cls]) => {
        const v = t.toFloat32();
        const g = new Float32Array(v.length);
        const tgt = targetOf(cls);
        for (let i = 0; i < v.length; i++) {
          loss += (v[i] - tgt) ** 2 / count;
          g[i] = (2 * (v[i] - tgt)) / count;
        }
        return Tensor.from(g, t.shape);
      });
      const L = out.clsLogits.length;
      return { loss, clsGrads: grads.slice(0, L), boxGrads: grads.slice(L) };
    };
    const losses: number[] = [];
    for (let step = 0; step < 30; step++) {
      m.zeroGrad();
      const { loss, clsGrads, boxGrads } = lossAndGrads(m.forward(x));
      losses.push(loss);
      m.backward({ clsGrads, boxGrads });
      opt.step();
    }
    const final = lossAndGrads(m.forward(x, { requiresGrad: false })).loss;
    expect(Number.isFinite(final)).toBe(true);
    expect(final).toBeLessThan(0.1 * losses[0]);
  });
});

describe('async', () => {
  it('forwardAsync / backwardAsync / stepAsync give the same results as the synchronous calls', async () => {
    const x = Tensor.from(new Float32Array(randArray(2 * 16 * 16 * 8, rng(6))), X_SHAPE);
    const a = RetinaNet.create(TINY);
    const b = RetinaNet.create(TINY);
    const oa = new SGD(a, { lr: 0.01, momentum: 0.9 });
    const ob = new SGD(b, { lr: 0.01, momentum: 0.9 });
    backwardWithR(a, a.forward(x), 'float32', 1);
    oa.step();
    const p = b.forwardAsync(x);
    expect(p).toBeInstanceOf(Promise);
    const out = await p;
    const r = rng(1);
    const mk = (t: Tensor) => Tensor.from(randArray(t.numel, r), t.shape, 'float32');
    await b.backwardAsync({ clsGrads: out.clsLogits.map(mk), boxGrads: out.boxRegression.map(mk) });
    await ob.stepAsync();
    const n = 'feature_extractor.body.layer1.0.conv2.weight';
    expect(b.getTensor(n).toFloat32()).toEqual(a.getTensor(n).toFloat32());
    // Errors reject the promise instead of throwing.
    await expect(b.forwardAsync(Tensor.from(new Float32Array(8), [1, 2, 2, 2, 1]))).rejects.toThrow(/too small/);
  });
});
