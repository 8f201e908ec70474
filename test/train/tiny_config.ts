// The training configuration the end-to-end trainer tests share (one process
// in trainer.test.ts, two Gloo ranks in ddp.test.ts): the tiny ResNet-10 /
// FPN-16 RetinaNet on writeCubes' 32×32×16 cases, one patch per case, no
// augmentation, seed 3. Each test file passes its own valFraction and
// schedule through `extra`.
import { join } from 'node:path';
import type { TrainConfig } from '../../src/train/config.js';

/** Training options for the writeCubes dataset under `root`/data, writing to `out`. */
export function tinyTrainConfig(root: string, out: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> {
  return {
    imageDir: join(root, 'data', 'images'),
    labelDir: join(root, 'data', 'labels'),
    outputDir: out,
    depth: 10,
    widths: [8, 16, 32, 64],
    fpnChannels: 16,
    baseAnchorShapes: [[6, 6, 4], [8, 8, 5], [10, 10, 6]],
    patchSize: [32, 32, 16],
    valPatchSize: [32, 32, 16],
    batchSize: 2,
    workers: 0,
    augment: false,
    seed: 3,
    ...extra,
  };
}
