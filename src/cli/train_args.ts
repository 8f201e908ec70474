// Turns the option table of src/train/config.ts into yargs options (both
// --snake_case and --kebab-case spellings) and parsed arguments back into a
// TrainConfig: defaults < --config file < flags given on the command line.
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Argv } from 'yargs';
import {
  ConfigError,
  TRAIN_OPTIONS,
  camel,
  coerceOption,
  kebab,
  parseConfigObject,
  resolveTrainConfig,
  type OptionSpec,
  type TrainConfig,
} from '../train/config.js';

function yargsType(spec: OptionSpec): 'string' | 'number' | 'boolean' {
  switch (spec.kind) {
    case 'bool':
      return 'boolean';
    case 'string':
    case 'enum':
    case 'shapeList':
      return 'string';
    default:
      return 'number';
  }
}

function defaultText(spec: OptionSpec): string | undefined {
  if (spec.default === null || spec.default === undefined) return undefined;
  if (spec.kind === 'shapeList') return (spec.default as number[][]).map((s) => s.join(',')).join(' ');
  if (Array.isArray(spec.default)) return (spec.default as unknown[]).join(' ');
  return String(spec.default);
}

/** Adds the training options (no yargs defaults: layering is done by trainConfigFromArgs). */
export function addTrainOptions<T>(y: Argv<T>, only?: (spec: OptionSpec) => boolean): Argv<T> {
  let out = y;
  for (const spec of TRAIN_OPTIONS) {
    if (only && !only(spec)) continue;
    const alias = kebab(spec.key) !== spec.key ? [kebab(spec.key)] : [];
    out = out.option(spec.key, {
      alias,
      type: yargsType(spec),
      array: spec.kind === 'int3' || spec.kind === 'intList' || spec.kind === 'shapeList' ? true : undefined,
      choices: spec.kind === 'enum' ? [...spec.choices!] : undefined,
      describe: spec.describe + (spec.kind === 'shapeList' ? ' (e.g. 6,8,4 8,6,5)' : ''),
      defaultDescription: defaultText(spec),
      group: `${spec.group}:`,
    }) as Argv<T>;
  }
  return out;
}

function cliValue(spec: OptionSpec, raw: unknown): unknown {
  if (spec.kind === 'shapeList') {
    const items = (raw as unknown[]).map(String);
    return items.map((s) => {
      const parts = s.split(/[,x]/).map(Number);
      if (parts.length !== 3 || parts.some((v) => !Number.isFinite(v)))
        throw new ConfigError(`--${spec.key} expects shapes like 6,8,4; got '${s}'`);
      return parts;
    });
  }
  if ((spec.kind === 'int3' || spec.kind === 'intList') && Array.isArray(raw)) {
    if (raw.some((v) => typeof v !== 'number' || Number.isNaN(v)))
      throw new ConfigError(`--${spec.key} expects numbers, got ${raw.join(' ')}`);
  }
  if ((spec.kind === 'int' || spec.kind === 'number') && Number.isNaN(raw))
    throw new ConfigError(`--${spec.key} expects a number`);
  return raw;
}

/** Reads a JSON config file; ConfigError for unreadable, invalid or unknown keys. */
export function readConfigFile(path: string): Partial<TrainConfig> {
  if (!existsSync(path)) throw new ConfigError(`--config file not found: ${path}`);
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`--config ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseConfigObject(obj, path);
}

/** The resolved configuration from parsed yargs arguments. */
export function trainConfigFromArgs(args: Record<string, unknown>): TrainConfig {
  const fileLayer = typeof args.config === 'string' ? readConfigFile(args.config) : {};
  const cliLayer: Record<string, unknown> = {};
  for (const spec of TRAIN_OPTIONS) {
    if (spec.cliOnly) continue;
    const raw = args[spec.key];
    if (raw === undefined) continue;
    cliLayer[camel(spec.key)] = coerceOption(spec, cliValue(spec, raw), 'cli');
  }
  return resolveTrainConfig(fileLayer, cliLayer as Partial<TrainConfig>);
}

/** Checks that the data source exists; ConfigError naming what is missing. */
export function checkDataSource(cfg: TrainConfig): void {
  const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();
  if (cfg.datalist) {
    if (!existsSync(cfg.datalist)) throw new ConfigError(`--datalist file not found: ${cfg.datalist}`);
    return;
  }
  if (!cfg.imageDir || !cfg.labelDir)
    throw new ConfigError('give --image_dir and --label_dir (or --datalist) to say where the training data is');
  if (!isDir(cfg.imageDir)) throw new ConfigError(`--image_dir is not a folder: ${cfg.imageDir}`);
  if (!isDir(cfg.labelDir)) throw new ConfigError(`--label_dir is not a folder: ${cfg.labelDir}`);
}
