// Training and inference on CUDA through the TypeScript trainer, end to end:
// float32 steps on the GPU follow the CPU's steps, float16 (loss scaling) and
// bfloat16 runs train and checkpoint, and their weights load for inference on
// the CPU. Runs where the addon sees a GPU: a real one, or the CPU emulator
// (`DETSEG3D_CUDA=EMU` build, see native/emu/README.md; test/native_emu.test.ts
// runs this file against it). Skipped otherwise.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { info, setNumThreads } from '../../src/info.js';
import { Detector } from '../../src/infer/detector.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import type { TrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { writeCubes } from './cubes.js';
import { tinyTrainConfig } from './tiny_config.js';

const gpus = info().gpus.length;
let root = '';

beforeAll(async () => {
  if (!gpus) return;
  setNumThreads(1);
  root = mkdtempSync(join(tmpdir(), 'detseg3d-gpu-train-'));
  await writeCubes(join(root, 'data'), 6, 11, 1);
});
afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

async function stepLosses(out: string, extra: Partial<TrainConfig>): Promise<number[]> {
  const losses: number[] = [];
  await train(tinyTrainConfig(root, out, { valFraction: 0, valInterval: 100, lr: 0.01, ...extra }), {
    onProgress: (e) => {
      if (e.kind === 'step') losses.push(e.loss!);
    },
  });
  return losses;
}

describe.skipIf(!gpus)(`training on CUDA (${gpus ? info().gpus[0].name : 'no GPU'})`, () => {
  it('float32 steps on the GPU follow the CPU steps', async () => {
    const cpu = await stepLosses(join(root, 'cpu'), { epochs: 2, device: 'cpu' });
    const gpu = await stepLosses(join(root, 'gpu32'), { epochs: 2, device: 'cuda', precision: 'fp32' });
    expect(gpu).toHaveLength(cpu.length);
    expect(cpu.length).toBeGreaterThanOrEqual(6);
    // Same initial weights, data, anchors matches and sampler draws; only the
    // summation order differs, so the trajectories agree closely.
    for (let i = 0; i < cpu.length; ++i) expect(Math.abs(gpu[i] - cpu[i])).toBeLessThan(2e-3 * Math.abs(cpu[i]) + 1e-5);
  }, 1_800_000);

  it('inference on the GPU finds what the CPU finds', async () => {
    const image = join(root, 'data', 'images', 'case_00.nii.gz');
    const cpu = await Detector.load(join(root, 'cpu', 'last'));
    const gpu = await Detector.load(join(root, 'cpu', 'last'));
    for (const m of gpu.models) m.to('cuda:0');
    const a = (await cpu.detect(image, { scoreThresh: 0.05 })).detections;
    const b = (await gpu.detect(image, { scoreThresh: 0.05 })).detections;
    // Compare the confident detections (a score near the threshold could fall either side).
    const top = (d: typeof a) => [...d.scores].filter((s) => s > 0.1).length;
    expect(top(a)).toBeGreaterThan(0);
    expect(top(b)).toBe(top(a));
    for (let i = 0; i < top(a); ++i) {
      expect(Math.abs(b.scores[i] - a.scores[i])).toBeLessThan(1e-3);
      for (let k = 0; k < 6; ++k) expect(Math.abs(b.boxes[6 * i + k] - a.boxes[6 * i + k])).toBeLessThan(1e-2);
    }
  }, 1_800_000);

  it('float16 with loss scaling and bfloat16 train, checkpoint, and load on the CPU', async () => {
    for (const precision of ['fp16', 'bf16'] as const) {
      const out = join(root, precision);
      const losses = await stepLosses(out, { epochs: 2, device: 'cuda', precision });
      expect(losses.every(Number.isFinite)).toBe(true);
      const ck = loadCheckpoint(join(out, 'last'));
      const state = ck.trainerState as { lossScaler?: { scale: number } };
      if (precision === 'fp16') expect(state.lossScaler?.scale).toBeGreaterThan(0);
      else expect(state.lossScaler).toBeUndefined();
      for (const [, t] of ck.weights) expect((t.data as Float32Array).every(Number.isFinite)).toBe(true);
      const det = await Detector.load(join(out, 'last'));
      const r = await det.detect(join(root, 'data', 'images', 'case_00.nii.gz'));
      expect(r.detections.scores.every(Number.isFinite)).toBe(true);
    }
  }, 1_800_000);
});
