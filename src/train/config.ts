// Training configuration: one table describes every option once. The CLI
// (`detseg3d train`, with --snake_case and --kebab-case spellings), the
// `--config` JSON file (snake_case keys, the same names) and the library's
// `train(config)` (camelCase keys) all read it, so defaults, validation and
// help text cannot drift apart. Defaults follow MONAI's LUNA16 RetinaNet
// tutorial unless stated otherwise. Per-axis values are in (x, y, z) order.

export type OptionKind = 'int' | 'number' | 'bool' | 'string' | 'int3' | 'intList' | 'shapeList' | 'enum';

export interface OptionSpec {
  /** snake_case name used on the command line and in config files. */
  key: string;
  kind: OptionKind;
  default: unknown;
  describe: string;
  group: 'Data' | 'Training' | 'Model' | 'Matching and sampling' | 'Loss' | 'Inference' | 'Run';
  choices?: readonly string[];
  /** Lower bound for numbers (inclusive unless minExclusive). */
  min?: number;
  minExclusive?: boolean;
  /** Only meaningful on the command line (not accepted in --config files). */
  cliOnly?: boolean;
}

export const TRAIN_OPTIONS: readonly OptionSpec[] = [
  // Data
  { key: 'image_dir', kind: 'string', default: null, group: 'Data', describe: 'folder of image volumes (.nii/.nii.gz), paired with --label_dir by file name' },
  { key: 'label_dir', kind: 'string', default: null, group: 'Data', describe: 'folder of label masks with the same file names as the images' },
  { key: 'datalist', kind: 'string', default: null, group: 'Data', describe: 'MONAI Decathlon-style datalist JSON (alternative to image_dir/label_dir)' },
  { key: 'data_base_dir', kind: 'string', default: null, group: 'Data', describe: 'base folder for relative paths in the datalist (default: the datalist\'s folder)' },
  { key: 'gt_box_mode', kind: 'enum', default: 'cccwhd', choices: ['cccwhd', 'xyzxyz'], group: 'Data', describe: 'box mode of the datalist\'s world-coordinate boxes' },
  { key: 'val_fraction', kind: 'number', default: 0.2, min: 0, group: 'Data', describe: 'fraction of cases held out for validation when no datalist "validation" list is given' },
  { key: 'spacing', kind: 'intList', default: null, group: 'Data', describe: 'resample to this spacing in mm (x y z); default: keep the native spacing' },
  { key: 'intensity', kind: 'enum', default: 'ct', choices: ['ct', 'zscore'], group: 'Data', describe: 'intensity normalisation: CT window a_min..a_max -> 0..1, or z-score (MR)' },
  { key: 'a_min', kind: 'number', default: -1024, group: 'Data', describe: 'CT intensity window lower bound (HU)' },
  { key: 'a_max', kind: 'number', default: 300, group: 'Data', describe: 'CT intensity window upper bound (HU)' },
  { key: 'min_size', kind: 'int', default: 10, min: 1, group: 'Data', describe: 'label components smaller than this many voxels are ignored' },
  { key: 'keep_empty', kind: 'bool', default: true, group: 'Data', describe: 'keep cases whose mask is empty as negatives' },
  { key: 'workers', kind: 'int', default: null, min: 0, group: 'Data', describe: 'data loader worker threads (default: cores - 1; 0 loads on the main thread)' },
  // Training
  { key: 'output_dir', kind: 'string', default: './outputs_detection', group: 'Training', describe: 'where checkpoints, logs and TensorBoard files go' },
  { key: 'batch_size', kind: 'int', default: 1, min: 1, group: 'Training', describe: 'patches per step per device (cropped from one volume)' },
  { key: 'patch_size', kind: 'int3', default: [192, 192, 80], min: 1, group: 'Training', describe: 'training patch size in voxels (x y z)' },
  { key: 'val_patch_size', kind: 'int3', default: [512, 512, 208], min: 1, group: 'Training', describe: 'sliding-window size for validation (x y z)' },
  { key: 'epochs', kind: 'int', default: 100, min: 1, group: 'Training', describe: 'number of epochs' },
  { key: 'lr', kind: 'number', default: 1e-2, min: 0, minExclusive: true, group: 'Training', describe: 'learning rate' },
  { key: 'momentum', kind: 'number', default: 0.9, min: 0, group: 'Training', describe: 'SGD momentum' },
  { key: 'nesterov', kind: 'bool', default: true, group: 'Training', describe: 'Nesterov momentum' },
  { key: 'weight_decay', kind: 'number', default: 3e-5, min: 0, group: 'Training', describe: 'SGD weight decay' },
  { key: 'lr_step', kind: 'int', default: 50, min: 1, group: 'Training', describe: 'StepLR: decay the learning rate every this many epochs' },
  { key: 'lr_gamma', kind: 'number', default: 0.1, min: 0, minExclusive: true, group: 'Training', describe: 'StepLR decay factor' },
  { key: 'warmup_epochs', kind: 'int', default: 0, min: 0, group: 'Training', describe: 'linear learning-rate warm-up epochs' },
  { key: 'val_interval', kind: 'int', default: 5, min: 1, group: 'Training', describe: 'validate every this many epochs' },
  { key: 'checkpoint_interval', kind: 'int', default: 10, min: 1, group: 'Training', describe: 'save checkpoint_epoch{N} every this many epochs' },
  { key: 'amp', kind: 'bool', default: true, group: 'Training', describe: 'mixed precision on CUDA (ignored on the CPU): float16 with dynamic loss scaling; --no-amp = float32' },
  { key: 'precision', kind: 'enum', default: null, choices: ['fp16', 'bf16', 'fp32'], group: 'Training', describe: 'CUDA compute precision (overrides --amp; default: fp16 with --amp, fp32 with --no-amp); bf16 needs no loss scaling; ignored on the CPU' },
  { key: 'seed', kind: 'int', default: 0, min: 0, group: 'Training', describe: 'random seed (initialisation, sampling, augmentation)' },
  { key: 'device', kind: 'enum', default: 'cpu', choices: ['cpu', 'cuda'], group: 'Training', describe: 'compute device' },
  { key: 'sync_bn', kind: 'bool', default: false, group: 'Training', describe: 'data parallel: BatchNorm statistics over all processes\' batches (SyncBatchNorm, CPU); default per-process, as torch DDP; no effect with one process' },
  { key: 'augment', kind: 'bool', default: true, group: 'Training', describe: 'data augmentation (MONAI LUNA16 recipe)' },
  // Model
  { key: 'depth', kind: 'int', default: 50, group: 'Model', describe: 'ResNet depth: 10, 18, 34, 50, 101, 152 or 200' },
  { key: 'widths', kind: 'intList', default: [64, 128, 256, 512], min: 1, group: 'Model', describe: 'ResNet block widths (reduce for small models)' },
  { key: 'fpn_channels', kind: 'int', default: 256, min: 1, group: 'Model', describe: 'FPN and head channels' },
  { key: 'returned_layers', kind: 'intList', default: [1, 2], min: 1, group: 'Model', describe: 'ResNet layers feeding the FPN (subset of 1..4)' },
  { key: 'conv1_t_stride', kind: 'int3', default: [2, 2, 1], min: 1, group: 'Model', describe: 'stem convolution stride (x y z)' },
  { key: 'n_input_channels', kind: 'int', default: 1, min: 1, group: 'Model', describe: 'image channels' },
  { key: 'num_classes', kind: 'int', default: 1, min: 1, group: 'Model', describe: 'number of foreground classes' },
  { key: 'base_anchor_shapes', kind: 'shapeList', default: [[6, 8, 4], [8, 6, 5], [10, 10, 6]], group: 'Model', describe: 'anchor shapes at the finest level in voxels (x y z each)' },
  // Matching and sampling
  { key: 'atss_num_candidates', kind: 'int', default: 4, min: 1, group: 'Matching and sampling', describe: 'ATSS candidates per level and anchor shape' },
  { key: 'atss_center_in_gt', kind: 'bool', default: false, group: 'Matching and sampling', describe: 'ATSS: positives must have their centre inside the box' },
  { key: 'batch_size_per_image', kind: 'int', default: 64, min: 1, group: 'Matching and sampling', describe: 'sampled anchors per image' },
  { key: 'positive_fraction', kind: 'number', default: 0.3, min: 0, minExclusive: true, group: 'Matching and sampling', describe: 'fraction of positives among sampled anchors' },
  { key: 'min_neg', kind: 'int', default: 16, min: 0, group: 'Matching and sampling', describe: 'minimum sampled negatives per image' },
  { key: 'pool_size', kind: 'int', default: 20, min: 1, group: 'Matching and sampling', describe: 'hard negatives are drawn from the num_neg*pool_size highest-scoring negatives' },
  // Loss
  { key: 'cls_loss', kind: 'enum', default: 'focal', choices: ['focal', 'bce'], group: 'Loss', describe: 'classification loss' },
  { key: 'box_loss', kind: 'enum', default: 'smoothl1', choices: ['smoothl1', 'giou'], group: 'Loss', describe: 'box regression loss' },
  { key: 'cls_loss_weight', kind: 'number', default: 1.0, min: 0, group: 'Loss', describe: 'weight of the classification loss in the total' },
  { key: 'focal_gamma', kind: 'number', default: 2.0, min: 0, group: 'Loss', describe: 'focal loss gamma' },
  // Inference (validation)
  { key: 'score_thresh', kind: 'number', default: 0.02, min: 0, group: 'Inference', describe: 'detections below this score are dropped' },
  { key: 'nms_thresh', kind: 'number', default: 0.22, min: 0, group: 'Inference', describe: 'NMS IoU threshold' },
  { key: 'detections_per_img', kind: 'int', default: 100, min: 1, group: 'Inference', describe: 'maximum detections per image' },
  { key: 'topk_candidates_per_level', kind: 'int', default: 1000, min: 1, group: 'Inference', describe: 'candidates kept per level before NMS' },
  { key: 'val_overlap', kind: 'number', default: 0.25, min: 0, group: 'Inference', describe: 'sliding-window overlap during validation' },
  // Run
  { key: 'resume', kind: 'string', default: null, group: 'Run', cliOnly: true, describe: 'resume from a checkpoint (path, or "last" in output_dir)' },
  { key: 'config', kind: 'string', default: null, group: 'Run', cliOnly: true, describe: 'JSON file with any of these options (snake_case keys)' },
  { key: 'multi_gpu', kind: 'bool', default: false, group: 'Run', cliOnly: true, describe: 'deprecated: accepted for compatibility; use `detseg3d launch`' },
];

/** snake_case -> camelCase. */
export function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** snake_case -> kebab-case. */
export function kebab(key: string): string {
  return key.replace(/_/g, '-');
}

export type Int3 = [number, number, number];

/** Resolved training options (camelCase). */
export interface TrainConfig {
  imageDir: string | null;
  labelDir: string | null;
  datalist: string | null;
  dataBaseDir: string | null;
  gtBoxMode: 'cccwhd' | 'xyzxyz';
  valFraction: number;
  spacing: number[] | null;
  intensity: 'ct' | 'zscore';
  aMin: number;
  aMax: number;
  minSize: number;
  keepEmpty: boolean;
  workers: number | null;
  outputDir: string;
  batchSize: number;
  patchSize: Int3;
  valPatchSize: Int3;
  epochs: number;
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  lrStep: number;
  lrGamma: number;
  warmupEpochs: number;
  valInterval: number;
  checkpointInterval: number;
  amp: boolean;
  precision: 'fp16' | 'bf16' | 'fp32' | null;
  seed: number;
  device: 'cpu' | 'cuda';
  syncBn: boolean;
  augment: boolean;
  depth: number;
  widths: number[];
  fpnChannels: number;
  returnedLayers: number[];
  conv1TStride: Int3;
  nInputChannels: number;
  numClasses: number;
  baseAnchorShapes: Int3[];
  atssNumCandidates: number;
  atssCenterInGt: boolean;
  batchSizePerImage: number;
  positiveFraction: number;
  minNeg: number;
  poolSize: number;
  clsLoss: 'focal' | 'bce';
  boxLoss: 'smoothl1' | 'giou';
  clsLossWeight: number;
  focalGamma: number;
  scoreThresh: number;
  nmsThresh: number;
  detectionsPerImg: number;
  topkCandidatesPerLevel: number;
  valOverlap: number;
}

/** A usage error: the CLI prints its message on one line and exits with code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const SPEC_BY_KEY = new Map(TRAIN_OPTIONS.map((o) => [o.key, o]));
const SPEC_BY_CAMEL = new Map(TRAIN_OPTIONS.map((o) => [camel(o.key), o]));

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function suggest(key: string): string {
  let best = '';
  let bestD = Infinity;
  for (const o of TRAIN_OPTIONS) {
    const dist = editDistance(key, o.key);
    if (dist < bestD) {
      bestD = dist;
      best = o.key;
    }
  }
  return bestD <= Math.max(2, key.length / 3) ? ` (did you mean '${best}'?)` : '';
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/** Checks and normalises one value against its spec; throws ConfigError naming the option. */
export function coerceOption(spec: OptionSpec, value: unknown, source: string): unknown {
  const name = `${source === 'cli' ? '--' : ''}${spec.key}`;
  const where = source === 'cli' ? '' : ` in ${source}`;
  if (value === null || value === undefined) return spec.default;
  const checkMin = (v: number) => {
    if (spec.min === undefined) return;
    if (spec.minExclusive ? !(v > spec.min) : !(v >= spec.min))
      throw new ConfigError(`${name}${where} must be ${spec.minExclusive ? '>' : '>='} ${spec.min}, got ${v}`);
  };
  switch (spec.kind) {
    case 'int':
      if (!isInt(value)) throw new ConfigError(`${name}${where} must be an integer, got ${JSON.stringify(value)}`);
      checkMin(value);
      return value;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value))
        throw new ConfigError(`${name}${where} must be a number, got ${JSON.stringify(value)}`);
      checkMin(value);
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw new ConfigError(`${name}${where} must be true or false, got ${JSON.stringify(value)}`);
      return value;
    case 'string':
      if (typeof value !== 'string' || value.length === 0)
        throw new ConfigError(`${name}${where} must be a non-empty string, got ${JSON.stringify(value)}`);
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.choices!.includes(value))
        throw new ConfigError(`${name}${where} must be one of ${spec.choices!.join(', ')}, got ${JSON.stringify(value)}`);
      return value;
    case 'int3':
    case 'intList': {
      const arr = Array.isArray(value) ? value : [value];
      if (spec.kind === 'int3' && arr.length !== 3)
        throw new ConfigError(`${name}${where} needs 3 values (x y z), got ${arr.length}: ${JSON.stringify(value)}`);
      const numeric = spec.key === 'spacing';
      for (const v of arr) {
        if (numeric ? typeof v !== 'number' || !(v > 0) : !isInt(v))
          throw new ConfigError(`${name}${where} must contain ${numeric ? 'positive numbers' : 'integers'}, got ${JSON.stringify(value)}`);
        if (!numeric) checkMin(v);
      }
      if (numeric && arr.length !== 3) throw new ConfigError(`${name}${where} needs 3 values (x y z), got ${arr.length}`);
      if (arr.length === 0) throw new ConfigError(`${name}${where} must not be empty`);
      return [...arr];
    }
    case 'shapeList': {
      if (!Array.isArray(value) || value.length === 0 || !value.every((s) => Array.isArray(s) && s.length === 3 && s.every((v) => typeof v === 'number' && v > 0)))
        throw new ConfigError(`${name}${where} must be a list of [x, y, z] shapes with positive sizes, got ${JSON.stringify(value)}`);
      return value.map((s: number[]) => [...s]);
    }
  }
}

/** Reads a --config JSON file: snake_case keys (camelCase accepted), unknown keys rejected. */
export function parseConfigObject(obj: unknown, source: string): Partial<TrainConfig> {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    throw new ConfigError(`${source} must contain a JSON object of options`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const spec = SPEC_BY_KEY.get(k) ?? SPEC_BY_CAMEL.get(k);
    if (!spec || spec.cliOnly) throw new ConfigError(`unknown key '${k}' in ${source}${suggest(k)}`);
    out[camel(spec.key)] = coerceOption(spec, v, source);
  }
  return out as Partial<TrainConfig>;
}

export function defaultTrainConfig(): TrainConfig {
  const out: Record<string, unknown> = {};
  for (const o of TRAIN_OPTIONS) if (!o.cliOnly) out[camel(o.key)] = structuredClone(o.default);
  return out as unknown as TrainConfig;
}

/**
 * Layers: defaults < config file < explicit overrides (CLI flags or the
 * library caller's object). Cross-option checks happen here too.
 */
export function resolveTrainConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const cfg = defaultTrainConfig() as unknown as Record<string, unknown>;
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      const spec = SPEC_BY_CAMEL.get(k);
      if (!spec || spec.cliOnly) throw new ConfigError(`unknown training option '${k}'`);
      cfg[k] = coerceOption(spec, v, 'options');
    }
  }
  const c = cfg as unknown as TrainConfig;
  if (![10, 18, 34, 50, 101, 152, 200].includes(c.depth))
    throw new ConfigError(`depth must be one of 10, 18, 34, 50, 101, 152, 200, got ${c.depth}`);
  if (c.widths.length !== 4) throw new ConfigError(`widths needs 4 values (one per ResNet layer), got ${c.widths.length}`);
  if (!c.returnedLayers.every((l) => l >= 1 && l <= 4) || new Set(c.returnedLayers).size !== c.returnedLayers.length)
    throw new ConfigError(`returned_layers must be distinct values in 1..4, got ${JSON.stringify(c.returnedLayers)}`);
  if (c.valFraction >= 1) throw new ConfigError(`val_fraction must be < 1, got ${c.valFraction}`);
  if (c.aMax <= c.aMin) throw new ConfigError(`a_max (${c.aMax}) must be greater than a_min (${c.aMin})`);
  if (c.positiveFraction >= 1) throw new ConfigError(`positive_fraction must be < 1, got ${c.positiveFraction}`);
  if (c.amp === false && (c.precision === 'fp16' || c.precision === 'bf16'))
    throw new ConfigError(`--no-amp contradicts --precision ${c.precision}; give one of them (--precision alone decides)`);
  return c;
}

/**
 * The compute precision a CUDA run uses: --precision when given, else fp16
 * with --amp (the default) and fp32 with --no-amp. CPU runs are float32 whatever this says.
 */
export function computePrecision(c: Pick<TrainConfig, 'amp' | 'precision'>): 'fp16' | 'bf16' | 'fp32' {
  return c.precision ?? (c.amp ? 'fp16' : 'fp32');
}

/** The options that a checkpoint must agree on to load weights (the model's structure). */
export const MODEL_KEYS = [
  'depth', 'widths', 'fpnChannels', 'returnedLayers', 'conv1TStride', 'nInputChannels', 'numClasses', 'baseAnchorShapes',
] as const;

/** Back to snake_case for files (checkpoint metadata, the resolved config written to output_dir). */
export function toSnakeCase(cfg: Partial<TrainConfig>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg)) {
    const spec = SPEC_BY_CAMEL.get(k);
    out[spec ? spec.key : k] = v;
  }
  return out;
}
