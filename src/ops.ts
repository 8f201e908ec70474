// Low-level native operations on tensors.
import { native } from './native.js';
import { Tensor, type Triple } from './tensor.js';

/** Per-axis setting in tensor-dimension order [d1, d2, d3]; a number means all three. */
export type PerAxis = number | Triple;

export interface Conv3dOptions {
  stride?: PerAxis;
  padding?: PerAxis;
  dilation?: PerAxis;
}

export interface Conv3dBackwardOptions extends Conv3dOptions {
  /** Also return the bias gradient (default false). */
  bias?: boolean;
  /** Compute the input gradient (default true). */
  input?: boolean;
  /** Compute the weight gradient (default true). */
  weight?: boolean;
}

export interface Conv3dGrads {
  gradInput: Tensor | null;
  gradWeight: Tensor | null;
  gradBias: Tensor | null;
}

function wrapGrads(g: { gradInput: unknown; gradWeight: unknown; gradBias: unknown }): Conv3dGrads {
  const w = (h: unknown) => (h ? Tensor.wrap(h as never) : null);
  return { gradInput: w(g.gradInput), gradWeight: w(g.gradWeight), gradBias: w(g.gradBias) };
}

/**
 * 3D convolution, channels last: x [N, D1, D2, D3, Cin], w [Cout, k1, k2, k3, Cin],
 * bias [Cout] or null → [N, O1, O2, O3, Cout]. float32 or float64.
 */
export function conv3d(x: Tensor, w: Tensor, bias: Tensor | null, opts: Conv3dOptions = {}): Tensor {
  return Tensor.wrap(native.conv3d(x.handle, w.handle, bias ? bias.handle : null, opts));
}

/** Same as conv3d, computed on a worker thread. */
export async function conv3dAsync(x: Tensor, w: Tensor, bias: Tensor | null, opts: Conv3dOptions = {}): Promise<Tensor> {
  return Tensor.wrap(await native.conv3dAsync(x.handle, w.handle, bias ? bias.handle : null, opts));
}

/** Gradients of conv3d with respect to its input, weight and (optionally) bias. */
export function conv3dBackward(x: Tensor, w: Tensor, gradOut: Tensor, opts: Conv3dBackwardOptions = {}): Conv3dGrads {
  return wrapGrads(native.conv3dBackward(x.handle, w.handle, gradOut.handle, opts));
}

export async function conv3dBackwardAsync(
  x: Tensor,
  w: Tensor,
  gradOut: Tensor,
  opts: Conv3dBackwardOptions = {},
): Promise<Conv3dGrads> {
  return wrapGrads(await native.conv3dBackwardAsync(x.handle, w.handle, gradOut.handle, opts));
}
