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
//
// Data parallel (WORLD_SIZE > 1, started by `detseg3d launch`, torchrun,
// mpirun or srun): the ranks join a process group (Gloo for --device cpu,
// NCCL for --device cuda: each rank on cuda:LOCAL_RANK, device gradient
// buckets all-reduced on NCCL's stream while backward runs),
// rank 0's weights are broadcast, each rank trains on its shard of every
// epoch's case order, and the gradients are averaged every step by the
// bucketed reducer fed from the model's backward (createModelReducer in
// src/dist/process_group.ts). Only rank 0 writes files and progress; every
// rank takes part in every collective, and they agree on stopping each step.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hashSeed } from '../data/rng.js';
import { anchors as anchorGen, detector } from '../detection/index.js';
import { readDistEnv } from '../dist/env.js';
import { initProcessGroup, type GradientReducer, type ProcessGroup } from '../dist/process_group.js';
import { describeBatch } from '../dist/sampler.js';
import { RetinaNet } from '../model/retinanet.js';
import { SGD } from '../model/sgd.js';
import { Tensor, type Triple } from '../tensor.js';
import { checkpointPaths, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { MODEL_KEYS, resolveTrainConfig, toSnakeCase, type TrainConfig } from './config.js';
import { openRunData } from './data.js';
import { resolveComputeDevice, type ComputeDevice } from './device.js';
import { LossScaler, type LossScalerState } from './loss_scaler.js';
import { JsonlLogger } from './jsonl_log.js';
import { TrainProgress } from './progress.js';
import { learningRateAt } from './schedule.js';
import { SummaryWriter } from './tensorboard.js';
import { MAP_KEY, validate, type ValidationResult } from './validate.js';

export interface TrainEvent {
  kind: 'prepare' | 'step' | 'epoch' | 'validation' | 'checkpoint' | 'stop' | 'info';
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
  /**
   * Data parallel: an existing process group to train in (left open). By
   * default, when the environment describes several processes (WORLD_SIZE >
   * 1), train() joins one itself and leaves it at the end.
   */
  processGroup?: ProcessGroup;
}

export interface TrainResult {
  outputDir: string;
  epochsCompleted: number;
  bestMetric: number | null;
  bestEpoch: number | null;
  lastValidation: ValidationResult | null;
  stopped: boolean;
  config: TrainConfig;
  /** This process's rank and the number of processes that trained together (1 without data parallelism). */
  rank: number;
  worldSize: number;
  /** The trained model as it is at the end (the same on every rank). */
  model: RetinaNet;
}

interface TrainerState {
  epoch: number; // epochs completed
  stepInEpoch: number; // steps completed in the current (unfinished) epoch
  globalStep: number;
  bestMetric: number | null;
  bestEpoch: number | null;
  /** Processes that trained together (absent in checkpoints of older runs: 1). */
  worldSize?: number;
  /** float16 runs on CUDA: the dynamic loss scale and its clean-step count. */
  lossScaler?: LossScalerState;
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

/** Shapes of the model's parameters and buffers by name (what a checkpoint must match). */
function weightShapes(model: RetinaNet): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const p of [...model.parameters(), ...model.buffers()]) shapes.set(p.name, p.shape);
  return shapes;
}

function weightsWithShapes(model: RetinaNet) {
  const shapes = weightShapes(model);
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, data] of model.getWeights()) out.set(name, { data, shape: shapes.get(name)! });
  return out;
}

/** Paths of the checkpoints a run writes in its output folder. */
export function runCheckpoint(outputDir: string, name: 'last' | 'best_model' | `checkpoint_epoch${number}`): string {
  return join(outputDir, name);
}

function saveRun(model: RetinaNet, opt: SGD, cfg: TrainConfig, state: TrainerState, path: string) {
  const weights = weightsWithShapes(model);
  const momentum = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, data] of opt.state()) momentum.set(name, { data, shape: [data.length] });
  saveCheckpoint(
    path,
    { weights, config: toSnakeCase(cfg), epoch: state.epoch, bestMetric: state.bestMetric },
    { optimizerState: momentum, trainerState: state },
  );
}

/** A checkpoint's tensors as the Float32Arrays the model and optimizer take. */
export function float32Map(tensors: Map<string, { data: unknown }>): Map<string, Float32Array> {
  return new Map([...tensors].map(([name, t]) => [name, t.data as Float32Array]));
}

function restore(model: RetinaNet, opt: SGD, cfg: TrainConfig, path: string): TrainerState {
  const shapes = weightShapes(model);
  // Only the model's structure must match; other options may change on resume.
  const modelKeys = new Set(Object.keys(toSnakeCase(Object.fromEntries(MODEL_KEYS.map((k) => [k, cfg[k]])))));
  const expectConfig = toSnakeCase(cfg);
  const ck = loadCheckpoint(path, { expectShapes: shapes, expectConfig, ignoreConfigKeys: Object.keys(expectConfig).filter((k) => !modelKeys.has(k)) });
  model.setWeights(float32Map(ck.weights));
  if (ck.optimizerState) opt.loadState(float32Map(ck.optimizerState));
  const st = ck.trainerState as TrainerState | undefined;
  return st ?? { epoch: ck.epoch, stepInEpoch: 0, globalStep: 0, bestMetric: ck.bestMetric, bestEpoch: null };
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
  // --device cuda without CUDA or without a GPU fails here, before any data is read.
  const env = readDistEnv();
  const compute = resolveComputeDevice(cfg, env.localRank);
  const backend = distBackendFor(cfg.device);
  const ownGroup = !hooks.processGroup && env.worldSize > 1;
  // NCCL on the GPU the model will use (trainIn is handed the same device), not on LOCAL_RANK blindly: with
  // one visible GPU per process (CUDA_VISIBLE_DEVICES set per rank by SLURM or a scheduler) that is cuda:0.
  const device = compute.device === 'cpu' ? undefined : Number(compute.device.slice('cuda:'.length));
  const pg = hooks.processGroup ?? (ownGroup ? await initProcessGroup({ backend, ...(device !== undefined ? { device } : {}) }) : null);
  let result: TrainResult;
  try {
    result = await trainIn(cfg, compute, outputDir, resume ?? null, hooks, pg && pg.worldSize > 1 ? pg : null);
  } catch (e) {
    // The other ranks may be blocked in a collective: leave without the closing barrier.
    if (ownGroup) await pg!.abort();
    throw e;
  }
  if (ownGroup) await pg!.destroy();
  return result;
}

/** The one switch for the CUDA trainer: NCCL between GPUs, Gloo between CPU processes. */
export function distBackendFor(device: TrainConfig['device']): 'gloo' | 'nccl' {
  return device === 'cuda' ? 'nccl' : 'gloo';
}

async function trainIn(
  cfg: TrainConfig,
  compute: ComputeDevice,
  outputDir: string,
  resume: string | null,
  hooks: TrainHooks,
  pg: ProcessGroup | null,
): Promise<TrainResult> {
  const rank = pg?.rank ?? 0;
  const worldSize = pg?.worldSize ?? 1;
  const isMain = rank === 0;
  // Only rank 0 writes files and reports progress; the others stay quiet.
  if (isMain) {
    mkdirSync(outputDir, { recursive: true });
    writeFileSync(join(outputDir, 'config.json'), JSON.stringify(toSnakeCase(cfg), null, 2) + '\n');
  }
  const emit = (e: TrainEvent) => {
    if (isMain) hooks.onProgress?.(e);
  };
  if (worldSize > 1) emit({ kind: 'info', message: `data parallel over ${worldSize} processes (${pg!.backend}); ${describeBatch(cfg.batchSize, worldSize)}${cfg.syncBn ? '; SyncBatchNorm' : ''}` });
  // As torch's SyncBatchNorm: with one process the batch statistics are this process's batch's anyway.
  else if (cfg.syncBn) emit({ kind: 'info', message: '--sync_bn has no effect with one process (BatchNorm statistics are the batch\'s own, as with torch\'s SyncBatchNorm at world size 1)' });

  const data = await openRunData(cfg, (done, total, id) => emit({ kind: 'prepare', done, total, message: `prepared ${id} (${done}/${total})` }));
  const tb = isMain ? new SummaryWriter(join(outputDir, 'tensorboard')) : null;
  const log = isMain ? new JsonlLogger(join(outputDir, 'log.jsonl')) : null;
  let progress: TrainProgress | null = null;
  let reducer: GradientReducer | null = null;
  let model: RetinaNet | null = null;
  try {
    model = RetinaNet.create(modelConfigOf(cfg));
    // CUDA: the model (and later each batch) on cuda:LOCAL_RANK, in the chosen precision.
    if (compute.device !== 'cpu') {
      model.to(compute.device).setPrecision(compute.dtype);
      emit({ kind: 'info', message: `training on ${compute.device} in ${compute.precision}${compute.lossScaling ? ' with dynamic loss scaling' : ''}` });
    }
    // Every CUDA run checks its gradients for inf/NaN before a step; only fp16 scales the loss.
    const scaler = compute.device === 'cpu' ? null : new LossScaler({ enabled: compute.lossScaling });
    const opt = new SGD(model, { lr: cfg.lr, momentum: cfg.momentum, nesterov: cfg.nesterov, weightDecay: cfg.weightDecay });
    let state: TrainerState = { epoch: 0, stepInEpoch: 0, globalStep: 0, bestMetric: null, bestEpoch: null };
    if (resume) {
      const path = resolveResume(resume, outputDir);
      if (!existsSync(checkpointPaths(path).weights)) throw new Error(`--resume: no checkpoint at ${checkpointPaths(path).weights}`);
      // Every rank reads the checkpoint (a shared folder, as for the data); the broadcast below makes the weights agree regardless.
      state = restore(model, opt, cfg, path);
      if (scaler?.enabled && state.lossScaler) scaler.loadState(state.lossScaler);
      if (state.stepInEpoch > 0 && (state.worldSize ?? 1) !== worldSize) {
        // Mid-epoch positions are per-rank shard positions: they do not map to another world size.
        emit({
          kind: 'info',
          message: `the checkpoint stopped in epoch ${state.epoch + 1} with ${state.worldSize ?? 1} process(es), now ${worldSize}: that epoch restarts from its beginning`,
        });
        state.stepInEpoch = 0;
      }
      emit({ kind: 'checkpoint', epoch: state.epoch, message: `resumed from ${path} at epoch ${state.epoch} step ${state.stepInEpoch}` });
    }
    state.worldSize = worldSize;
    if (pg) {
      await pg.broadcastModel(model, { params: true, buffers: true }, 0);
      reducer = pg.createModelReducer(model, { syncBatchNorm: cfg.syncBn });
    }
    log?.log({ event: 'start', config: toSnakeCase(cfg), trainCases: data.trainIds, validationCases: data.validationIds, resumedAt: state.epoch });

    const anchorCache = new Map<string, Float32Array[]>();
    const anchorsFor = (patch: Triple, maps: Tensor[]) => {
      const sizes = maps.map((t) => [t.shape[3], t.shape[2], t.shape[1]] as Triple);
      const key = JSON.stringify([patch, sizes]);
      if (!anchorCache.has(key))
        anchorCache.set(key, anchorGen.generate({ imageSize: patch, featureMapSizes: sizes, baseAnchorShapes: cfg.baseAnchorShapes }));
      return anchorCache.get(key)!;
    };
    const lossOpts = lossOptionsOf(cfg);
    const stepsPerEpoch = data.train.batchesPerShard(worldSize);
    const shard = pg ? { rank, worldSize } : undefined;
    const lastEpoch = hooks.maxEpochsThisRun ? Math.min(cfg.epochs, state.epoch + hooks.maxEpochsThisRun) : cfg.epochs;
    if (hooks.progress && isMain) progress = new TrainProgress({ epochs: cfg.epochs, stepsPerEpoch, unit: 'patches' });
    let lastValidation: ValidationResult | null = null;
    let stopped = false;

    for (let epoch = state.epoch; epoch < lastEpoch && !stopped; epoch++) {
      const lr = learningRateAt({ baseLr: cfg.lr, stepSize: cfg.lrStep, gamma: cfg.lrGamma, warmupEpochs: cfg.warmupEpochs }, epoch);
      opt.lr = lr;
      model.train();
      progress?.startEpoch(epoch + 1);
      const skip = state.stepInEpoch;
      let step = 0;
      let sums = { loss: 0, cls: 0, box: 0, n: 0, finite: 0 };
      const t0 = performance.now();
      for await (const batch of data.train.epoch(epoch, shard)) {
        if (step < skip) {
          step++;
          continue;
        }
        const B = batch.caseIds.length;
        const [px, py, pz] = batch.patchSize;
        const x = Tensor.from(batch.images, [B, pz, py, px, 1]);
        const out = await model.forwardAsync(x);
        const targets = batch.boxes.map((b, i) => ({ boxes: b, labels: batch.labels[i] }));
        // Negative sampling seeded by the batch's position in the (padded) epoch order: `step` with one process.
        const l = await detector.lossAsync(out, anchorsFor(batch.patchSize, out.clsLogits), targets, {
          ...lossOpts,
          seed: hashSeed(cfg.seed, 0x1055, epoch, step * worldSize + rank),
          gradScale: scaler?.scale ?? 1,
          // float16: an overflow in the forward pass skips the step (below) instead of stopping the run.
          nonFiniteOk: scaler?.enabled ?? false,
        });
        let loss = { total: l.total, cls: l.cls, box: l.box };
        let stopVote = false;
        if (pg) {
          // One small all-reduce per step: the mean losses, whether any rank's loss is not finite, whether any rank must stop.
          // (A stop requested after this vote is seen at the next step's: one step later than with one process.)
          // A float16 overflow (l.nonFinite) is not an error: its losses count as 0 here and the step is skipped below.
          const finite = Number.isFinite(l.total);
          const v = Float64Array.of(finite ? l.total : 0, finite ? l.cls : 0, finite ? l.box : 0, finite || l.nonFinite ? 0 : 1, hooks.signal?.aborted ? 1 : 0, l.nonFinite ? 0 : 1);
          await pg.allReduce(v, 'sum');
          if (v[3] > 0) throw new Error(`the loss became non-finite on ${v[3]} of ${worldSize} ranks at epoch ${epoch + 1} step ${step + 1}; lower --lr`);
          const n = Math.max(1, v[5]);
          loss = v[5] > 0 ? { total: v[0] / n, cls: v[1] / n, box: v[2] / n } : { total: NaN, cls: NaN, box: NaN };
          stopVote = v[4] > 0;
        }
        if (!Number.isFinite(l.total) && !l.nonFinite) throw new Error(`the loss became ${l.total} at epoch ${epoch + 1} step ${step + 1}; lower --lr`);
        model.zeroGrad();
        // With data parallelism the model's backward hands each module's gradients to the reducer
        // as they become final (all-reduced while backward goes on); finishModel waits for the
        // last bucket and installs the averages.
        await model.backwardAsync({ clsGrads: l.clsGrads, boxGrads: l.boxGrads });
        if (reducer) await reducer.finishModel(model);
        if (scaler) {
          // One pass over all gradients for inf/NaN; the unscale is fused into the SGD step.
          const scale = scaler.scale;
          // Data parallel: any rank's inf/NaN skips the step on every rank (one 4-byte all-reduce), so
          // the weights and the loss scales stay identical across ranks.
          // A non-finite forward (l.nonFinite) back-propagated zeros (every rank takes part in the
          // gradient all-reduce either way) and counts as an overflow.
          const localNonFinite = l.nonFinite || (await model.gradsNonFiniteAsync());
          const nonFinite = pg ? await pg.anyTrue(localNonFinite) : localNonFinite;
          if (!nonFinite) await opt.stepAsync(1 / scale);
          if (!scaler.update(nonFinite))
            emit({ kind: 'info', message: `epoch ${epoch + 1} step ${step + 1}: inf/NaN gradients at loss scale ${scale}; step skipped, scale now ${scaler.scale}` });
          if (scaler.enabled) state.lossScaler = scaler.state();
        } else {
          await opt.stepAsync();
        }
        step++;
        state.stepInEpoch = step;
        state.globalStep++;
        // Epoch means over the steps with a finite loss (a float16 overflow's step has none).
        const f = Number.isFinite(loss.total);
        sums = f
          ? { loss: sums.loss + loss.total, cls: sums.cls + loss.cls, box: sums.box + loss.box, n: sums.n + 1, finite: sums.finite + 1 }
          : { ...sums, n: sums.n + 1 };
        const pps = (sums.n * B * worldSize) / ((performance.now() - t0) / 1000);
        tb?.addScalars({ 'train/loss': loss.total, 'train/cls_loss': loss.cls, 'train/box_loss': loss.box, 'train/lr': lr }, state.globalStep);
        log?.log({ event: 'step', epoch: epoch + 1, step, loss: loss.total, cls_loss: loss.cls, box_loss: loss.box, lr, patches_per_s: pps });
        progress?.update(loss.total, B * worldSize);
        emit({ kind: 'step', epoch: epoch + 1, step, loss: loss.total, clsLoss: loss.cls, boxLoss: loss.box, lr, patchesPerSecond: pps });
        if (pg ? stopVote : hooks.signal?.aborted) {
          stopped = true;
          break;
        }
      }
      // BatchNorm running statistics: rank 0's, as torch DDP's buffer broadcast (rank 0 never receives,
      // so its statistics come from its own batches either way); needed before validation and checkpoints.
      if (pg) await pg.broadcastModel(model, { params: false, buffers: true }, 0);
      if (stopped) {
        if (isMain) saveRun(model, opt, cfg, state, runCheckpoint(outputDir, 'last'));
        emit({ kind: 'stop', epoch: epoch + 1, step: state.stepInEpoch, message: `stopped; saved ${runCheckpoint(outputDir, 'last')}` });
        log?.log({ event: 'stop', epoch: epoch + 1, step: state.stepInEpoch });
        break;
      }
      // Epoch complete.
      state.epoch = epoch + 1;
      state.stepInEpoch = 0;
      const mean = { loss: sums.loss / Math.max(1, sums.finite), cls: sums.cls / Math.max(1, sums.finite), box: sums.box / Math.max(1, sums.finite) };
      const seconds = (performance.now() - t0) / 1000;
      tb?.addScalars({ 'epoch/loss': mean.loss, 'epoch/cls_loss': mean.cls, 'epoch/box_loss': mean.box, 'epoch/lr': lr }, state.epoch);
      log?.log({ event: 'epoch', epoch: state.epoch, ...mean, lr, seconds, patches_per_s: (sums.n * cfg.batchSize * worldSize) / seconds });
      emit({ kind: 'epoch', epoch: state.epoch, loss: mean.loss, clsLoss: mean.cls, boxLoss: mean.box, lr });

      const summary: Record<string, number | string> = {};
      if (data.validation && (state.epoch % cfg.valInterval === 0 || state.epoch === cfg.epochs)) {
        // Sharded over the ranks; every rank gets rank 0's metrics, so all agree on the best model.
        lastValidation = await validate(model, data.validation, cfg, undefined, pg);
        const score = Number.isFinite(lastValidation.score) ? lastValidation.score : -1;
        for (const [k, v] of Object.entries(lastValidation.metrics)) tb?.addScalar(`val/${k}`, v, state.epoch);
        log?.log({ event: 'validation', epoch: state.epoch, metrics: lastValidation.metrics, seconds: lastValidation.seconds });
        emit({ kind: 'validation', epoch: state.epoch, metrics: lastValidation.metrics, message: lastValidation.headline });
        summary.val = lastValidation.headline;
        if (state.bestMetric === null || score > state.bestMetric) {
          state.bestMetric = score;
          state.bestEpoch = state.epoch;
          if (isMain) saveRun(model, opt, cfg, state, runCheckpoint(outputDir, 'best_model'));
          emit({ kind: 'checkpoint', epoch: state.epoch, message: `new best ${MAP_KEY} ${score.toFixed(4)}: saved best_model` });
        }
      }
      progress?.endEpoch(summary);
      if (isMain && state.epoch % cfg.checkpointInterval === 0)
        saveRun(model, opt, cfg, state, runCheckpoint(outputDir, `checkpoint_epoch${state.epoch}`));
      if (isMain) saveRun(model, opt, cfg, state, runCheckpoint(outputDir, 'last'));
      // A stop requested during validation or the checkpoints: every rank must agree.
      if (pg ? await pg.anyTrue(hooks.signal?.aborted ?? false) : hooks.signal?.aborted) stopped = true;
    }
    return {
      outputDir,
      epochsCompleted: state.epoch,
      bestMetric: state.bestMetric,
      bestEpoch: state.bestEpoch,
      lastValidation,
      stopped,
      config: cfg,
      rank,
      worldSize,
      model,
    };
  } finally {
    progress?.stop();
    tb?.close();
    log?.close();
    if (reducer) {
      try {
        reducer.detachModel(model!);
      } finally {
        reducer.destroy();
      }
    }
    await data.close();
  }
}
