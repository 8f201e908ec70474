// Configuration of the RetinaNet network (MONAI LUNA16 layout) and its
// translation into the native model's terms. All per-axis values are given
// in (x, y, z) order and converted to tensor order (D1, D2, D3) = (z, y, x)
// here, and only here.
import { xyzToDims, type Triple } from '../tensor.js';

export type ResNetDepth = 10 | 18 | 34 | 50 | 101 | 152 | 200;

export interface RetinaNetConfig {
  /** ResNet depth: 10/18/34 (basic blocks) or 50/101/152/200 (bottleneck blocks). */
  depth: ResNetDepth;
  /** Backbone layers feeding the FPN, a strictly increasing subset of [1, 2, 3, 4] (MONAI's returned_layers). */
  returnedLayers: number[];
  /** Stride of the stem convolution per axis (x, y, z), e.g. [2, 2, 1]. */
  conv1TStride: Triple | number;
  /** Kernel of the stem convolution per axis (x, y, z); default max(7, 2*stride + 1) per axis as in the LUNA16 tutorial. */
  conv1TSize?: Triple | number;
  /** Input channels (MONAI's n_input_channels). */
  nInputChannels: number;
  /** Foreground classes (one logit each per anchor; no background class). */
  numClasses: number;
  /** Anchors per location (base anchor shapes). */
  numAnchors: number;
  /** Block widths of layer1..layer4 (MONAI's block_inplanes), default [64, 128, 256, 512]; smaller for test networks. */
  widths?: [number, number, number, number];
  /** Max-pool (kernel 3, stride 2, padding 1) after the stem; default true (MONAI no_max_pool = false). */
  maxPool?: boolean;
  /** Backbone normalisation: 'batch' (default, BatchNorm3d) or 'group' (GroupNorm with normGroups groups). */
  norm?: 'batch' | 'group';
  /** Groups for norm 'group' in the backbone (default 32; must divide every width). */
  normGroups?: number;
  /** GroupNorm groups in the heads (default 8, as MONAI). */
  headGroups?: number;
  /** FPN / head channels (default 256, as MONAI); smaller only for test networks. */
  fpnChannels?: number;
  /** Seed of the weight initialisation (default 0). */
  seed?: number;
  /** Parameter and activation dtype (default float32; float64 for gradient checks). */
  dtype?: 'float32' | 'float64';
}

/** The configuration with every default filled in (per-axis values still (x, y, z)). */
export type ResolvedRetinaNetConfig = Required<Omit<RetinaNetConfig, 'conv1TStride' | 'conv1TSize'>> & {
  conv1TStride: Triple;
  conv1TSize: Triple;
};

/** MONAI's LUNA16 RetinaNet: ResNet50, returned layers [1, 2], stem stride (2, 2, 1), 1 channel, 1 class, 3 anchors. */
export const LUNA16_CONFIG: RetinaNetConfig = {
  depth: 50,
  returnedLayers: [1, 2],
  conv1TStride: [2, 2, 1],
  nInputChannels: 1,
  numClasses: 1,
  numAnchors: 3,
};

function triple(v: Triple | number, what: string): Triple {
  const t: Triple = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(t) || t.length !== 3 || !t.every((n) => Number.isInteger(n) && n >= 1))
    throw new Error(`RetinaNet config: ${what} must be a positive integer or 3 positive integers (x, y, z), got ${JSON.stringify(v)}`);
  return [t[0], t[1], t[2]];
}

export function resolveConfig(c: RetinaNetConfig): ResolvedRetinaNetConfig {
  if (c === null || typeof c !== 'object') throw new Error('RetinaNet config must be an object');
  const stride = triple(c.conv1TStride, 'conv1TStride');
  const size = c.conv1TSize === undefined ? (stride.map((s) => Math.max(7, 2 * s + 1)) as Triple) : triple(c.conv1TSize, 'conv1TSize');
  if (!Array.isArray(c.returnedLayers)) throw new Error('RetinaNet config: returnedLayers must be an array such as [1, 2]');
  return {
    depth: c.depth,
    returnedLayers: [...c.returnedLayers],
    conv1TStride: stride,
    conv1TSize: size,
    nInputChannels: c.nInputChannels,
    numClasses: c.numClasses,
    numAnchors: c.numAnchors,
    widths: c.widths ? [...c.widths] : [64, 128, 256, 512],
    maxPool: c.maxPool ?? true,
    norm: c.norm ?? 'batch',
    normGroups: c.normGroups ?? 32,
    headGroups: c.headGroups ?? 8,
    fpnChannels: c.fpnChannels ?? 256,
    seed: c.seed ?? 0,
    dtype: c.dtype ?? 'float32',
  };
}

/** The object the native constructor reads (per-axis values in tensor order). */
export function nativeConfig(c: ResolvedRetinaNetConfig): Record<string, unknown> {
  return {
    depth: c.depth,
    returnedLayers: c.returnedLayers,
    conv1Stride: xyzToDims(c.conv1TStride),
    conv1Size: xyzToDims(c.conv1TSize),
    inChannels: c.nInputChannels,
    numClasses: c.numClasses,
    numAnchors: c.numAnchors,
    widths: c.widths,
    maxPool: c.maxPool,
    norm: c.norm,
    normGroups: c.normGroups,
    headGroups: c.headGroups,
    fpnChannels: c.fpnChannels,
    seed: c.seed,
    dtype: c.dtype,
  };
}
