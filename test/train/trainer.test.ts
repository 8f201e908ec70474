// End-to-end training on tiny synthetic data: the loss falls and validation
// finds the lesions; resuming (after whole epochs or mid-epoch after a stop
// request) reproduces an uninterrupted run bit for bit; checkpoints, logs and
// TensorBoard files are written.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setNumThreads } from '../../src/info.js';
import { writeCubes } from './cubes.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { readJsonl } from '../../src/train/jsonl_log.js';
import { readEventFile } from '../../src/train/tensorboard.js';
import { train, type TrainEvent } from '../../src/train/trainer.js';
import type { TrainConfig } from '../../src/train/config.js';
import { tinyTrainConfig } from './tiny_config.js';

let root = '';

function tinyConfig(out: string, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> {
  return tinyTrainConfig(root, out, { valFraction: 0.25, ...extra });
}

beforeAll(async () => {
  setNumThreads(1); // bit-exact comparisons below
  root = mkdtempSync(join(tmpdir(), 'detseg3d-train-'));
  await writeCubes(join(root, 'data'), 24, 7);
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('train', () => {
  it('drives the loss down and detects the held-out lesions; writes checkpoints and logs', async () => {
    const out = join(root, 'run');
    const events: TrainEvent[] = [];
    const r = await train(tinyConfig(out, { epochs: 12, valInterval: 12, lr: 0.01 }), { onProgress: (e) => events.push(e) });
    const epochs = events.filter((e) => e.kind === 'epoch');
    expect(epochs).toHaveLength(12);
    expect(epochs[11].loss!).toBeLessThan(0.5 * epochs[0].loss!);
    expect(r.lastValidation).not.toBeNull();
    // 6 held-out cases with 1-2 bright cuboids each: a working detector finds them.
    expect(r.lastValidation!.metrics['AP_IoU_0.10_MaxDet_100']).toBeGreaterThan(0.5);
    const files = readdirSync(out);
    for (const f of ['last.safetensors', 'best_model.safetensors', 'checkpoint_epoch10.safetensors', 'config.json', 'log.jsonl'])
      expect(files).toContain(f);
    const log = readJsonl(join(out, 'log.jsonl'));
    expect(log.filter((l) => l.event === 'step')).toHaveLength(12 * 18);
    const tb = readdirSync(join(out, 'tensorboard'));
    const ev = readEventFile(join(out, 'tensorboard', tb[0]));
    const tags = new Set(ev.flatMap((e) => (e.scalars ?? []).map((s) => s.tag)));
    for (const t of ['train/loss', 'train/cls_loss', 'train/box_loss', 'train/lr', 'val/mAP_IoU_0.10_0.50_0.05_MaxDet_100']) expect(tags).toContain(t);
    const ck = loadCheckpoint(join(out, 'last'));
    expect(ck.epoch).toBe(12);
    expect(ck.config.depth).toBe(10);
  });

  it('resumes exactly: 4 epochs straight = 2 + resume 2 = stop mid-epoch + resume', async () => {
    const cfg = (out: string) => tinyConfig(out, { epochs: 4, valInterval: 100, lr: 0.01 });
    const straight = join(root, 'straight');
    await train(cfg(straight));

    const split = join(root, 'split');
    const first = await train(cfg(split), { maxEpochsThisRun: 2 });
    expect(first.epochsCompleted).toBe(2);
    await train({ ...cfg(split), resume: 'last' });

    const stopped = join(root, 'stopped');
    const ctrl = new AbortController();
    const r1 = await train(cfg(stopped), {
      signal: ctrl.signal,
      onProgress: (e) => {
        if (e.kind === 'step' && e.epoch === 2 && e.step === 4) ctrl.abort();
      },
    });
    expect(r1.stopped).toBe(true);
    expect(r1.epochsCompleted).toBe(1);
    await train({ ...cfg(stopped), resume: 'last' });

    const a = loadCheckpoint(join(straight, 'last'));
    for (const dir of [split, stopped]) {
      const b = loadCheckpoint(join(dir, 'last'));
      expect(b.epoch).toBe(4);
      expect([...b.weights.keys()]).toEqual([...a.weights.keys()]);
      for (const [name, t] of a.weights) expect(Array.from(b.weights.get(name)!.data), name).toEqual(Array.from(t.data));
      for (const [name, t] of a.optimizerState!) expect(Array.from(b.optimizerState!.get(name)!.data), name).toEqual(Array.from(t.data));
    }
  });

  it('refuses to resume a checkpoint of another model', async () => {
    const out = join(root, 'split');
    await expect(train({ ...tinyConfig(out, { epochs: 5, widths: [8, 16, 32, 32] }), resume: 'last' })).rejects.toThrow(/widths/);
    await expect(train({ ...tinyConfig(join(root, 'none'), { epochs: 5 }), resume: 'last' })).rejects.toThrow(/no checkpoint/);
  });
});
