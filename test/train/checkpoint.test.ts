import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointMismatchError, diffConfig, loadCheckpoint, packageVersion, saveCheckpoint } from '../../src/train/checkpoint.js';
import { readSafetensors } from '../../src/train/safetensors.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'ck-'));
const weights = () =>
  new Map([
    ['backbone.conv1.weight', { data: Float32Array.from({ length: 2 * 3 * 3 * 3 * 1 }, (_, i) => i / 7), shape: [2, 3, 3, 3, 1] }],
    ['head.cls.bias', { data: new Float32Array([-4.59, -4.59]), shape: [2] }],
  ]);
const config = { spatial_dims: 3, num_classes: 1, base_anchor_shapes: [[6, 8, 4]], model: { depth: 10, fpn: true } };

describe('checkpoints', () => {
  it('round-trips weights, metadata, optimizer and trainer state', () => {
    const dir = tmp();
    const p = saveCheckpoint(path.join(dir, 'model'), { weights: weights(), config, epoch: 7, bestMetric: 0.8125, extra: { note: 'x' } }, {
      optimizerState: { 'head.cls.bias.momentum': { data: new Float32Array([0.1, 0.2]), shape: [2] } },
      trainerState: { step: 1234, scheduler: { lr: 0.005, lastEpoch: 7 }, rng: [1, 2, 3, 4] },
    });
    expect(p.weights).toBe(path.join(dir, 'model.safetensors'));
    expect(fs.readdirSync(dir).sort()).toEqual(['model.optim.safetensors', 'model.safetensors', 'model.state.json']);
    const meta = readSafetensors(p.weights).metadata;
    expect(meta.format).toBe('detseg3d-checkpoint');
    expect(meta.detseg3d_version).toBe(JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
    expect(JSON.parse(meta.config)).toEqual(config);

    const ck = loadCheckpoint(path.join(dir, 'model.safetensors'), { expectConfig: config, expectShapes: { 'backbone.conv1.weight': [2, 3, 3, 3, 1], 'head.cls.bias': [2] } });
    expect(ck.epoch).toBe(7);
    expect(ck.bestMetric).toBe(0.8125);
    expect(ck.extra).toEqual({ note: 'x' });
    expect(ck.version).toBe(packageVersion());
    expect(Array.from(ck.weights.get('backbone.conv1.weight')!.data as Float32Array)).toEqual(Array.from(weights().get('backbone.conv1.weight')!.data));
    expect(Array.from(ck.optimizerState!.get('head.cls.bias.momentum')!.data as Float32Array)).toEqual([Math.fround(0.1), Math.fround(0.2)]);
    expect(ck.trainerState).toEqual({ step: 1234, scheduler: { lr: 0.005, lastEpoch: 7 }, rng: [1, 2, 3, 4] });

    // Saving again without state removes the stale companions.
    saveCheckpoint(path.join(dir, 'model'), { weights: weights(), config, epoch: 8, bestMetric: null });
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
    const ck2 = loadCheckpoint(path.join(dir, 'model'));
    expect(ck2.bestMetric).toBeNull();
    expect(ck2.optimizerState).toBeUndefined();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists every mismatch: missing, unexpected, shapes and config keys', () => {
    const dir = tmp();
    saveCheckpoint(path.join(dir, 'm'), { weights: weights(), config, epoch: 1 });
    let err: CheckpointMismatchError | undefined;
    try {
      loadCheckpoint(path.join(dir, 'm'), {
        expectShapes: { 'backbone.conv1.weight': [4, 3, 3, 3, 1], 'head.box.bias': [6] },
        expectConfig: { ...config, num_classes: 2, model: { depth: 10 }, batch_size: 4 },
      });
    } catch (e) {
      err = e as CheckpointMismatchError;
    }
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    expect(err!.missing).toEqual(['head.box.bias']);
    expect(err!.unexpected).toEqual(['head.cls.bias']);
    expect(err!.shapeMismatches).toEqual([{ name: 'backbone.conv1.weight', checkpoint: [2, 3, 3, 3, 1], expected: [4, 3, 3, 3, 1] }]);
    expect(err!.configDifferences).toEqual([
      'batch_size: missing in checkpoint (expected 4)',
      'model.fpn: only in checkpoint (= true)',
      'num_classes: checkpoint 1 vs expected 2',
    ]);
    expect(err!.message).toMatch(/shape of backbone\.conv1\.weight: checkpoint \[2, 3, 3, 3, 1\] vs model \[4, 3, 3, 3, 1\]/);
    expect(err!.message).toMatch(/missing in checkpoint \(1\): head\.box\.bias/);
    // ignored keys do not count
    expect(() => loadCheckpoint(path.join(dir, 'm'), { expectConfig: { ...config, num_classes: 2 }, ignoreConfigKeys: ['num_classes'] })).not.toThrow();
    expect(diffConfig({ a: [1, 2] }, { a: [1, 3] })).toEqual(['a: checkpoint [1,2] vs expected [1,3]']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a save that fails validation leaves the previous checkpoint (and its state) loadable', () => {
    const dir = tmp();
    const base = path.join(dir, 'm');
    saveCheckpoint(base, { weights: weights(), config, epoch: 3 }, { trainerState: { step: 30 }, optimizerState: { 'head.cls.bias.momentum': { data: new Float32Array(2), shape: [2] } } });
    const bad = weights();
    bad.set('head.cls.bias', { data: new Float32Array(3), shape: [2] });
    expect(() => saveCheckpoint(base, { weights: bad, config, epoch: 4 }, { trainerState: { step: 40 }, optimizerState: {} })).toThrow(/head\.cls\.bias/);
    expect(() => saveCheckpoint(base, { weights: weights(), config, epoch: 4 }, { trainerState: { step: 40n } })).toThrow(/BigInt/);
    const ck = loadCheckpoint(base);
    expect(ck.epoch).toBe(3);
    expect(ck.trainerState).toEqual({ step: 30 });
    expect(ck.optimizerState!.has('head.cls.bias.momentum')).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['m.optim.safetensors', 'm.safetensors', 'm.state.json']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('detects companions from another save and non-checkpoint files', () => {
    const dir = tmp();
    const base = path.join(dir, 'm');
    saveCheckpoint(base, { weights: weights(), config, epoch: 1 }, { trainerState: { step: 1 }, optimizerState: {} });
    const oldState = fs.readFileSync(`${base}.state.json`);
    saveCheckpoint(base, { weights: weights(), config, epoch: 2 }, { trainerState: { step: 2 }, optimizerState: {} });
    // Simulate a crash that left the previous save's trainer state beside the new weights.
    fs.writeFileSync(`${base}.state.json`, oldState);
    expect(() => loadCheckpoint(base)).toThrow(/state\.json belongs to another save/);
    expect(loadCheckpoint(base, { loadState: false }).epoch).toBe(2);
    fs.rmSync(`${base}.optim.safetensors`);
    expect(() => loadCheckpoint(base)).toThrow(/optim\.safetensors is missing/);
    expect(() => loadCheckpoint(path.join(dir, 'nope'))).toThrow(/nope\.safetensors does not exist/);
    fs.writeFileSync(path.join(dir, 'junk.safetensors'), 'not a file');
    expect(() => loadCheckpoint(path.join(dir, 'junk'))).toThrow(/junk\.safetensors/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
