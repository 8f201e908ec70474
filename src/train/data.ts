// The training run's data: case lists from the configuration (folders or a
// datalist), the train/validation split, and the loaders.
import { cpus } from 'node:os';
import { readDistEnv } from '../dist/env.js';
import { loadDatalist, listFolderDataset, splitCases, type CaseSource } from '../data/dataset.js';
import { createTrainLoader, createValidationLoader, type TrainLoader, type ValidationLoader } from '../data/loader.js';
import type { IntensityOptions } from '../data/preprocess.js';
import type { TrainConfig } from './config.js';

export interface RunData {
  train: TrainLoader;
  validation: ValidationLoader | null;
  trainIds: string[];
  validationIds: string[];
  close(): Promise<void>;
}

export function intensityOf(cfg: Pick<TrainConfig, 'intensity' | 'aMin' | 'aMax'>): IntensityOptions {
  return cfg.intensity === 'zscore'
    ? { mode: 'zscore' }
    : { mode: 'range', aMin: cfg.aMin, aMax: cfg.aMax, bMin: 0, bMax: 1, clip: true };
}

/** Training and validation case lists. A datalist's "validation" list wins over val_fraction. */
export function listCases(cfg: TrainConfig): { train: CaseSource[]; validation: CaseSource[] } {
  if (cfg.datalist) {
    const opts = { gtBoxMode: cfg.gtBoxMode, dataRoot: cfg.dataBaseDir ?? undefined };
    const training = loadDatalist(cfg.datalist, { ...opts, key: 'training' });
    let validation: CaseSource[] | null = null;
    try {
      validation = loadDatalist(cfg.datalist, { ...opts, key: 'validation' });
    } catch (e) {
      if (!/no "validation" list/.test((e as Error).message)) throw e;
    }
    if (validation) return { train: training, validation };
    return splitOf(training, cfg);
  }
  const all = listFolderDataset('', { imagesDir: cfg.imageDir!, labelsDir: cfg.labelDir! });
  return splitOf(all, cfg);
}

function splitOf(cases: CaseSource[], cfg: TrainConfig): { train: CaseSource[]; validation: CaseSource[] } {
  if (cfg.valFraction === 0 || cases.length < 2) return { train: cases, validation: [] };
  return splitCases(cases, { validationFraction: cfg.valFraction, seed: cfg.seed });
}

/**
 * Loader threads when not configured: the cores less one, shared among the
 * processes of this node in data-parallel training (LOCAL_WORLD_SIZE), so
 * that N ranks do not start N × (cores − 1) threads.
 */
export function defaultWorkers(): number {
  const local = readDistEnv().localWorldSize;
  return Math.max(1, Math.floor((cpus().length - 1) / local));
}

export async function openRunData(
  cfg: TrainConfig,
  onPrepared?: (done: number, total: number, id: string) => void,
): Promise<RunData> {
  const { train, validation } = listCases(cfg);
  if (train.length === 0) throw new Error('no training cases: the validation split took them all; lower val_fraction');
  const common = {
    orientation: 'RAS',
    spacing: cfg.spacing ?? undefined,
    minSize: cfg.minSize,
    intensity: intensityOf(cfg),
    workers: cfg.workers ?? defaultWorkers(),
    seed: cfg.seed,
    onPrepared,
  };
  const trainLoader = await createTrainLoader({
    ...common,
    cases: train,
    patchSize: cfg.patchSize,
    batchSize: cfg.batchSize,
    augment: cfg.augment ? undefined : false,
    keepNegatives: cfg.keepEmpty,
  });
  let valLoader: ValidationLoader | null = null;
  try {
    if (validation.length) valLoader = await createValidationLoader({ ...common, cases: validation, workers: 1 });
  } catch (e) {
    await trainLoader.close();
    throw e;
  }
  return {
    train: trainLoader,
    validation: valLoader,
    trainIds: train.map((c) => c.id),
    validationIds: validation.map((c) => c.id),
    async close() {
      await trainLoader.close();
      await valLoader?.close();
    },
  };
}
