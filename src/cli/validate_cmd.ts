// `detseg3d validate`: metrics of a checkpoint on every case of a dataset.
import { existsSync, writeFileSync } from 'node:fs';
import { listFolderDataset, loadDatalist, type CaseSource } from '../data/dataset.js';
import { createValidationLoader } from '../data/loader.js';
import { Detector } from '../infer/detector.js';
import type { Triple } from '../tensor.js';
import { ConfigError } from '../train/config.js';
import { intensityOf } from '../train/data.js';
import { validate } from '../train/validate.js';

interface ValidateArgs {
  model: string;
  image_dir?: string;
  label_dir?: string;
  datalist?: string;
  val_patch_size?: number[];
  workers?: number;
  json?: string;
}

function cases(args: ValidateArgs, gtBoxMode: 'cccwhd' | 'xyzxyz'): CaseSource[] {
  if (args.datalist) {
    if (!existsSync(args.datalist)) throw new ConfigError(`--datalist not found: ${args.datalist}`);
    try {
      return loadDatalist(args.datalist, { key: 'validation', gtBoxMode });
    } catch (e) {
      if (!/no "validation" list/.test((e as Error).message)) throw e;
      return loadDatalist(args.datalist, { key: 'training', gtBoxMode });
    }
  }
  if (!args.image_dir || !args.label_dir) throw new ConfigError('give --image_dir and --label_dir, or --datalist');
  if (!existsSync(args.image_dir)) throw new ConfigError(`--image_dir not found: ${args.image_dir}`);
  if (!existsSync(args.label_dir)) throw new ConfigError(`--label_dir not found: ${args.label_dir}`);
  return listFolderDataset('', { imagesDir: args.image_dir, labelsDir: args.label_dir });
}

export async function runValidation(args: ValidateArgs): Promise<void> {
  const det = await Detector.load(args.model);
  const cfg = { ...det.config };
  if (args.val_patch_size) {
    const v = args.val_patch_size;
    if (v.length !== 3 || v.some((x) => !(Number.isInteger(x) && x >= 1))) throw new ConfigError('--val_patch_size needs 3 positive integers');
    cfg.valPatchSize = v as Triple;
  }
  const list = cases(args, cfg.gtBoxMode);
  const loader = await createValidationLoader({
    cases: list, orientation: 'RAS', spacing: cfg.spacing ?? undefined, minSize: cfg.minSize, intensity: intensityOf(cfg),
    workers: args.workers ?? 1,
  });
  try {
    const r = await validate(det.models[0], loader, cfg, (done, total) => process.stdout.write(`\rvalidating ${done}/${total}`));
    process.stdout.write('\n');
    console.log(`${r.caseIds.length} cases in ${r.seconds.toFixed(1)} s: ${r.headline}`);
    for (const [k, v] of Object.entries(r.metrics)) if (!k.startsWith('lesion_')) console.log(`  ${k}: ${v.toFixed(4)}`);
    if (args.json) writeFileSync(args.json, JSON.stringify(r.metrics, null, 2) + '\n');
  } finally {
    await loader.close();
  }
}
