// Training progress display: two cli-progress bars (epochs, steps of the
// current epoch) with loss and throughput when the output is a terminal, and
// plain log lines otherwise (CI logs, files, pipes), so redirected output
// stays readable and free of cursor codes.
import cliProgress from 'cli-progress';

export interface ProgressOptions {
  epochs: number;
  stepsPerEpoch: number;
  /** Output stream (default process.stdout). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Force bar (true) or line (false) mode; default: stream.isTTY. */
  tty?: boolean;
  /** In line mode, print a line every this many steps (default: ~10 lines per epoch). */
  logEvery?: number;
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
  /** Unit of throughput (default "samples"). */
  unit?: string;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

const fmtNum = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4));

export class TrainProgress {
  private readonly opts: Required<Omit<ProgressOptions, 'stream'>> & { stream: NonNullable<ProgressOptions['stream']> };
  private multibar: cliProgress.MultiBar | null = null;
  private epochBar: cliProgress.SingleBar | null = null;
  private stepBar: cliProgress.SingleBar | null = null;
  private epoch = 0;
  private step = 0;
  private samples = 0;
  private lossSum = 0;
  private lossCount = 0;
  private lastLoss = NaN;
  private epochStart = 0;
  private readonly runStart: number;

  constructor(options: ProgressOptions) {
    if (!(options.epochs >= 1) || !(options.stepsPerEpoch >= 1)) {
      throw new Error(`TrainProgress: epochs and stepsPerEpoch must be ≥ 1 (got ${options.epochs}, ${options.stepsPerEpoch})`);
    }
    const stream = options.stream ?? process.stdout;
    this.opts = {
      epochs: options.epochs,
      stepsPerEpoch: options.stepsPerEpoch,
      stream,
      tty: options.tty ?? stream.isTTY === true,
      logEvery: options.logEvery ?? Math.max(1, Math.ceil(options.stepsPerEpoch / 10)),
      now: options.now ?? (() => performance.now()),
      unit: options.unit ?? 'samples',
    };
    this.runStart = this.opts.now();
    if (this.opts.tty) {
      this.multibar = new cliProgress.MultiBar(
        {
          stream: stream as NodeJS.WriteStream,
          clearOnComplete: false,
          hideCursor: true,
          format: '{name} |{bar}| {value}/{total} {info}',
          barsize: 30,
          autopadding: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.epochBar = this.multibar.create(this.opts.epochs, 0, { name: 'epoch', info: '' });
      this.stepBar = this.multibar.create(this.opts.stepsPerEpoch, 0, { name: 'step ', info: '' });
    }
  }

  /** Marks the start of epoch `epoch` (1-based); `steps` changes the step count from this epoch on. */
  startEpoch(epoch: number, steps?: number): void {
    if (steps !== undefined) {
      if (!(steps >= 1)) throw new Error(`TrainProgress.startEpoch: steps must be ≥ 1, got ${steps}`);
      this.opts.stepsPerEpoch = steps;
      this.stepBar?.setTotal(steps);
    }
    this.epoch = epoch;
    this.step = 0;
    this.samples = 0;
    this.lossSum = 0;
    this.lossCount = 0;
    this.epochStart = this.opts.now();
    this.epochBar?.update(epoch - 1, { info: '' });
    this.stepBar?.update(0, { info: '' });
  }

  private throughput(): number {
    const dt = (this.opts.now() - this.epochStart) / 1000;
    return dt > 0 ? this.samples / dt : 0;
  }

  private stepInfo(): string {
    const tp = this.throughput();
    const eta = tp > 0 ? ((this.opts.stepsPerEpoch - this.step) * (this.samples / Math.max(1, this.step))) / tp : NaN;
    const avg = this.lossCount ? this.lossSum / this.lossCount : NaN;
    return `loss ${fmtNum(this.lastLoss)} (avg ${fmtNum(avg)}) ${tp.toFixed(2)} ${this.opts.unit}/s eta ${fmtDuration(eta)}`;
  }

  /** Records one optimisation step: its loss and how many samples it processed. */
  update(loss: number, samples = 1): void {
    this.step++;
    this.samples += samples;
    this.lastLoss = loss;
    if (Number.isFinite(loss)) {
      this.lossSum += loss;
      this.lossCount++;
    }
    if (this.stepBar) this.stepBar.update(this.step, { info: this.stepInfo() });
    else if (this.step % this.opts.logEvery === 0 || this.step === this.opts.stepsPerEpoch) {
      this.opts.stream.write(`epoch ${this.epoch}/${this.opts.epochs} step ${this.step}/${this.opts.stepsPerEpoch} ${this.stepInfo()}\n`);
    }
  }

  /** Ends the epoch; `summary` values (e.g. validation metrics) are shown with it. Returns the mean loss. */
  endEpoch(summary: Record<string, number | string> = {}): number {
    const avg = this.lossCount ? this.lossSum / this.lossCount : NaN;
    const secs = (this.opts.now() - this.epochStart) / 1000;
    const extra = Object.entries(summary)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? fmtNum(v) : v}`)
      .join(' ');
    const line = `epoch ${this.epoch}/${this.opts.epochs} done: loss ${fmtNum(avg)} ${this.throughput().toFixed(2)} ${this.opts.unit}/s ${fmtDuration(secs)}${extra ? ' | ' + extra : ''}`;
    if (this.multibar) {
      this.epochBar!.update(this.epoch, { info: `elapsed ${fmtDuration((this.opts.now() - this.runStart) / 1000)}` });
      this.multibar.log(line + '\n');
    } else this.opts.stream.write(line + '\n');
    return avg;
  }

  /** Prints a message without breaking the bars. */
  log(message: string): void {
    if (this.multibar) this.multibar.log(message.endsWith('\n') ? message : message + '\n');
    else this.opts.stream.write(message.endsWith('\n') ? message : message + '\n');
  }

  /** Stops the bars (restores the cursor). Safe to call twice. */
  stop(): void {
    if (this.multibar) {
      this.multibar.update(); // flush lines queued by log()/endEpoch()
      this.multibar.stop();
      this.multibar = null;
      this.epochBar = null;
      this.stepBar = null;
    }
  }
}
