// RetinaNet (MONAI LUNA16 configuration): ResNet + FPN feature extractor and
// shared classification / regression heads, trainable on the CPU or (with
// CUDA) on a GPU in float32 or float16/bfloat16 mixed precision.
import { native } from '../native.js';
import { Tensor, dimsToXyz, type DType, type Triple } from '../tensor.js';
import { nativeConfig, resolveConfig, type ResolvedRetinaNetConfig, type RetinaNetConfig } from './config.js';
import { permuteConvWeight } from './weights.js';

/** A named parameter or buffer. */
export interface ParamInfo {
  /** MONAI module path, e.g. "feature_extractor.body.layer1.0.conv1.weight". */
  name: string;
  /** Shape in this library's layout (conv weights [Cout, k1, k2, k3, Cin], k1 along z). */
  shape: number[];
  /** Shape of the same tensor in MONAI / PyTorch (conv weights [Cout, Cin, kx, ky, kz]). */
  monaiShape: number[];
  numel: number;
  /** False for buffers (running statistics, counters). */
  trainable: boolean;
}

/** Head outputs per FPN level, finest level first. */
export interface RetinaNetOutput {
  /** [N, D1', D2', D3', A*numClasses], channel a*numClasses + c. */
  clsLogits: Tensor[];
  /** [N, D1', D2', D3', A*6], channel a*6 + j with j over (dx, dy, dz, dw, dh, dd). */
  boxRegression: Tensor[];
}

export interface RetinaNetGrads {
  clsGrads: Tensor[];
  boxGrads: Tensor[];
}

export interface ForwardOptions {
  /** Keep the activations backward needs (default: true in train mode, false in eval mode). */
  requiresGrad?: boolean;
}

export interface BackwardOptions {
  /** Also compute and return the gradient w.r.t. the input (default false). */
  inputGrad?: boolean;
}

export interface SetWeightsOptions {
  /** Every parameter and buffer must be given (default true). */
  strict?: boolean;
  /** Layout of the given conv weights: 'ours' (default) or 'monai' ([Cout, Cin, kx, ky, kz]). */
  layout?: 'ours' | 'monai';
}

type WeightArray = Float32Array | Float64Array;

interface EntryInfo extends ParamInfo {
  buffer: boolean;
}

export class RetinaNet {
  /** @internal */
  readonly handle: unknown;
  readonly config: Readonly<ResolvedRetinaNetConfig>;
  private isTraining = true;
  private entriesCache: EntryInfo[] | null = null;

  private constructor(config: ResolvedRetinaNetConfig) {
    this.config = config;
    this.handle = native.nnModelCreate(nativeConfig(config));
  }

  /** Builds the network with freshly initialised, seeded weights. */
  static create(config: RetinaNetConfig): RetinaNet {
    return new RetinaNet(resolveConfig(config));
  }

  get training(): boolean {
    return this.isTraining;
  }

  /** Training mode: BatchNorm uses batch statistics and updates its running estimates. */
  train(): this {
    native.nnModelSetTraining(this.handle, true);
    this.isTraining = true;
    return this;
  }

  /** Eval mode: BatchNorm uses its running statistics. */
  eval(): this {
    native.nnModelSetTraining(this.handle, false);
    this.isTraining = false;
    return this;
  }

  /** Input sizes (x, y, z) must be multiples of this: the stride of the coarsest level. */
  sizeDivisible(): Triple {
    return dimsToXyz(native.nnModelSizeDivisible(this.handle) as Triple);
  }

  /** Where the parameters live: 'cpu' or 'cuda:<i>'. */
  get device(): string {
    return native.nnModelDevice(this.handle) as string;
  }

  /** The dtype activations and head outputs have: the model's dtype, or float16/bfloat16 after setPrecision. */
  get computeDtype(): DType {
    return native.nnModelComputeDtype(this.handle) as DType;
  }

  /**
   * Moves parameters, buffers and gradients to 'cpu', 'cuda' or 'cuda:<i>'
   * (the optimizer's momentum follows at its next step). Throws when the
   * build has no CUDA or there is no such GPU. Moving to the CPU ends
   * float16/bfloat16 mixed precision (computeDtype is the model's dtype again).
   */
  to(device: 'cpu' | 'cuda' | `cuda:${number}`): this {
    native.nnModelTo(this.handle, device);
    return this;
  }

  /**
   * Compute precision on a GPU: 'float16' / 'bfloat16' mixed precision
   * (float32 master weights and gradients, 16-bit conv weight copies and
   * activations, float32 norm parameters and statistics), or the model's own
   * dtype (default). 16-bit needs a float32 model on a GPU.
   */
  setPrecision(dtype: DType): this {
    native.nnModelSetPrecision(this.handle, dtype);
    return this;
  }

  /** True when any trainable parameter's gradient holds inf or NaN (one pass over all of them). */
  gradsNonFinite(): boolean {
    return native.nnModelGradsNonFinite(this.handle) as boolean;
  }

  async gradsNonFiniteAsync(): Promise<boolean> {
    return (await native.nnModelGradsNonFiniteAsync(this.handle)) as boolean;
  }

  /** x on the model's device and, on a GPU, in its compute dtype (converted copies when needed). */
  prepareInput(x: Tensor): Tensor {
    const dev = this.device;
    let y = x.device === dev ? x : x.to(dev as 'cpu');
    if (dev !== 'cpu') {
      const dt = this.computeDtype;
      if (y.dtype !== dt) y = y.to(dt);
    }
    return y;
  }

  /**
   * x: [N, D1, D2, D3, nInputChannels] in the model's dtype. An input on
   * another device is moved to the model's (on a GPU also converted to the
   * compute dtype); outputs live on the model's device.
   */
  forward(x: Tensor, opts: ForwardOptions = {}): RetinaNetOutput {
    return wrapOutput(native.nnModelForward(this.handle, this.prepareInput(x).handle, opts.requiresGrad ?? this.isTraining));
  }

  /** forward on a worker thread. */
  async forwardAsync(x: Tensor, opts: ForwardOptions = {}): Promise<RetinaNetOutput> {
    return wrapOutput(await native.nnModelForwardAsync(this.handle, this.prepareInput(x).handle, opts.requiresGrad ?? this.isTraining));
  }

  /**
   * Back-propagates the gradients of the head outputs of the preceding forward
   * (run with gradients, i.e. in train mode or with requiresGrad) and adds the
   * parameter gradients into the model's gradient buffers. Returns the input
   * gradient when opts.inputGrad, else null.
   */
  backward(grads: RetinaNetGrads, opts: BackwardOptions = {}): Tensor | null {
    const g = native.nnModelBackward(this.handle, handles(grads.clsGrads), handles(grads.boxGrads), opts.inputGrad ?? false);
    return g ? Tensor.wrap(g) : null;
  }

  async backwardAsync(grads: RetinaNetGrads, opts: BackwardOptions = {}): Promise<Tensor | null> {
    const g = await native.nnModelBackwardAsync(
      this.handle,
      handles(grads.clsGrads),
      handles(grads.boxGrads),
      opts.inputGrad ?? false,
    );
    return g ? Tensor.wrap(g) : null;
  }

  zeroGrad(): void {
    native.nnModelZeroGrad(this.handle);
  }

  private entries(): EntryInfo[] {
    if (!this.entriesCache) this.entriesCache = native.nnModelEntries(this.handle) as EntryInfo[];
    return this.entriesCache;
  }

  /** Trainable parameters in MONAI's state_dict order. */
  parameters(): ParamInfo[] {
    return this.entries()
      .filter((e) => !e.buffer)
      .map(({ name, shape, monaiShape, numel, trainable }) => ({ name, shape, monaiShape, numel, trainable }));
  }

  /** Buffers (BatchNorm running_mean, running_var, num_batches_tracked). */
  buffers(): ParamInfo[] {
    return this.entries()
      .filter((e) => e.buffer)
      .map(({ name, shape, monaiShape, numel, trainable }) => ({ name, shape, monaiShape, numel, trainable }));
  }

  /** Number of trainable parameters (20,902,741 for the LUNA16 configuration). */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + (p.trainable ? p.numel : 0), 0);
  }

  /** A copy of one parameter or buffer as a Tensor in the model's dtype and our layout. */
  getTensor(name: string): Tensor {
    return Tensor.wrap(native.nnModelGet(this.handle, name, 'value'));
  }

  /** A copy of a parameter's accumulated gradient. */
  grad(name: string): Tensor {
    return Tensor.wrap(native.nnModelGet(this.handle, name, 'grad'));
  }

  /** Overwrites one parameter or buffer (our layout; the dtype is converted). */
  setTensor(name: string, value: Tensor): void {
    const e = this.entries().find((p) => p.name === name);
    if (!e) throw new Error(`RetinaNet: no parameter or buffer named '${name}'`);
    if (value.shape.length !== e.shape.length || value.shape.some((d, i) => d !== e.shape[i]))
      throw new Error(`RetinaNet: '${name}' has shape [${e.shape.join(', ')}], got [${value.shape.join(', ')}]`);
    native.nnModelSet(this.handle, name, value.handle);
  }

  /**
   * All parameters and buffers as float32 arrays in our layout (or MONAI's
   * with layout 'monai'), in state_dict order.
   */
  getWeights(opts: { layout?: 'ours' | 'monai' } = {}): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const e of this.entries()) {
      let a = this.getTensor(e.name).toFloat32();
      if (opts.layout === 'monai' && e.shape.length === 5) a = permuteConvWeight(a, e.shape);
      out.set(e.name, a);
    }
    return out;
  }

  /**
   * Loads parameters and buffers by name. Unknown names and element-count
   * mismatches are errors; with strict (default) every entry must be present.
   */
  setWeights(weights: Map<string, WeightArray> | Record<string, WeightArray>, opts: SetWeightsOptions = {}): void {
    const map = weights instanceof Map ? weights : new Map(Object.entries(weights));
    const byName = new Map(this.entries().map((e) => [e.name, e]));
    const unknown = [...map.keys()].filter((k) => !byName.has(k));
    if (unknown.length)
      throw new Error(`RetinaNet.setWeights: unknown names ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ` (+${unknown.length - 5} more)` : ''}`);
    if (opts.strict ?? true) {
      const missing = [...byName.keys()].filter((k) => !map.has(k));
      if (missing.length)
        throw new Error(
          `RetinaNet.setWeights: missing ${missing.length} entries, e.g. ${missing.slice(0, 5).join(', ')} (pass {strict: false} to load a subset)`,
        );
    }
    for (const [name, arr] of map) {
      const e = byName.get(name)!;
      if (!(arr instanceof Float32Array || arr instanceof Float64Array))
        throw new Error(`RetinaNet.setWeights: '${name}' must be a Float32Array or Float64Array`);
      if (arr.length !== e.numel)
        throw new Error(
          `RetinaNet.setWeights: '${name}' needs ${e.numel} values (shape [${e.shape.join(', ')}], MONAI [${e.monaiShape.join(', ')}]), got ${arr.length}`,
        );
      const data = opts.layout === 'monai' && e.shape.length === 5 ? permuteConvWeight(arr, e.monaiShape) : arr;
      native.nnModelSet(this.handle, name, Tensor.from(data, e.shape).handle);
    }
  }
}

function handles(ts: Tensor[]): unknown[] {
  if (!Array.isArray(ts)) throw new Error('RetinaNet.backward: clsGrads and boxGrads must be arrays of Tensors');
  return ts.map((t) => t.handle);
}

function wrapOutput(o: { cls: unknown[]; box: unknown[] }): RetinaNetOutput {
  return {
    clsLogits: o.cls.map((h) => Tensor.wrap(h as never)),
    boxRegression: o.box.map((h) => Tensor.wrap(h as never)),
  };
}
