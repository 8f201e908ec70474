// `detseg3d infer` (run a trained detector on volumes and export the boxes)
// and `detseg3d evaluate` (COCO metrics and LUNA16 FROC of a results file).
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { boxesFromSegmentation } from '../data/boxes_from_mask.js';
import { niftiStem } from '../data/dataset.js';
import { coco, formatHeadline } from '../eval/coco.js';
import { froc } from '../eval/froc.js';
import { groundTruthFromLuna16, predictionsFromResults, predictionsFromCsv } from '../eval/froc_inputs.js';
import { writeFrocPlot } from '../eval/plot.js';
import { Detector } from '../infer/detector.js';
import {
  boxesToWorld, readResultsCsv, readResultsJson, toResultEntry, writeResultsCsv, writeResultsJson, type ResultEntry, type WorldFrame,
} from '../infer/export.js';
import { labelMapVolume } from '../infer/mask.js';
import { writeDetectionPictures } from '../infer/pictures.js';
import { readNifti, writeNifti } from '../io/nifti.js';
import type { Triple } from '../tensor.js';
import { ConfigError } from '../train/config.js';
import { resolveComputeDevice } from '../train/device.js';

const NIFTI = /\.nii(\.gz)?$/i;

function listInputs(input: string): string[] {
  if (!existsSync(input)) throw new ConfigError(`--input not found: ${input}`);
  if (statSync(input).isDirectory()) {
    const files = readdirSync(input).filter((f) => NIFTI.test(f)).sort().map((f) => join(input, f));
    if (!files.length) throw new ConfigError(`--input ${input} holds no .nii or .nii.gz files`);
    return files;
  }
  return [input];
}

function triple(v: unknown, name: string): Triple | undefined {
  if (v === undefined) return undefined;
  const a = v as number[];
  if (!Array.isArray(a) || a.length !== 3 || a.some((x) => !(Number.isInteger(x) && x >= 1)))
    throw new ConfigError(`--${name} needs 3 positive integers (x y z)`);
  return a as Triple;
}

export function inferCommand(y: Argv) {
  return y.command(
    'infer',
    'Detect lesions in NIfTI volumes with a trained model; write JSON/CSV results, masks and pictures',
    (yy) =>
      yy
        .option('model', { type: 'string', array: true, demandOption: true, describe: 'checkpoint(s), e.g. outputs_detection/best_model; several = ensemble (merged by NMS)' })
        .option('input', { type: 'string', demandOption: true, describe: 'a .nii/.nii.gz file or a folder of them' })
        .option('output', { type: 'string', default: 'results.json', describe: 'results file: .json (MONAI layout) or .csv (LUNA16 columns)' })
        .option('device', { type: 'string', choices: ['cpu', 'cuda'], default: 'cpu' })
        .option('roi', { type: 'number', array: true, describe: 'sliding-window size (x y z)', defaultDescription: "the model's val_patch_size" })
        .option('overlap', { type: 'number', default: 0.25, describe: 'sliding-window overlap' })
        .option('blend', { type: 'string', choices: ['constant', 'gaussian'], default: 'constant', describe: 'window blending weights' })
        .option('score_thresh', { alias: 'score-thresh', type: 'number', describe: 'minimum score', defaultDescription: 'from the model (0.02)' })
        .option('nms_thresh', { alias: 'nms-thresh', type: 'number', describe: 'NMS IoU threshold', defaultDescription: 'from the model (0.22)' })
        .option('tta', { type: 'boolean', default: false, describe: 'test-time augmentation: average the 8 flips' })
        .option('batch', { type: 'number', default: 1, describe: 'windows per forward pass (accepted; windows run one at a time on the CPU)' })
        .option('coords', { type: 'string', choices: ['ras', 'lps'], default: 'lps', describe: 'world frame of exported boxes' })
        .option('save_mask', { alias: 'save-mask', type: 'boolean', default: false, describe: 'write <name>_boxes.nii.gz label maps beside the results' })
        .option('mask_threshold', { alias: 'mask-threshold', type: 'number', default: 0.5, describe: 'score threshold for masks and pictures' })
        .option('png', { type: 'string', describe: 'folder for PNG pictures of the detections' })
        .option('label_dir', { alias: 'label-dir', type: 'string', describe: 'ground-truth masks (same file names) drawn in the pictures' }),
    async (args) => {
      // --device cuda: fails fast without CUDA / a GPU; inference runs in float32 on cuda:0.
      const compute = resolveComputeDevice({ device: args.device as 'cpu' | 'cuda', amp: false, precision: 'fp32' });
      const files = listInputs(args.input);
      const roi = triple(args.roi, 'roi');
      const out = resolve(args.output);
      const ext = extname(out).toLowerCase();
      if (ext !== '.json' && ext !== '.csv') throw new ConfigError('--output must end in .json or .csv');
      const det = await Detector.load(args.model as string[]);
      if (compute.device !== 'cpu') for (const m of det.models) m.to(compute.device);
      const entries: ResultEntry[] = [];
      const failed: string[] = [];
      for (const file of files) {
        try {
          const r = await det.detect(file, {
            roi, overlap: args.overlap, mode: args.blend as 'constant' | 'gaussian', tta: args.tta,
            scoreThresh: args.score_thresh, nmsThresh: args.nms_thresh,
          });
          entries.push(toResultEntry(file, r.affine, r.detections, { coords: args.coords as WorldFrame }));
          const stem = niftiStem(basename(file));
          console.log(`${file}: ${r.detections.scores.length} detections (${r.detections.scores.filter((s) => s >= args.mask_threshold).length} with score >= ${args.mask_threshold}) in ${r.seconds.toFixed(1)} s`);
          if (args.save_mask) {
            const vol = labelMapVolume(r.dims, r.affine, r.detections, { scoreThreshold: args.mask_threshold });
            await writeNifti(join(dirname(out), `${stem}_boxes.nii.gz`), vol);
          }
          if (args.png) {
            const image = await readNifti(file);
            let gt: Float32Array | undefined;
            if (args.label_dir) {
              const lab = join(args.label_dir, basename(file));
              if (existsSync(lab)) gt = boxesFromSegmentation(await readNifti(lab)).boxes;
            }
            writeDetectionPictures(image, r.detections, args.png, stem, { scoreThreshold: args.mask_threshold, groundTruth: gt });
          }
        } catch (e) {
          failed.push(file);
          console.error(`${file}: ${(e as Error).message}`);
        }
      }
      mkdirSync(dirname(out), { recursive: true });
      if (ext === '.csv') writeResultsCsv(out, entries);
      else writeResultsJson(out, entries, args.coords as WorldFrame);
      console.log(`wrote ${out} (${entries.length} volumes${failed.length ? `, ${failed.length} failed` : ''})`);
      if (failed.length) process.exitCode = 1;
    },
  );
}

/** Ground truth from label masks as world (mm) boxes in the given frame, keyed by series uid. */
async function groundTruthFromMasks(dir: string, frame: WorldFrame) {
  const files = readdirSync(dir).filter((f) => NIFTI.test(f)).sort();
  const out = [];
  for (const f of files) {
    const mask = await readNifti(join(dir, f));
    const seg = boxesFromSegmentation(mask);
    const w = boxesToWorld(mask.affine, seg.boxes, frame);
    out.push({ id: niftiStem(f), boxes: Float64Array.from(w.corners), labels: seg.labels });
  }
  return out;
}

export function evaluateCommand(y: Argv) {
  return y.command(
    'evaluate',
    'COCO metrics and (with --froc) LUNA16 FROC/CPM of a results file against ground truth',
    (yy) =>
      yy
        .option('predictions', { type: 'string', demandOption: true, describe: 'results .json or .csv from `detseg3d infer`' })
        .option('label_dir', { alias: 'label-dir', type: 'string', describe: 'ground-truth masks named like the images' })
        .option('annotations', { type: 'string', describe: 'LUNA16 annotations.csv (alternative to --label_dir)' })
        .option('excluded', { type: 'string', describe: 'LUNA16 annotations_excluded.csv (ignored regions)' })
        .option('froc', { type: 'boolean', default: false, describe: 'also compute FROC sensitivities and CPM with bootstrap CIs' })
        .option('criterion', { type: 'string', choices: ['distance', 'iou'], default: 'distance', describe: 'FROC hit criterion' })
        .option('bootstraps', { type: 'number', default: 1000 })
        .option('plot', { type: 'string', describe: 'write the FROC curve as a PNG' })
        .option('json', { type: 'string', describe: 'write all metrics to this JSON file' }),
    async (args) => {
      if (!existsSync(args.predictions)) throw new ConfigError(`--predictions not found: ${args.predictions}`);
      if (!args.label_dir && !args.annotations) throw new ConfigError('give --label_dir (masks) or --annotations (LUNA16 CSV)');
      const isCsv = args.predictions.toLowerCase().endsWith('.csv');
      const json = isCsv ? null : readResultsJson(args.predictions);
      const preds = json ? predictionsFromResults(json) : predictionsFromCsv(readResultsCsv(args.predictions));
      const frame: WorldFrame = json ? json.coords : 'lps';
      const gts = args.label_dir
        ? await groundTruthFromMasks(args.label_dir, frame)
        : groundTruthFromLuna16(args.annotations!, { seriesuids: preds.map((p) => p.id), excluded: args.excluded });
      const byId = new Map(preds.map((p) => [p.id, p]));
      const missing = gts.filter((g) => !byId.has(g.id)).map((g) => g.id);
      if (missing.length) console.warn(`no predictions for ${missing.length} ground-truth case(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''} (counted as misses)`);
      const aligned = gts.map((g) => byId.get(g.id) ?? { id: g.id, boxes: new Float64Array(0), scores: new Float64Array(0) });
      const metrics: Record<string, unknown> = {};
      const cocoMetrics = coco(
        aligned.map((p) => ({ boxes: Float32Array.from(p.boxes), scores: Float32Array.from(p.scores), labels: Int32Array.from(p.labels ?? new Int32Array(p.scores.length)) })),
        gts.map((g) => ({ boxes: Float32Array.from(g.boxes), labels: Int32Array.from(g.labels ?? new Int32Array(g.boxes.length / 6)) })),
        { classes: ['lesion'], iouList: [0.1], maxDetection: [100] },
      );
      metrics.coco = cocoMetrics;
      console.log(`COCO (world boxes, ${gts.length} cases): ${formatHeadline(cocoMetrics)}`);
      if (args.froc) {
        const r = froc(aligned, gts, { criterion: args.criterion as 'distance' | 'iou', bootstraps: args.bootstraps, seed: 0 });
        metrics.froc = { fpRates: r.fpRates, sensitivity: r.sensitivity, cpm: r.cpm, counts: r.counts, bootstrap: r.bootstrap };
        console.log('FROC  ' + r.fpRates.map((f, i) => `${f}: ${r.sensitivity[i].toFixed(3)}`).join('  '));
        console.log(`CPM   ${r.cpm.toFixed(4)}${r.bootstrap ? ` (95% CI ${r.bootstrap.cpm.lower.toFixed(4)}–${r.bootstrap.cpm.upper.toFixed(4)})` : ''}`);
        if (args.plot) {
          writeFrocPlot(args.plot, r);
          console.log(`FROC curve: ${args.plot}`);
        }
      }
      if (args.json) {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(args.json, JSON.stringify(metrics, null, 2) + '\n');
      }
    },
  );
}
