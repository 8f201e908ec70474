// RetinaNet structure (MONAI parameter layout and count), output shapes,
// initialisation, weight exchange, config errors, and whole-network
// finite-difference gradient checks in float64 (train and eval mode).
import { describe, expect, it } from 'vitest';
import { Tensor, volumeTensorShape } from '../../src/tensor.js';
import { LUNA16_CONFIG, RetinaNet, permuteConvWeight, type RetinaNetConfig } from '../../src/model/index.js';
import { dot, expectClose, f64, finiteDiff, numelOf, randArray, rng, sampleIndices } from './helpers.js';

// Reduced networks with the LUNA16 strides (stem (2, 2, 1), max-pool, returned layers [1, 2]).
const TINY: RetinaNetConfig = {
  ...LUNA16_CONFIG,
  depth: 10,
  widths: [4, 8, 8, 8],
  fpnChannels: 8,
  headGroups: 2,
  numClasses: 2,
  numAnchors: 2,
  nInputChannels: 2,
  seed: 7,
};

describe('RetinaNet structure', () => {
  const m = RetinaNet.create(LUNA16_CONFIG);
  const params = m.parameters();
  const byName = new Map(params.map((p) => [p.name, p]));

  it('has exactly the 20,902,741 trainable parameters of MONAI LUNA16 RetinaNet', () => {
    expect(m.numParameters()).toBe(20_902_741);
    expect(params.reduce((s, p) => s + p.numel, 0)).toBe(20_902_741);
  });

  it('names parameters and buffers by MONAI module path, in our and MONAI layouts', () => {
    expect(byName.get('feature_extractor.body.conv1.weight')).toMatchObject({ shape: [64, 7, 7, 7, 1], monaiShape: [64, 1, 7, 7, 7] });
    expect(byName.get('feature_extractor.fpn.inner_blocks.0.weight')).toMatchObject({ shape: [256, 1, 1, 1, 256] });
    expect(byName.get('feature_extractor.fpn.inner_blocks.1.weight')).toMatchObject({ monaiShape: [256, 512, 1, 1, 1] });
    expect(byName.get('feature_extractor.fpn.layer_blocks.1.bias')).toMatchObject({ shape: [256] });
    expect(byName.get('classification_head.conv.3.weight')).toMatchObject({ shape: [256, 3, 3, 3, 256] });
    expect(byName.get('classification_head.conv.10.weight')).toMatchObject({ shape: [256] }); // the 4th GroupNorm
    expect(byName.get('classification_head.cls_logits.bias')).toMatchObject({ shape: [3] });
    expect(byName.get('regression_head.bbox_reg.weight')).toMatchObject({ shape: [18, 3, 3, 3, 256], monaiShape: [18, 256, 3, 3, 3] });
    expect(byName.get('feature_extractor.body.layer2.0.conv2.weight')).toMatchObject({ shape: [128, 3, 3, 3, 128] });
    // Shortcut type B on the first block of each layer: 1x1x1 conv (with bias, MONAI bias_downsample) + BN.
    expect(byName.get('feature_extractor.body.layer1.0.downsample.0.weight')).toMatchObject({ shape: [256, 1, 1, 1, 64] });
    expect(byName.has('feature_extractor.body.layer1.0.downsample.0.bias')).toBe(true);
    expect(byName.has('feature_extractor.body.layer1.1.downsample.0.weight')).toBe(false);
    // Backbone convs have no bias; FPN and head convs do.
    expect(byName.has('feature_extractor.body.conv1.bias')).toBe(false);
    expect(byName.has('feature_extractor.body.layer1.0.conv2.bias')).toBe(false);
    // Layers after the last returned one are not built.
    expect(params.some((p) => p.name.includes('layer3'))).toBe(false);
    const buffers = m.buffers().map((b) => b.name);
    expect(buffers).toContain('feature_extractor.body.layer1.0.downsample.1.running_mean');
    expect(buffers).toContain('feature_extractor.body.bn1.num_batches_tracked');
    expect(buffers.length).toBe(3 * (1 + 3 * 3 + 1 + 4 * 3 + 1)); // bn1, 3 per block, one downsample BN per layer
    // Every conv weight's MONAI shape is ours permuted (0, 4, 3, 2, 1).
    for (const p of params)
      if (p.shape.length === 5) expect(p.monaiShape).toEqual([0, 4, 3, 2, 1].map((i) => p.shape[i]));
  });

  it('initialises as MONAI: kaiming backbone, zero FPN bias, N(0, 0.01) heads, prior bias, unit norms', () => {
    const get = (n: string) => m.getTensor(n).toFloat32();
    const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    // kaiming_normal fan_out: std = sqrt(2 / (Cout * k^3)).
    expect(std(get('feature_extractor.body.layer1.0.conv2.weight')) / Math.sqrt(2 / (64 * 27))).toBeCloseTo(1, 1);
    expect(std(get('classification_head.conv.0.weight')) / 0.01).toBeCloseTo(1, 1);
    // kaiming_uniform(a=1): bound sqrt(3 / fan_in), std = bound / sqrt(3) = 1 / sqrt(fan_in).
    expect(std(get('feature_extractor.fpn.layer_blocks.0.weight')) * Math.sqrt(256 * 27)).toBeCloseTo(1, 1);
    expect(Array.from(get('feature_extractor.fpn.inner_blocks.0.bias')).every((v) => v === 0)).toBe(true);
    for (const v of get('classification_head.cls_logits.bias')) expect(v).toBeCloseTo(-Math.log(99), 5);
    expect(Array.from(get('regression_head.bbox_reg.bias')).every((v) => v === 0)).toBe(true);
    expect(Array.from(get('feature_extractor.body.layer1.0.bn3.weight')).every((v) => v === 1)).toBe(true);
    expect(Array.from(get('classification_head.conv.4.weight')).every((v) => v === 1)).toBe(true);
    expect(Array.from(get('feature_extractor.body.bn1.running_var')).every((v) => v === 1)).toBe(true);
  });

  it('runs the seed network on its smallest valid input (16 x 16 x 8)', () => {
    expect(m.sizeDivisible()).toEqual([16, 16, 8]);
    const x = Tensor.from(randArray(16 * 16 * 8, rng(1)), volumeTensorShape([16, 16, 8]), 'float32');
    const out = m.eval().forward(x);
    expect(out.clsLogits.map((t) => t.shape)).toEqual([[1, 4, 4, 4, 3], [1, 2, 2, 2, 3], [1, 1, 1, 1, 3]]);
    expect(out.boxRegression.map((t) => t.shape)).toEqual([[1, 4, 4, 4, 18], [1, 2, 2, 2, 18], [1, 1, 1, 1, 18]]);
    m.train();
  });
});

describe('RetinaNet shapes and weights', () => {
  it('gives 16^3, 8^3, 4^3 levels with 3 and 18 channels for a 64 x 64 x 32 (x, y, z) input', () => {
    // Spatial sizes depend only on the strides, so a narrow network with the LUNA16 strides is used.
    const m = RetinaNet.create({ ...LUNA16_CONFIG, widths: [2, 2, 2, 2], fpnChannels: 8, depth: 10 });
    const x = Tensor.from(new Float32Array(64 * 64 * 32).fill(0.5), volumeTensorShape([64, 64, 32]));
    const out = m.forward(x);
    expect(out.clsLogits.map((t) => t.shape)).toEqual([[1, 16, 16, 16, 3], [1, 8, 8, 8, 3], [1, 4, 4, 4, 3]]);
    expect(out.boxRegression.map((t) => t.shape)).toEqual([[1, 16, 16, 16, 18], [1, 8, 8, 8, 18], [1, 4, 4, 4, 18]]);
  });

  it('is reproducible from its seed and round-trips weights in both layouts', () => {
    const a = RetinaNet.create(TINY);
    const b = RetinaNet.create(TINY);
    const c = RetinaNet.create({ ...TINY, seed: 8 });
    const wa = a.getWeights();
    const wc = c.getWeights();
    expect(b.getWeights()).toEqual(wa);
    expect(wc.get('feature_extractor.body.conv1.weight')).not.toEqual(wa.get('feature_extractor.body.conv1.weight'));
    const x = Tensor.from(randArray(2 * 16 * 16 * 8 * 2, rng(2)), [2, 8, 16, 16, 2], 'float32');
    a.eval();
    c.eval();
    const ya = a.forward(x).clsLogits[0].toFloat32();
    expect(c.forward(x).clsLogits[0].toFloat32()).not.toEqual(ya);
    c.setWeights(a.getWeights({ layout: 'monai' }), { layout: 'monai' });
    expect(c.getWeights()).toEqual(wa);
    expect(c.forward(x).clsLogits[0].toFloat32()).toEqual(ya);
  });

  it('permutes conv weights to MONAI layout: ours[o, kz, ky, kx, i] = monai[o, i, kx, ky, kz]', () => {
    // Shape ours [1, 2, 1, 3, 2] (kz=2, ky=1, kx=3, Cin=2); value encodes (kz, kx, i).
    const ours = new Float32Array(12);
    for (let kz = 0; kz < 2; kz++) for (let kx = 0; kx < 3; kx++) for (let i = 0; i < 2; i++) ours[(kz * 3 + kx) * 2 + i] = 100 * kz + 10 * kx + i;
    const monai = permuteConvWeight(ours, [1, 2, 1, 3, 2]); // -> [1, 2, 3, 1, 2] = [o, i, kx, ky, kz]
    for (let i = 0; i < 2; i++) for (let kx = 0; kx < 3; kx++) for (let kz = 0; kz < 2; kz++) expect(monai[(i * 3 + kx) * 2 + kz]).toBe(100 * kz + 10 * kx + i);
    expect(Array.from(permuteConvWeight(monai, [1, 2, 3, 1, 2]))).toEqual(Array.from(ours));
  });

  it('rejects bad weights with clear errors', () => {
    const m = RetinaNet.create(TINY);
    expect(() => m.setWeights(new Map([['nope.weight', new Float32Array(1)]]), { strict: false })).toThrow(/unknown names nope.weight/);
    expect(() => m.setWeights(new Map([['feature_extractor.body.bn1.weight', new Float32Array(3)]]), { strict: false })).toThrow(/needs 4 values/);
    expect(() => m.setWeights(new Map([['feature_extractor.body.bn1.weight', new Float32Array(4)]]))).toThrow(/missing/);
  });
});

describe('RetinaNet config errors', () => {
  const bad = (c: Partial<RetinaNetConfig>) => () => RetinaNet.create({ ...TINY, ...c });
  it('reports invalid configurations', () => {
    expect(bad({ depth: 42 as never })).toThrow(/unknown depth 42/);
    expect(bad({ returnedLayers: [1, 5] })).toThrow(/returned layer 5 is out of range/);
    expect(bad({ returnedLayers: [0] })).toThrow(/returned layer 0 is out of range/);
    expect(bad({ returnedLayers: [2, 1] })).toThrow(/strictly increasing/);
    expect(bad({ conv1TStride: [2, 0, 1] })).toThrow(/conv1TStride/);
    expect(bad({ headGroups: 3 })).toThrow(/groups must divide/);
  });

  it('reports bad inputs and misuse', () => {
    const m = RetinaNet.create(TINY);
    expect(() => m.forward(Tensor.from(new Float32Array(16 * 16 * 8), [1, 8, 16, 16, 1]))).toThrow(/has 1 channels but the model was built with n_input_channels = 2/);
    expect(() => m.forward(Tensor.from(new Float32Array(8 * 8 * 8 * 2), [1, 8, 8, 8, 2]))).toThrow(/too small for or not a multiple of the network's total stride 16/);
    expect(() => m.forward(Tensor.from(new Float64Array(16 * 16 * 8 * 2), [1, 8, 16, 16, 2]))).toThrow(/the model is float32/);
    expect(() => m.backward({ clsGrads: [], boxGrads: [] })).toThrow(/no forward pass/);
    const out = m.forward(Tensor.from(new Float32Array(2 * 16 * 16 * 8 * 2).map((_, i) => Math.sin(i)), [2, 8, 16, 16, 2]));
    expect(() => m.backward({ clsGrads: out.clsLogits.slice(1), boxGrads: out.boxRegression })).toThrow(/expected 3 class-logit/);
    expect(() => m.backward({ clsGrads: out.boxRegression, boxGrads: out.boxRegression })).toThrow(/class-logit gradient of level 0 must be/);
    // A rejected call leaves the forward pass usable; a completed backward consumes it.
    m.backward({ clsGrads: out.clsLogits, boxGrads: out.boxRegression });
    expect(() => m.backward({ clsGrads: out.clsLogits, boxGrads: out.boxRegression })).toThrow(/no forward pass/);
  });
});

// ---- whole-network finite differences (float64) --------------------------------

function gradCheck(config: RetinaNetConfig, mode: 'train' | 'eval', names: string[], seed: number): void {
  const m = RetinaNet.create({ ...config, dtype: 'float64' });
  const r = rng(seed);
  const xShape = [2, 8, 16, 16, config.nInputChannels];
  const x = randArray(numelOf(xShape), r);
  if (mode === 'eval') {
    // Give BatchNorm non-trivial running statistics first.
    for (let i = 0; i < 3; i++) m.forward(Tensor.from(randArray(x.length, r, -1, 2), xShape));
    m.eval();
  }
  const first = m.forward(Tensor.from(x, xShape), { requiresGrad: true });
  const Rc = first.clsLogits.map((t) => randArray(t.numel, r));
  const Rb = first.boxRegression.map((t) => randArray(t.numel, r));
  const loss = (xv: Float64Array) => {
    const o = m.forward(Tensor.from(xv, xShape), { requiresGrad: false });
    return o.clsLogits.reduce((s, t, i) => s + dot(f64(t), Rc[i]), 0) + o.boxRegression.reduce((s, t, i) => s + dot(f64(t), Rb[i]), 0);
  };
  m.zeroGrad();
  m.forward(Tensor.from(x, xShape), { requiresGrad: true });
  const gx = m.backward(
    { clsGrads: Rc.map((a, i) => Tensor.from(a, first.clsLogits[i].shape)), boxGrads: Rb.map((a, i) => Tensor.from(a, first.boxRegression[i].shape)) },
    { inputGrad: true },
  )!;
  const ix = sampleIndices(x.length, 8, r);
  expectClose(ix.map((i) => f64(gx)[i]), finiteDiff(x, ix, loss), `${mode}: dL/dinput`);
  for (const name of names) {
    const p = m.getTensor(name);
    const base = f64(p);
    const g = f64(m.grad(name));
    const idx = sampleIndices(base.length, 3, r);
    const numeric = finiteDiff(base, idx, (v) => {
      m.setTensor(name, Tensor.from(v, p.shape));
      return loss(x);
    });
    m.setTensor(name, p);
    expectClose(idx.map((i) => g[i]), numeric, `${mode}: dL/d${name}`);
  }
}

describe('whole-network gradients (finite differences, float64)', () => {
  const names10 = [
    'feature_extractor.body.conv1.weight',
    'feature_extractor.body.bn1.weight',
    'feature_extractor.body.layer1.0.conv1.weight',
    'feature_extractor.body.layer2.0.bn2.bias',
    'feature_extractor.body.layer2.0.downsample.0.weight',
    'feature_extractor.body.layer2.0.downsample.0.bias',
    'feature_extractor.fpn.inner_blocks.0.weight',
    'feature_extractor.fpn.layer_blocks.1.bias',
    'classification_head.conv.0.weight',
    'classification_head.conv.7.weight',
    'classification_head.cls_logits.weight',
    'regression_head.conv.10.bias',
    'regression_head.bbox_reg.bias',
  ];
  it('ResNet10 (reduced widths) in train mode', () => gradCheck(TINY, 'train', names10, 100));
  it('ResNet10 (reduced widths) in eval mode', () => gradCheck(TINY, 'eval', names10, 101));
  it('bottleneck ResNet50 (tiny widths), returned layers [1, 3], no stem pool, GroupNorm backbone', () =>
    gradCheck(
      { ...TINY, depth: 50, widths: [2, 2, 2, 2], returnedLayers: [1, 3], maxPool: false, norm: 'group', normGroups: 2 },
      'train',
      [
        'feature_extractor.body.layer1.0.conv3.weight',
        'feature_extractor.body.layer1.0.downsample.1.weight',
        'feature_extractor.body.layer2.3.conv2.weight',
        'feature_extractor.body.layer3.0.bn3.bias',
        'feature_extractor.fpn.inner_blocks.1.weight',
      ],
      102,
    ));
  it('bottleneck ResNet50 (tiny widths) with BatchNorm, returned layers [2, 3]', () =>
    gradCheck(
      { ...TINY, depth: 50, widths: [2, 2, 2, 2], returnedLayers: [2, 3], conv1TStride: [1, 1, 1], maxPool: false },
      'train',
      ['feature_extractor.body.layer1.2.bn2.weight', 'feature_extractor.body.layer3.5.conv1.weight', 'feature_extractor.fpn.layer_blocks.0.weight'],
      103,
    ));
});
