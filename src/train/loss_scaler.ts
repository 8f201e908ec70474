// Dynamic loss scaling for float16 mixed-precision training on CUDA, with the
// policy of torch.cuda.amp.GradScaler (and of the native nn::LossScaler that
// the C++ benchmark uses):
//   * the loss gradients (the seed of backward) are multiplied by scale,
//     initially 2^16, so that small float16 gradients do not flush to zero;
//   * a step whose gradients contain inf/NaN is skipped and the scale halved;
//   * after growthInterval (2000) consecutive clean steps the scale doubles.
// bf16 / fp32 runs use a disabled scaler (scale 1, only the inf/NaN skip).
// The state goes into the trainer state of checkpoints, so a resumed run
// continues with the same scale and clean-step count.

export interface LossScalerState {
  scale: number;
  /** Consecutive clean steps since the scale last changed. */
  growthTracker: number;
}

export interface LossScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
  /** false: scale stays 1 (bf16 / fp32). */
  enabled?: boolean;
}

export class LossScaler {
  readonly enabled: boolean;
  private readonly growthFactor: number;
  private readonly backoffFactor: number;
  readonly growthInterval: number;
  private st: LossScalerState;

  constructor(opts: LossScalerOptions = {}) {
    const init = opts.initScale ?? 65536;
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    this.enabled = opts.enabled ?? true;
    if (!(Number.isFinite(init) && init > 0)) throw new Error(`loss scaler: initial scale must be positive, got ${init}`);
    if (!(this.growthFactor > 1)) throw new Error(`loss scaler: growth factor must be > 1, got ${this.growthFactor}`);
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1)) throw new Error(`loss scaler: backoff factor must be in (0, 1), got ${this.backoffFactor}`);
    if (!(Number.isInteger(this.growthInterval) && this.growthInterval >= 1)) throw new Error(`loss scaler: growth interval must be an integer >= 1, got ${this.growthInterval}`);
    this.st = { scale: init, growthTracker: 0 };
  }

  /** The factor the loss gradients carry this step (1 when disabled). */
  get scale(): number {
    return this.enabled ? this.st.scale : 1;
  }

  /** Applies the policy after a step attempt; returns whether the step was (to be) applied. */
  update(foundInf: boolean): boolean {
    if (!this.enabled) return !foundInf;
    if (foundInf) {
      this.st = { scale: this.st.scale * this.backoffFactor, growthTracker: 0 };
      return false;
    }
    let { scale, growthTracker } = this.st;
    if (++growthTracker >= this.growthInterval) {
      const grown = scale * this.growthFactor;
      if (Number.isFinite(grown)) scale = grown;
      growthTracker = 0;
    }
    this.st = { scale, growthTracker };
    return true;
  }

  state(): LossScalerState {
    return { ...this.st };
  }

  loadState(s: LossScalerState): void {
    if (typeof s !== 'object' || s === null || !(Number.isFinite(s.scale) && s.scale > 0))
      throw new Error(`loss scaler state: scale must be a positive finite number, got ${JSON.stringify(s)}`);
    if (!(Number.isInteger(s.growthTracker) && s.growthTracker >= 0 && s.growthTracker < this.growthInterval))
      throw new Error(`loss scaler state: growthTracker must be an integer in [0, ${this.growthInterval}), got ${s.growthTracker}`);
    this.st = { scale: s.scale, growthTracker: s.growthTracker };
  }
}
