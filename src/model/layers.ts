// Functional forms of the network's layers (forward and backward), on
// channels-last tensors [N, D1, D2, D3, C], float32 or float64. The model
// uses the same native code; these wrappers exist for tests and custom
// networks. Per-axis values are in tensor order (D1, D2, D3).
import { native } from '../native.js';
import { Tensor, type Triple } from '../tensor.js';

const w = (h: unknown): Tensor => Tensor.wrap(h as never);
const wOpt = (h: unknown): Tensor | null => (h ? w(h) : null);

export interface NormGrads {
  gradInput: Tensor;
  gradGamma: Tensor;
  gradBeta: Tensor;
  /** Gradient after the ReLU mask (= gradient of the residual), when requested. */
  gradPre: Tensor | null;
}
const normGrads = (g: Record<string, unknown>): NormGrads => ({
  gradInput: w(g.gradInput),
  gradGamma: w(g.gradGamma),
  gradBeta: w(g.gradBeta),
  gradPre: wOpt(g.gradPre),
});

export interface BatchNormOptions {
  training?: boolean;
  momentum?: number;
  eps?: number;
  relu?: boolean;
}

/**
 * y = relu?(gamma * (x - mean) / sqrt(var + eps) + beta + residual?). In
 * training mode runningMean / runningVar are updated in place (momentum,
 * unbiased variance). Returns the statistics backward needs.
 */
export function batchNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  residual: Tensor | null,
  opts: BatchNormOptions = {},
): { y: Tensor; mean: Tensor; invstd: Tensor } {
  const r = native.nnBatchNorm(x.handle, gamma.handle, beta.handle, runningMean.handle, runningVar.handle, residual ? residual.handle : null, opts);
  return { y: w(r.y), mean: w(r.mean), invstd: w(r.invstd) };
}

export function batchNormBackward(
  x: Tensor,
  y: Tensor | null,
  gamma: Tensor,
  saved: { mean: Tensor; invstd: Tensor },
  dy: Tensor,
  opts: { training?: boolean; eps?: number; relu?: boolean; gradPre?: boolean } = {},
): NormGrads {
  return normGrads(
    native.nnBatchNormBackward(x.handle, y ? y.handle : null, gamma.handle, saved.mean.handle, saved.invstd.handle, dy.handle, opts),
  );
}

/** y = relu?(GroupNorm(groups)(x) * gamma + beta); statistics per sample and group. */
export function groupNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  groups: number,
  opts: { eps?: number; relu?: boolean } = {},
): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const r = native.nnGroupNorm(x.handle, gamma.handle, beta.handle, groups, opts);
  return { y: w(r.y), mean: w(r.mean), rstd: w(r.rstd) };
}

export function groupNormBackward(
  x: Tensor,
  y: Tensor | null,
  gamma: Tensor,
  groups: number,
  saved: { mean: Tensor; rstd: Tensor },
  dy: Tensor,
  opts: { relu?: boolean } = {},
): NormGrads {
  return normGrads(
    native.nnGroupNormBackward(x.handle, y ? y.handle : null, gamma.handle, groups, saved.mean.handle, saved.rstd.handle, dy.handle, opts),
  );
}

export function relu(x: Tensor): Tensor {
  return w(native.nnRelu(x.handle));
}

/** dx = dy where y > 0 (y: the forward output). */
export function reluBackward(y: Tensor, dy: Tensor): Tensor {
  return w(native.nnReluBackward(y.handle, dy.handle));
}

export interface MaxPoolOptions {
  kernel: number | Triple;
  /** Default: the kernel. */
  stride?: number | Triple;
  padding?: number | Triple;
}

/** MaxPool3d; argmax (int32, flat input position per output value) feeds the backward. */
export function maxPool3d(x: Tensor, opts: MaxPoolOptions): { y: Tensor; argmax: Tensor } {
  const r = native.nnMaxPool3d(x.handle, opts);
  return { y: w(r.y), argmax: w(r.argmax) };
}

export function maxPool3dBackward(dy: Tensor, argmax: Tensor, inputShape: readonly number[]): Tensor {
  return w(native.nnMaxPool3dBackward(dy.handle, argmax.handle, [...inputShape]));
}

/** Nearest-neighbour resize to size [O1, O2, O3] (output index o reads floor(o * in / out)). */
export function upsampleNearest(x: Tensor, size: Triple): Tensor {
  return w(native.nnUpsampleNearest(x.handle, size));
}

export function upsampleNearestBackward(dy: Tensor, inputShape: readonly number[]): Tensor {
  return w(native.nnUpsampleNearestBackward(dy.handle, [...inputShape]));
}

export function add(a: Tensor, b: Tensor): Tensor {
  return w(native.nnAdd(a.handle, b.handle));
}

