// `detseg3d train` and `detseg3d validate`.
import type { Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readDistEnv } from '../dist/env.js';
import { trainArgsOf } from '../dist/gpu_launch.js';
import { relaunchTrainForGpus } from '../dist/launcher.js';
import type { TrainConfig } from '../train/config.js';
import { train, type TrainEvent } from '../train/trainer.js';
import { addTrainOptions, checkDataSource, trainConfigFromArgs } from './train_args.js';

export function printEvent(e: TrainEvent): void {
  if (e.kind === 'prepare' && e.done === e.total) console.log(`pre-processed and cached ${e.total} cases`);
  if (e.kind === 'checkpoint' || e.kind === 'stop' || e.kind === 'info') console.log(e.message);
  if (e.kind === 'validation') console.log(`validation epoch ${e.epoch}: ${e.message}`);
}

/**
 * Runs training with SIGINT/SIGTERM handling: the first signal finishes the
 * step and saves `last`. In a data-parallel job (the launcher forwards the
 * signal to every rank) the ranks agree on stopping at the same step, rank 0
 * saves, and only rank 0 prints.
 */
export async function runTraining(cfg: TrainConfig, resume: string | null, quiet = false): Promise<void> {
  const isMain = readDistEnv().rank === 0;
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals === 1) {
      if (isMain) console.error(`\n${sig}: finishing the current step and saving 'last' (send again to quit at once)`);
      controller.abort();
    } else process.exit(130);
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const r = await train({ ...cfg, resume }, { signal: controller.signal, progress: !quiet && isMain, onProgress: isMain ? printEvent : undefined });
    if (!isMain) return;
    console.log(
      r.stopped
        ? `stopped after epoch ${r.epochsCompleted}; resume with --resume last --output_dir ${cfg.outputDir}`
        : `done: ${r.epochsCompleted} epochs; best ${r.bestMetric === null ? 'n/a (no validation cases)' : r.bestMetric.toFixed(4)}` +
            `${r.bestEpoch ? ` at epoch ${r.bestEpoch}` : ''}; outputs in ${r.outputDir}`,
    );
    if (r.lastValidation) console.log(`last validation: ${r.lastValidation.headline}`);
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

export function trainCommand(y: Argv) {
  return y.command(
    'train',
    'Train a detector on images/ + labels/ (or a datalist)',
    (yy) =>
      addTrainOptions(yy)
        .option('gpus', { type: 'number', describe: 'train on N GPUs of this machine: shorthand for `detseg3d launch --nproc_per_node N -- train --device cuda ...` (N = 1: this process on cuda:0)', group: 'Run:' })
        .option('quiet', { type: 'boolean', describe: 'no progress bars', group: 'Run:' })
        .example('$0 train --image_dir data/images --label_dir data/labels', 'train with the MONAI LUNA16 defaults')
        .example('$0 train --config my.json --resume last', 'resume a run'),
    async (args) => {
      if (args.multi_gpu) console.warn('--multi_gpu is deprecated and ignored: use `detseg3d launch --nproc_per_node N -- train ...`');
      if (args.gpus !== undefined) {
        // --gpus N = `launch --nproc_per_node N -- train --device cuda ...` (checked against the visible GPUs first).
        const code = await relaunchTrainForGpus(trainArgsOf(hideBin(process.argv)), Number(args.gpus));
        if (code !== null) {
          process.exitCode = code;
          return;
        }
        (args as Record<string, unknown>).device = 'cuda'; // one GPU, or a rank of a job started otherwise
      }
      const cfg = trainConfigFromArgs(args as Record<string, unknown>);
      checkDataSource(cfg);
      await runTraining(cfg, typeof args.resume === 'string' ? args.resume : null, Boolean(args.quiet));
    },
  );
}

export function validateCommand(y: Argv) {
  return y.command(
    'validate',
    'COCO metrics of a checkpoint on a dataset (whole volumes, sliding windows)',
    (yy) =>
      yy
        .option('model', { type: 'string', demandOption: true, describe: 'checkpoint, e.g. outputs_detection/best_model' })
        .option('image_dir', { alias: 'image-dir', type: 'string', describe: 'images folder' })
        .option('label_dir', { alias: 'label-dir', type: 'string', describe: 'label masks folder' })
        .option('datalist', { type: 'string', describe: 'datalist JSON (its "validation" list, else "training")' })
        .option('val_patch_size', { alias: 'val-patch-size', type: 'number', array: true, describe: 'sliding-window size (x y z)' })
        .option('workers', { type: 'number', describe: 'loader threads' })
        .option('json', { type: 'string', describe: 'write the metrics to this JSON file' }),
    async (args) => {
      const { runValidation } = await import('./validate_cmd.js');
      await runValidation(args as never);
    },
  );
}
