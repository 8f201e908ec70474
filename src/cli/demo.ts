// `detseg3d synth` and `detseg3d demo`: synthetic CT-like data, and a small
// end-to-end run (generate → train a reduced RetinaNet on the CPU → validate
// on held-out cases → print the metrics and where everything is).
import { join, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { writeSynthDataset } from '../data/synth.js';
import { ConfigError, resolveTrainConfig, type TrainConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import { printEvent } from './train_cmd.js';

/** The demo's reduced model and schedule: small enough for a 2-core CPU in minutes. */
export function demoConfig(dataDir: string, outputDir: string, overrides: Partial<TrainConfig> = {}): TrainConfig {
  return resolveTrainConfig({
    imageDir: join(dataDir, 'images'),
    labelDir: join(dataDir, 'labels'),
    outputDir,
    depth: 10,
    widths: [16, 32, 64, 128],
    fpnChannels: 32,
    returnedLayers: [1, 2],
    conv1TStride: [2, 2, 1],
    baseAnchorShapes: [[6, 6, 4], [8, 8, 5], [10, 10, 6]],
    patchSize: [48, 48, 24],
    valPatchSize: [64, 64, 32],
    batchSize: 2,
    epochs: 80,
    lr: 0.01,
    lrStep: 60,
    valInterval: 20,
    valFraction: 0.25,
    checkpointInterval: 10,
    seed: 0,
    ...overrides,
  });
}

export function synthCommand(y: Argv) {
  return y.command(
    'synth',
    'Write a synthetic CT-like dataset (images/ + labels/ NIfTI) with ellipsoid lesions',
    (yy) =>
      yy
        .option('out', { type: 'string', demandOption: true, describe: 'output folder' })
        .option('cases', { type: 'number', default: 20, describe: 'number of cases' })
        .option('seed', { type: 'number', default: 0, describe: 'random seed' })
        .option('size', { type: 'number', array: true, describe: 'volume size in voxels (x y z)', defaultDescription: '96 96 48' }),
    async (args) => {
      const size = args.size as number[] | undefined;
      if (size && (size.length !== 3 || size.some((v) => !(Number.isInteger(v) && v >= 16))))
        throw new ConfigError('--size needs 3 integers >= 16 (x y z)');
      if (!(Number.isInteger(args.cases) && args.cases >= 1)) throw new ConfigError('--cases must be a positive integer');
      await writeSynthDataset(args.out, { cases: args.cases, seed: args.seed, size: size as [number, number, number] | undefined });
      console.log(`wrote ${args.cases} cases to ${resolve(args.out)} (images/, labels/, synth.json)`);
    },
  );
}

export function demoCommand(y: Argv) {
  return y.command(
    'demo',
    'Generate synthetic data, train a small detector on the CPU, validate it (a few minutes)',
    (yy) =>
      yy
        .option('dir', { type: 'string', default: './detseg3d-demo', describe: 'working folder (data/ and outputs/)' })
        .option('cases', { type: 'number', default: 32, describe: 'synthetic cases (a quarter held out for validation)' })
        .option('epochs', { type: 'number', describe: 'training epochs', defaultDescription: '80' })
        .option('quiet', { type: 'boolean', describe: 'no progress bars' }),
    async (args) => {
      const dir = resolve(args.dir);
      const dataDir = join(dir, 'data');
      const outDir = join(dir, 'outputs');
      const t0 = performance.now();
      console.log(`detseg3d demo: generating ${args.cases} synthetic CT-like cases in ${dataDir}`);
      await writeSynthDataset(dataDir, { cases: args.cases, seed: 1, size: [64, 64, 32] });
      const cfg = demoConfig(dataDir, outDir, args.epochs ? { epochs: args.epochs } : {});
      console.log(
        `training a ResNet${cfg.depth} RetinaNet (widths ${cfg.widths.join('/')}, FPN ${cfg.fpnChannels}) on ${cfg.patchSize.join('x')} patches for ${cfg.epochs} epochs on the CPU`,
      );
      const r = await train(cfg, { progress: !args.quiet, onProgress: printEvent });
      const secs = (performance.now() - t0) / 1000;
      console.log('');
      console.log(`held-out validation (${r.lastValidation?.caseIds.length ?? 0} cases): ${r.lastValidation?.headline ?? 'n/a'}`);
      console.log(`best model:  ${join(r.outputDir, 'best_model.safetensors')}`);
      console.log(`last model:  ${join(r.outputDir, 'last.safetensors')}`);
      console.log(`logs:        ${join(r.outputDir, 'log.jsonl')}, TensorBoard: tensorboard --logdir ${join(r.outputDir, 'tensorboard')}`);
      console.log(`data:        ${dataDir}`);
      console.log(`total time:  ${(secs / 60).toFixed(1)} min`);
    },
  );
}
