import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  TRAIN_OPTIONS,
  camel,
  defaultTrainConfig,
  kebab,
  parseConfigObject,
  resolveTrainConfig,
  toSnakeCase,
} from '../../src/train/config.js';

describe('training configuration', () => {
  it('has the MONAI LUNA16 defaults', () => {
    const c = defaultTrainConfig();
    expect(c.patchSize).toEqual([192, 192, 80]);
    expect(c.valPatchSize).toEqual([512, 512, 208]);
    expect(c.batchSize).toBe(1);
    expect(c.lr).toBe(0.01);
    expect(c.baseAnchorShapes).toEqual([[6, 8, 4], [8, 6, 5], [10, 10, 6]]);
    expect(c.returnedLayers).toEqual([1, 2]);
    expect(c.conv1TStride).toEqual([2, 2, 1]);
    expect(c.depth).toBe(50);
    expect([c.scoreThresh, c.nmsThresh, c.detectionsPerImg]).toEqual([0.02, 0.22, 100]);
    expect([c.momentum, c.nesterov, c.weightDecay, c.lrStep, c.lrGamma]).toEqual([0.9, true, 3e-5, 50, 0.1]);
    expect(c.outputDir).toBe('./outputs_detection');
    expect(c.valInterval).toBe(5);
    expect(c.amp).toBe(true);
  });

  it('converts names between spellings', () => {
    expect(camel('conv1_t_stride')).toBe('conv1TStride');
    expect(kebab('val_patch_size')).toBe('val-patch-size');
    expect(toSnakeCase({ valPatchSize: [1, 2, 3], lr: 1 })).toEqual({ val_patch_size: [1, 2, 3], lr: 1 });
    // Every option has a distinct camelCase name.
    expect(new Set(TRAIN_OPTIONS.map((o) => camel(o.key))).size).toBe(TRAIN_OPTIONS.length);
  });

  it('layers config file values over defaults and overrides over both', () => {
    const file = parseConfigObject({ patch_size: [96, 96, 48], depth: 10, lr: 0.05 }, 'cfg.json');
    const c = resolveTrainConfig(file, { lr: 0.1 });
    expect(c.patchSize).toEqual([96, 96, 48]);
    expect(c.depth).toBe(10);
    expect(c.lr).toBe(0.1);
    expect(c.epochs).toBe(100);
  });

  it('rejects unknown keys with a suggestion, and bad values naming the option', () => {
    expect(() => parseConfigObject({ patch_sise: [1, 2, 3] }, 'cfg.json')).toThrow(
      /unknown key 'patch_sise' in cfg.json \(did you mean 'patch_size'\?\)/,
    );
    expect(() => parseConfigObject({ resume: 'x' }, 'cfg.json')).toThrow(/unknown key 'resume'/);
    expect(() => parseConfigObject({ patch_size: [96, 96] }, 'cfg.json')).toThrow(/patch_size in cfg.json needs 3 values/);
    expect(() => parseConfigObject({ patch_size: [96, 0, 48] }, 'cfg.json')).toThrow(/must be >= 1, got 0/);
    expect(() => parseConfigObject({ lr: 0 }, 'cfg.json')).toThrow(/lr in cfg.json must be > 0/);
    expect(() => parseConfigObject({ cls_loss: 'dice' }, 'c')).toThrow(/must be one of focal, bce/);
    expect(() => parseConfigObject([], 'c')).toThrow(ConfigError);
    expect(() => resolveTrainConfig({ depth: 42 })).toThrow(/depth must be one of 10, 18, 34, 50, 101, 152, 200/);
    expect(() => resolveTrainConfig({ returnedLayers: [1, 5] })).toThrow(/returned_layers/);
    expect(() => resolveTrainConfig({ aMin: 10, aMax: 0 })).toThrow(/a_max/);
  });
});
