// SGD with momentum / Nesterov / weight decay over all of a model's
// trainable parameters, with torch.optim.SGD's exact update rule, in native code.
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import type { RetinaNet } from './retinanet.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD {
  /** Learning rate used by the next step (settable every step). */
  lr: number;
  private readonly handle: unknown;
  private readonly model: RetinaNet;

  constructor(model: RetinaNet, opts: SGDOptions) {
    if (!opts || typeof opts.lr !== 'number') throw new Error('SGD: options must include a numeric lr');
    this.model = model;
    this.lr = opts.lr;
    this.handle = native.nnSgdCreate(model.handle, {
      lr: opts.lr,
      momentum: opts.momentum ?? 0,
      dampening: opts.dampening ?? 0,
      weightDecay: opts.weightDecay ?? 0,
      nesterov: opts.nesterov ?? false,
    });
  }

  /**
   * p -= lr * update(grad * gradScale) for every trainable parameter (gradScale
   * = 1 / loss scale under float16 mixed precision). Does not zero the
   * gradients. On a GPU, or with 16-bit compute copies, one fused launch
   * also refreshes the copies.
   */
  step(gradScale = 1): void {
    native.nnSgdStep(this.handle, this.lr, gradScale);
  }

  async stepAsync(gradScale = 1): Promise<void> {
    await native.nnSgdStepAsync(this.handle, this.lr, gradScale);
  }

  /** Momentum buffers by parameter name (empty before the first step), as float32. */
  state(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const { name, value } of native.nnSgdState(this.handle) as { name: string; value: never }[])
      out.set(name, Tensor.wrap(value).toFloat32());
    return out;
  }

  /** Restores momentum buffers saved by state(); parameters not listed start afresh. */
  loadState(state: Map<string, Float32Array | Float64Array>): void {
    const shapes = new Map(this.model.parameters().map((p) => [p.name, p.shape]));
    const list = [...state].map(([name, arr]) => {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`SGD.loadState: unknown parameter '${name}'`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (arr.length !== n) throw new Error(`SGD.loadState: '${name}' needs ${n} values, got ${arr.length}`);
      return { name, value: Tensor.from(arr, shape).handle };
    });
    native.nnSgdLoadState(this.handle, list);
  }
}
