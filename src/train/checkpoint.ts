// Training checkpoints as safetensors files (no pickle), crash-safe.
//
// Layout for saveCheckpoint('runs/x/model') or ('runs/x/model.safetensors'):
//   model.safetensors        model weights; __metadata__ holds
//                              format            "detseg3d-checkpoint"
//                              format_version    "1"
//                              detseg3d_version  package.json version
//                              config            JSON of the training/model config
//                              epoch             integer as text
//                              best_metric       JSON number or null
//                              extra             JSON object (caller's free-form data)
//                              checkpoint_id     random id shared by the companion files
//                              created           ISO-8601 time
//   model.optim.safetensors  optimizer tensors (e.g. SGD momentum buffers, named by
//                            the caller, conventionally "<param>.momentum"), same
//                            checkpoint_id in its metadata. Only when given.
//   model.state.json         trainer state (scheduler, step, RNG state, ...) as JSON:
//                            { format, checkpoint_id, state }. Only when given.
//
// Saving encodes and validates everything first, writes every file under a
// temporary name in the same directory and fsyncs it, and only then renames
// them over the targets, companions first and the weights file last. An error
// or crash before the renames leaves the previous checkpoint untouched; the
// weights file only ever names a checkpoint_id whose companions were complete,
// and loadCheckpoint refuses companions whose checkpoint_id differs (a crash
// between two renames leaves a stale companion, which is detected, not mixed).
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { encodeSafetensorsChunks, readSafetensors, type SafeDType, type SafeTensor, type TensorInput } from './safetensors.js';
import { writeFilesAtomic } from './atomic.js';

export const CHECKPOINT_FORMAT = 'detseg3d-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = '1';

let cachedVersion: string | undefined;
/** detseg3d's version from package.json (two levels above src/train and dist/train). */
export function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      cachedVersion = String(JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}

export type TensorMap = Map<string, TensorInput> | Record<string, TensorInput>;

export interface CheckpointContent {
  weights: TensorMap;
  config: object;
  epoch: number;
  bestMetric?: number | null;
  extra?: Record<string, unknown>;
}

export interface CheckpointExtras {
  /** Optimizer tensors, e.g. momentum buffers keyed "<param>.momentum". */
  optimizerState?: TensorMap;
  /** Any JSON-serializable trainer state: scheduler, global step, RNG state, … */
  trainerState?: unknown;
}

export interface CheckpointPaths {
  weights: string;
  optimizer: string;
  state: string;
}

/** File names of a checkpoint; `path` may or may not end with ".safetensors". */
export function checkpointPaths(path: string): CheckpointPaths {
  const stem = path.endsWith('.safetensors') ? path.slice(0, -'.safetensors'.length) : path;
  return { weights: `${stem}.safetensors`, optimizer: `${stem}.optim.safetensors`, state: `${stem}.state.json` };
}

/**
 * Saves weights + metadata (and optimizer/trainer state when given), each
 * file atomically. Companion files from an earlier save that this save does
 * not rewrite are removed, so a checkpoint never pairs with stale state.
 */
export function saveCheckpoint(path: string, content: CheckpointContent, extras: CheckpointExtras = {}): CheckpointPaths {
  if (!Number.isInteger(content.epoch) || content.epoch < 0) throw new Error(`saveCheckpoint: epoch must be a non-negative integer, got ${content.epoch}`);
  if (content.bestMetric !== undefined && content.bestMetric !== null && typeof content.bestMetric !== 'number') {
    throw new Error(`saveCheckpoint: bestMetric must be a number or null, got ${typeof content.bestMetric}`);
  }
  const paths = checkpointPaths(path);
  const id = randomBytes(8).toString('hex');
  const common = { format: CHECKPOINT_FORMAT, format_version: CHECKPOINT_FORMAT_VERSION, checkpoint_id: id };
  const best = content.bestMetric;
  // Encode (and so validate) everything before touching the disk: a bad tensor
  // must not damage the previous checkpoint.
  const files: { path: string; chunks: Uint8Array[] }[] = [];
  if (extras.optimizerState !== undefined) {
    files.push({ path: paths.optimizer, chunks: encodeSafetensorsChunks(extras.optimizerState, { ...common, role: 'optimizer' }) });
  }
  if (extras.trainerState !== undefined) {
    const json = JSON.stringify({ format: CHECKPOINT_FORMAT, format_version: CHECKPOINT_FORMAT_VERSION, checkpoint_id: id, state: extras.trainerState }, null, 2);
    files.push({ path: paths.state, chunks: [new TextEncoder().encode(json + '\n')] });
  }
  files.push({
    path: paths.weights,
    chunks: encodeSafetensorsChunks(content.weights, {
      ...common,
      role: 'weights',
      detseg3d_version: packageVersion(),
      config: JSON.stringify(content.config ?? {}),
      epoch: String(content.epoch),
      // JSON has no NaN/Infinity; a non-finite best metric is stored as null.
      best_metric: JSON.stringify(best === undefined || best === null || !Number.isFinite(best) ? null : best),
      extra: JSON.stringify(content.extra ?? {}),
      has_optimizer: String(extras.optimizerState !== undefined),
      has_trainer_state: String(extras.trainerState !== undefined),
      created: new Date().toISOString(),
    }),
  });
  // Companions first, the weights file (which names the set's id) last.
  writeFilesAtomic(files);
  if (extras.optimizerState === undefined) fs.rmSync(paths.optimizer, { force: true });
  if (extras.trainerState === undefined) fs.rmSync(paths.state, { force: true });
  return paths;
}

export interface LoadCheckpointOptions {
  /** Config the caller will train/infer with; differences are an error. */
  expectConfig?: object;
  /** Config keys (dotted paths) allowed to differ, e.g. ['epochs', 'output_dir']. */
  ignoreConfigKeys?: readonly string[];
  /** Parameter name → shape the model expects; every difference is an error. */
  expectShapes?: Map<string, readonly number[]> | Record<string, readonly number[]>;
  /** Also load the optimizer/trainer state companions when present (default true). */
  loadState?: boolean;
}

export interface LoadedCheckpoint {
  weights: Map<string, SafeTensor>;
  config: Record<string, unknown>;
  epoch: number;
  bestMetric: number | null;
  extra: Record<string, unknown>;
  version: string;
  checkpointId: string;
  optimizerState?: Map<string, SafeTensor>;
  trainerState?: unknown;
  paths: CheckpointPaths;
}

/** Thrown when a checkpoint does not fit the expected shapes or config; lists every difference. */
export class CheckpointMismatchError extends Error {
  constructor(
    readonly path: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly shapeMismatches: { name: string; checkpoint: number[]; expected: number[] }[],
    readonly configDifferences: string[],
  ) {
    const lines: string[] = [];
    if (missing.length) lines.push(`  missing in checkpoint (${missing.length}): ${missing.join(', ')}`);
    if (unexpected.length) lines.push(`  unexpected in checkpoint (${unexpected.length}): ${unexpected.join(', ')}`);
    for (const m of shapeMismatches) lines.push(`  shape of ${m.name}: checkpoint [${m.checkpoint.join(', ')}] vs model [${m.expected.join(', ')}]`);
    for (const d of configDifferences) lines.push(`  config ${d}`);
    super(`checkpoint ${path} does not match:\n${lines.join('\n')}\n(check the model options used for training, or pass matching options)`);
    this.name = 'CheckpointMismatchError';
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Differences between two JSON values as "key: checkpoint X vs expected Y" lines (dotted key paths). */
export function diffConfig(checkpoint: unknown, expected: unknown, ignore: readonly string[] = [], prefix = ''): string[] {
  if (ignore.includes(prefix)) return [];
  if (isPlainObject(checkpoint) && isPlainObject(expected)) {
    const out: string[] = [];
    const keys = [...new Set([...Object.keys(checkpoint), ...Object.keys(expected)])].sort();
    for (const k of keys) {
      const p = prefix ? `${prefix}.${k}` : k;
      if (ignore.includes(p)) continue;
      if (!(k in expected)) out.push(`${p}: only in checkpoint (= ${JSON.stringify(checkpoint[k])})`);
      else if (!(k in checkpoint)) out.push(`${p}: missing in checkpoint (expected ${JSON.stringify(expected[k])})`);
      else out.push(...diffConfig(checkpoint[k], expected[k], ignore, p));
    }
    return out;
  }
  // Arrays and scalars compare by their JSON form (the checkpoint holds JSON anyway).
  const a = JSON.stringify(checkpoint);
  const b = JSON.stringify(expected);
  return a === b ? [] : [`${prefix || '(root)'}: checkpoint ${a} vs expected ${b}`];
}

function parseJsonMeta(path: string, meta: Record<string, string>, key: string): unknown {
  if (meta[key] === undefined) throw new Error(`${path}: metadata '${key}' is missing; not a detseg3d checkpoint (saveCheckpoint writes it)`);
  try {
    return JSON.parse(meta[key]);
  } catch {
    throw new Error(`${path}: metadata '${key}' is not valid JSON`);
  }
}

/**
 * Loads a checkpoint saved by saveCheckpoint, checking it against the
 * expected shapes and config (every difference is listed in one error).
 */
export function loadCheckpoint(path: string, opts: LoadCheckpointOptions = {}): LoadedCheckpoint {
  const paths = checkpointPaths(path);
  if (!fs.existsSync(paths.weights)) throw new Error(`loadCheckpoint: ${paths.weights} does not exist`);
  const { tensors, metadata } = readSafetensors(paths.weights);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${paths.weights}: not a detseg3d checkpoint (metadata format = ${JSON.stringify(metadata.format)}); plain safetensors files load with readSafetensors`);
  }
  if (metadata.format_version !== CHECKPOINT_FORMAT_VERSION) {
    throw new Error(`${paths.weights}: checkpoint format version ${metadata.format_version} is not supported (this detseg3d reads ${CHECKPOINT_FORMAT_VERSION})`);
  }
  const config = parseJsonMeta(paths.weights, metadata, 'config') as Record<string, unknown>;
  const bestMetric = parseJsonMeta(paths.weights, metadata, 'best_metric') as number | null;
  const extra = parseJsonMeta(paths.weights, metadata, 'extra') as Record<string, unknown>;
  const epoch = Number(metadata.epoch);
  if (!Number.isInteger(epoch)) throw new Error(`${paths.weights}: metadata 'epoch' = ${JSON.stringify(metadata.epoch)} is not an integer`);

  const missing: string[] = [];
  const unexpected: string[] = [];
  const shapeMismatches: { name: string; checkpoint: number[]; expected: number[] }[] = [];
  if (opts.expectShapes) {
    const exp = opts.expectShapes instanceof Map ? opts.expectShapes : new Map(Object.entries(opts.expectShapes));
    for (const [name, shape] of exp) {
      const t = tensors.get(name);
      if (!t) missing.push(name);
      else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) shapeMismatches.push({ name, checkpoint: t.shape, expected: [...shape] });
    }
    for (const name of tensors.keys()) if (!exp.has(name)) unexpected.push(name);
  }
  const configDifferences = opts.expectConfig ? diffConfig(config, opts.expectConfig, opts.ignoreConfigKeys ?? []) : [];
  if (missing.length || unexpected.length || shapeMismatches.length || configDifferences.length) {
    throw new CheckpointMismatchError(paths.weights, missing, unexpected, shapeMismatches, configDifferences);
  }

  const out: LoadedCheckpoint = {
    weights: tensors,
    config,
    epoch,
    bestMetric,
    extra,
    version: metadata.detseg3d_version ?? 'unknown',
    checkpointId: metadata.checkpoint_id,
    paths,
  };
  if (opts.loadState ?? true) {
    if (metadata.has_optimizer === 'true') {
      if (!fs.existsSync(paths.optimizer)) throw new Error(`${paths.weights} was saved with optimizer state but ${paths.optimizer} is missing`);
      const opt = readSafetensors(paths.optimizer);
      if (opt.metadata.checkpoint_id !== metadata.checkpoint_id) {
        throw new Error(`${paths.optimizer} belongs to another save (checkpoint_id ${opt.metadata.checkpoint_id} vs ${metadata.checkpoint_id}); the save was interrupted — resume from the weights only (loadState: false) or from another checkpoint`);
      }
      out.optimizerState = opt.tensors;
    }
    if (metadata.has_trainer_state === 'true') {
      if (!fs.existsSync(paths.state)) throw new Error(`${paths.weights} was saved with trainer state but ${paths.state} is missing`);
      let st: { checkpoint_id?: string; state?: unknown };
      try {
        st = JSON.parse(fs.readFileSync(paths.state, 'utf8'));
      } catch (e) {
        throw new Error(`${paths.state}: not valid JSON (${(e as Error).message})`);
      }
      if (st.checkpoint_id !== metadata.checkpoint_id) {
        throw new Error(`${paths.state} belongs to another save (checkpoint_id ${st.checkpoint_id} vs ${metadata.checkpoint_id}); the save was interrupted — resume from the weights only (loadState: false) or from another checkpoint`);
      }
      out.trainerState = st.state;
    }
  }
  return out;
}

export type { SafeDType, SafeTensor, TensorInput };
