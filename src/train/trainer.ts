// The trainer: epochs of augmented patch batches through RetinaNet, the
// detection loss (ATSS + hard-negative sampling + focal/BCE + smooth-L1/GIoU),
// SGD with StepLR, validation with COCO metrics, checkpoints and logs — the
// MONAI LUNA16 training script's workflow.
//
// Reproducibility: every random choice is a function of (seed, epoch, step)
// — weight initialisation, the case order, crops, augmentation and the
// loss's negative sampling — and the optimizer's momentum is checkpointed, so
// a run resumed from `last` continues exactly as if it had never stopped
// (bit-identical on the CPU with the same thread count).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hashSeed } from '../data/rng.js';
import { anchors as anchorGen, detector } from '../detection/index.js';
import { RetinaNet } from '../model/retinanet.js';
import { SGD } from '../model/sgd.js';
import { Tensor, type Triple } from '../tensor.js';
import { checkpointPaths, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { MODEL_KEYS, resolveTrainConfig, toSnakeCase, type TrainConfig } from './config.js';
import { openRunData } from './data.js';
import { JsonlLogger } from './jsonl_log.js';
import { TrainProgress } from './progress.js';
import { learningRateAt } from './schedule.js';
import { SummaryWriter } from './tensorboard.js';
import { MAP_KEY, validate, type ValidationResult } from './validate.js';

export interface TrainEvent {
  kind: 'prepare' | 'step' | 'epoch' | 'validation' | 'checkpoint' | 'stop';
  epoch?: number;
  step?: number;
  loss?: number;
  clsLoss?: number;
  boxLoss?: number;
  lr?: number;
  patchesPerSecond?: number;
  metrics?: Record<string, number>;
  message?: string;
  /** For 'prepare': cases decoded so far and in all. */
  done?: number;
  total?: number;
}

export interface TrainHooks {
  onProgress?: (e: TrainEvent) => void;
  /** Aborting finishes the current step, saves `last` and returns. */
  signal?: AbortSignal;
  /** Show progress bars / lines on stdout (default false for the library, true for the CLI). */
  progress?: boolean;
  /** Stop after this many epochs of this call (tests of resume); the schedule still spans cfg.epochs. */
  maxEpochsThisRun?: number;
}

export interface TrainResult {
  outputDir: string;
  epochsCompleted: number;
  bestMetric: number | null;
  bestEpoch: number | null;
  lastValidation: ValidationResult | null;
  stopped: boolean;
  config: TrainConfig;
}

interface TrainerState {
  epoch: number; // epochs completed
  stepInEpoch: number; // steps completed in the current (unfinished) epoch
  globalStep: number;
  bestMetric: number | null;
  bestEpoch: number | null;
}

export function modelConfigOf(cfg: TrainConfig) {
  return {
    depth: cfg.depth as 10 | 18 | 34 | 50 | 101 | 152 | 200,
    returnedLayers: cfg.returnedLayers,
    conv1TStride: cfg.conv1TStride,
    nInputChannels: cfg.nInputChannels,
    numClasses: cfg.numClasses,
    numAnchors: cfg.baseAnchorShapes.length,
    widths: cfg.widths as [number, number, number, number],
    fpnChannels: cfg.fpnChannels,
    seed: cfg.seed,
  };
}

export function lossOptionsOf(cfg: TrainConfig) {
  return {
    numClasses: cfg.numClasses,
    clsLoss: cfg.clsLoss,
    boxLoss: cfg.boxLoss,
    focalGamma: cfg.focalGamma,
    atss: { numCandidates: cfg.atssNumCandidates, centerInGt: cfg.atssCenterInGt },
    sampler: {
      batchSizePerImage: cfg.batchSizePerImage,
      positiveFraction: cfg.positiveFraction,
      minNeg: cfg.minNeg,
      poolSize: cfg.poolSize,
    },
    clsLossWeight: cfg.clsLossWeight,
  };
}

function weightsWithShapes(model: RetinaNet) {
  const shapes = new Map<string, number[]>();
  for (const p of [...model.parameters(), ...model.buffers()]) shapes.set(p.name, p.shape);
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, data] of model.getWeights()) out.set(name, { data, shape: shapes.get(name)! });
  return { weights: out, shapes };
}

/** Paths of the checkpoints a run writes in its output folder. */
export function runCheckpoint(outputDir: string, name: 'last' | 'best_model' | `checkpoint_epoch${number}`): string {
  return join(outputDir, name);
}

function saveRun(model: RetinaNet, opt: SGD, cfg: TrainConfig, state: TrainerState, path: string) {
  const { weights } = weightsWithShapes(model);
  const momentum = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, data] of opt.state()) momentum.set(name, { data, shape: [data.length] });
  saveCheckpoint(
    path,
    { weights, config: toSnakeCase(cfg), epoch: state.epoch, bestMetric: state.bestMetric },
    { optimizerState: momentum, trainerState: state },
  );
}

function restore(model: RetinaNet, opt: SGD, cfg: TrainConfig, path: string): TrainerState {
  const { shapes } = weightsWithShapes(model);
  const snake = toSnakeCase(cfg);
  const modelOnly: Record<string, unknown> = {};
  for (const k of MODEL_KEYS) modelOnly[toSnakeCaseKey(k)] = snake[toSnakeCaseKey(k)];
  const ck = loadCheckpoint(path, { expectShapes: shapes });
  // Only the model's structure must match; other options may change on resume.
  const diffs = MODEL_KEYS.filter((k) => JSON.stringify(ck.config[toSnakeCaseKey(k)]) !== JSON.stringify(modelOnly[toSnakeCaseKey(k)]));
  if (diffs.length)
    throw new Error(
      `cannot resume from ${path}: the model differs in ${diffs.map((k) => `${toSnakeCaseKey(k)} (checkpoint ${JSON.stringify(ck.config[toSnakeCaseKey(k)])}, now ${JSON.stringify(modelOnly[toSnakeCaseKey(k)])})`).join(', ')}`,
    );
  const w = new Map<string, Float32Array>();
  for (const [name, t] of ck.weights) w.set(name, t.data as Float32Array);
  model.setWeights(w);
  if (ck.optimizerState) {
    const m = new Map<string, Float32Array>();
    for (const [name, t] of ck.optimizerState) m.set(name, t.data as Float32Array);
    opt.loadState(m);
  }
  const st = ck.trainerState as TrainerState | undefined;
  return st ?? { epoch: ck.epoch, stepInEpoch: 0, globalStep: 0, bestMetric: ck.bestMetric, bestEpoch: null };
}

function toSnakeCaseKey(k: string): string {
  return k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase()).replace(/conv1_t_stride/, 'conv1_t_stride');
}

function resolveResume(resume: string, outputDir: string): string {
  if (resume === 'last' || resume === 'best_model') return runCheckpoint(outputDir, resume);
  return resume.replace(/\.safetensors$/, '');
}

/** Trains a detector; see the file comment and README ("Training"). */
export async function train(config: Partial<TrainConfig> & { resume?: string | null }, hooks: TrainHooks = {}): Promise<TrainResult> {
  const { resume, ...rest } = config;
  const cfg = resolveTrainConfig(rest);
  const outputDir = resolve(cfg.outputDir);
  mkdirSync(outputDir, { recursive: true });
  writeFileSync(join(outputDir, 'config.json'), JSON.stringify(toSnakeCase(cfg), null, 2) + '\n');
  const emit = (e: TrainEvent) => hooks.onProgress?.(e);
  if (cfg.device === 'cuda') throw new Error('--device cuda: this build trains on the CPU only so far (the CUDA backend is in progress); use --device cpu');

  const data = await openRunData(cfg, (done, total, id) => emit({ kind: 'prepare', done, total, message: `prepared ${id} (${done}/${total})` }));
  const tb = new SummaryWriter(join(outputDir, 'tensorboard'));
  const log = new JsonlLogger(join(outputDir, 'log.jsonl'));
  let progress: TrainProgress | null = null;
  try {
    const model = RetinaNet.create(modelConfigOf(cfg));
    const opt = new SGD(model, { lr: cfg.lr, momentum: cfg.momentum, nesterov: cfg.nesterov, weightDecay: cfg.weightDecay });
    let state: TrainerState = { epoch: 0, stepInEpoch: 0, globalStep: 0, bestMetric: null, bestEpoch: null };
    if (resume) {
      const path = resolveResume(resume, outputDir);
      if (!existsSync(checkpointPaths(path).weights)) throw new Error(`--resume: no checkpoint at ${checkpointPaths(path).weights}`);
      state = restore(model, opt, cfg, path);
      emit({ kind: 'checkpoint', epoch: state.epoch, message: `resumed from ${path} at epoch ${state.epoch} step ${state.stepInEpoch}` });
    }
    log.log({ event: 'start', config: toSnakeCase(cfg), trainCases: data.trainIds, validationCases: data.validationIds, resumedAt: state.epoch });

    const anchorCache = new Map<string, Float32Array[]>();
    const anchorsFor = (patch: Triple, maps: Tensor[]) => {
      const sizes = maps.map((t) => [t.shape[3], t.shape[2], t.shape[1]] as Triple);
      const key = JSON.stringify([patch, sizes]);
      if (!anchorCache.has(key))
        anchorCache.set(key, anchorGen.generate({ imageSize: patch, featureMapSizes: sizes, baseAnchorShapes: cfg.baseAnchorShapes }));
      return anchorCache.get(key)!;
    };
    const lossOpts = lossOptionsOf(cfg);
    const stepsPerEpoch = data.train.batchesPerEpoch;
    const lastEpoch = hooks.maxEpochsThisRun ? Math.min(cfg.epochs, state.epoch + hooks.maxEpochsThisRun) : cfg.epochs;
    if (hooks.progress) progress = new TrainProgress({ epochs: cfg.epochs, stepsPerEpoch, unit: 'patches' });
    let lastValidation: ValidationResult | null = null;
    let stopped = false;

    for (let epoch = state.epoch; epoch < lastEpoch && !stopped; epoch++) {
      const lr = learningRateAt({ baseLr: cfg.lr, stepSize: cfg.lrStep, gamma: cfg.lrGamma, warmupEpochs: cfg.warmupEpochs }, epoch);
      opt.lr = lr;
      model.train();
      progress?.startEpoch(epoch + 1);
      const skip = state.stepInEpoch;
      let step = 0;
      let sums = { loss: 0, cls: 0, box: 0, n: 0 };
      const t0 = performance.now();
      for await (const batch of data.train.epoch(epoch)) {
        if (step < skip) {
          step++;
          continue;
        }
        const B = batch.caseIds.length;
        const [px, py, pz] = batch.patchSize;
        const x = Tensor.from(batch.images, [B, pz, py, px, 1]);
        const out = await model.forwardAsync(x);
        const targets = batch.boxes.map((b, i) => ({ boxes: b, labels: batch.labels[i] }));
        const l = await detector.lossAsync(out, anchorsFor(batch.patchSize, out.clsLogits), targets, {
          ...lossOpts,
          seed: hashSeed(cfg.seed, 0x1055, epoch, step),
        });
        if (!Number.isFinite(l.total)) throw new Error(`the loss became ${l.total} at epoch ${epoch + 1} step ${step + 1}; lower --lr`);
        model.zeroGrad();
        await model.backwardAsync({ clsGrads: l.clsGrads, boxGrads: l.boxGrads });
        await opt.stepAsync();
        step++;
        state.stepInEpoch = step;
        state.globalStep++;
        sums = { loss: sums.loss + l.total, cls: sums.cls + l.cls, box: sums.box + l.box, n: sums.n + 1 };
        const pps = (sums.n * B) / ((performance.now() - t0) / 1000);
        tb.addScalars({ 'train/loss': l.total, 'train/cls_loss': l.cls, 'train/box_loss': l.box, 'train/lr': lr }, state.globalStep);
        log.log({ event: 'step', epoch: epoch + 1, step, loss: l.total, cls_loss: l.cls, box_loss: l.box, lr, patches_per_s: pps });
        progress?.update(l.total, B);
        emit({ kind: 'step', epoch: epoch + 1, step, loss: l.total, clsLoss: l.cls, boxLoss: l.box, lr, patchesPerSecond: pps });
        if (hooks.signal?.aborted) {
          stopped = true;
          break;
        }
      }
      if (stopped) {
        saveRun(model, opt, cfg, state, runCheckpoint(outputDir, 'last'));
        emit({ kind: 'stop', epoch: epoch + 1, step: state.stepInEpoch, message: `stopped; saved ${runCheckpoint(outputDir, 'last')}` });
        log.log({ event: 'stop', epoch: epoch + 1, step: state.stepInEpoch });
        break;
      }
      // Epoch complete.
      state.epoch = epoch + 1;
      state.stepInEpoch = 0;
      const mean = { loss: sums.loss / Math.max(1, sums.n), cls: sums.cls / Math.max(1, sums.n), box: sums.box / Math.max(1, sums.n) };
      const seconds = (performance.now() - t0) / 1000;
      tb.addScalars({ 'epoch/loss': mean.loss, 'epoch/cls_loss': mean.cls, 'epoch/box_loss': mean.box, 'epoch/lr': lr }, state.epoch);
      log.log({ event: 'epoch', epoch: state.epoch, ...mean, lr, seconds, patches_per_s: (sums.n * cfg.batchSize) / seconds });
      emit({ kind: 'epoch', epoch: state.epoch, loss: mean.loss, clsLoss: mean.cls, boxLoss: mean.box, lr });

      const summary: Record<string, number | string> = {};
      if (data.validation && (state.epoch % cfg.valInterval === 0 || state.epoch === cfg.epochs)) {
        lastValidation = await validate(model, data.validation, cfg);
        const score = Number.isFinite(lastValidation.score) ? lastValidation.score : -1;
        for (const [k, v] of Object.entries(lastValidation.metrics)) tb.addScalar(`val/${k}`, v, state.epoch);
        log.log({ event: 'validation', epoch: state.epoch, metrics: lastValidation.metrics, seconds: lastValidation.seconds });
        emit({ kind: 'validation', epoch: state.epoch, metrics: lastValidation.metrics, message: lastValidation.headline });
        summary.val = lastValidation.headline;
        if (state.bestMetric === null || score > state.bestMetric) {
          state.bestMetric = score;
          state.bestEpoch = state.epoch;
          saveRun(model, opt, cfg, state, runCheckpoint(outputDir, 'best_model'));
          emit({ kind: 'checkpoint', epoch: state.epoch, message: `new best ${MAP_KEY} ${score.toFixed(4)}: saved best_model` });
        }
      }
      progress?.endEpoch(summary);
      if (state.epoch % cfg.checkpointInterval === 0)
        saveRun(model, opt, cfg, state, runCheckpoint(outputDir, `checkpoint_epoch${state.epoch}`));
      saveRun(model, opt, cfg, state, runCheckpoint(outputDir, 'last'));
      if (hooks.signal?.aborted) stopped = true;
    }
    return {
      outputDir,
      epochsCompleted: state.epoch,
      bestMetric: state.bestMetric,
      bestEpoch: state.bestEpoch,
      lastValidation,
      stopped,
      config: cfg,
    };
  } finally {
    progress?.stop();
    tb.close();
    log.close();
    await data.close();
  }
}
