// CUDA training options that can be checked without a GPU: --amp / --precision
// precedence (config, CLI), the fail-fast error of --device cuda when CUDA or
// a GPU is missing, the dynamic loss-scaling policy (hand-worked sequences)
// and its state's round trip through a checkpoint's trainer state.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { afterAll, describe, expect, it } from 'vitest';
import { addTrainOptions, trainConfigFromArgs } from '../../src/cli/train_args.js';
import { info } from '../../src/info.js';
import { RetinaNet } from '../../src/model/retinanet.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { ConfigError, computePrecision, parseConfigObject, resolveTrainConfig } from '../../src/train/config.js';
import { cudaUnavailableReason, resolveComputeDevice } from '../../src/train/device.js';
import { LossScaler } from '../../src/train/loss_scaler.js';
import { train } from '../../src/train/trainer.js';

const tmp = mkdtempSync(join(tmpdir(), 'detseg3d-cuda-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (argv: string[]) => trainConfigFromArgs(addTrainOptions(yargs(argv)).exitProcess(false).parseSync() as Record<string, unknown>);
const fakeGpu = { index: 0, name: 'Fake GPU', totalMemory: 80e9, computeCapability: '9.0', multiprocessors: 132 };

describe('--amp / --precision', () => {
  it('defaults to fp16 (amp on), --no-amp means fp32, --precision wins over the amp default', () => {
    expect(computePrecision(resolveTrainConfig({}))).toBe('fp16');
    expect(computePrecision(resolveTrainConfig({ amp: false }))).toBe('fp32');
    expect(computePrecision(resolveTrainConfig({ precision: 'bf16' }))).toBe('bf16');
    expect(computePrecision(resolveTrainConfig({ precision: 'fp32' }))).toBe('fp32');
    expect(computePrecision(resolveTrainConfig({ amp: false, precision: 'fp32' }))).toBe('fp32');
  });

  it('parses the command line and config files the same way', () => {
    expect(computePrecision(cli(['--precision', 'bf16']))).toBe('bf16');
    expect(computePrecision(cli(['--no-amp']))).toBe('fp32');
    expect(computePrecision(cli([]))).toBe('fp16');
    expect(parseConfigObject({ precision: 'fp16' }, 'c.json').precision).toBe('fp16');
    expect(() => parseConfigObject({ precision: 'fp8' }, 'c.json')).toThrow(/precision in c.json must be one of fp16, bf16, fp32/);
  });

  it('rejects --no-amp together with a 16-bit --precision', () => {
    expect(() => resolveTrainConfig({ amp: false, precision: 'bf16' })).toThrow(ConfigError);
    expect(() => cli(['--no-amp', '--precision', 'fp16'])).toThrow(/--no-amp contradicts --precision fp16/);
  });
});

describe('--device cuda', () => {
  const noCuda = { cudaCompiled: false, gpus: [], gpuNote: '' };
  const noGpu = { cudaCompiled: true, gpus: [], gpuNote: 'no CUDA driver' };
  const twoGpus = { cudaCompiled: true, gpus: [fakeGpu, { ...fakeGpu, index: 1 }], gpuNote: '' };

  it('says how to get CUDA when the build has none, and which GPU problem otherwise', () => {
    const cfg = resolveTrainConfig({ device: 'cuda' });
    expect(() => resolveComputeDevice(cfg, 0, noCuda)).toThrow(/no CUDA support.*nvcc/);
    expect(() => resolveComputeDevice(cfg, 0, noGpu)).toThrow(/no GPU is visible \(no CUDA driver\)/);
    expect(() => resolveComputeDevice(cfg, 0, noGpu)).toThrow(/--device cpu/);
  });

  it('picks cuda:LOCAL_RANK (modulo the visible GPUs) and the precision', () => {
    expect(resolveComputeDevice(resolveTrainConfig({ device: 'cuda' }), 3, twoGpus)).toEqual({
      device: 'cuda:1', precision: 'fp16', dtype: 'float16', lossScaling: true,
    });
    expect(resolveComputeDevice(resolveTrainConfig({ device: 'cuda', precision: 'bf16' }), 0, twoGpus)).toEqual({
      device: 'cuda:0', precision: 'bf16', dtype: 'bfloat16', lossScaling: false,
    });
    // The CPU computes in float32 whatever --amp says.
    expect(resolveComputeDevice(resolveTrainConfig({ device: 'cpu' }), 0, noCuda).precision).toBe('fp32');
  });

  const reason = cudaUnavailableReason(info());
  it.skipIf(reason === '')('train() fails fast on this machine, before reading any data', async () => {
    // No data options at all: the device check must come first.
    await expect(train({ device: 'cuda', outputDir: join(tmp, 'run') })).rejects.toThrow(/--device cuda: .*(CUDA|GPU)/);
  });

  it.skipIf(reason === '')('RetinaNet.to(cuda) and 16-bit precision on the CPU are refused with a reason', () => {
    const m = RetinaNet.create({ depth: 10, returnedLayers: [1], conv1TStride: [1, 1, 1], nInputChannels: 1, numClasses: 1, numAnchors: 1, widths: [4, 4, 4, 4], fpnChannels: 8, headGroups: 2 });
    expect(() => m.to('cuda')).toThrow(/CUDA|GPU/);
    expect(m.device).toBe('cpu');
    expect(() => m.setPrecision('float16')).toThrow(/GPU/);
    expect(m.computeDtype).toBe('float32');
  });
});

describe('LossScaler', () => {
  it('starts at 2^16, doubles after 2000 clean steps, halves and skips on inf/NaN', () => {
    const s = new LossScaler();
    expect(s.scale).toBe(65536);
    for (let i = 0; i < 1999; i++) expect(s.update(false)).toBe(true);
    expect(s.state()).toEqual({ scale: 65536, growthTracker: 1999 });
    s.update(false); // the 2000th clean step
    expect(s.state()).toEqual({ scale: 131072, growthTracker: 0 });
    for (let i = 0; i < 10; i++) s.update(false);
    expect(s.update(true)).toBe(false); // skipped
    expect(s.state()).toEqual({ scale: 65536, growthTracker: 0 }); // halved, count restarted
  });

  it('disabled (bf16/fp32): scale 1, inf/NaN still skips, nothing adapts', () => {
    const s = new LossScaler({ enabled: false });
    expect(s.scale).toBe(1);
    expect(s.update(true)).toBe(false);
    for (let i = 0; i < 2500; i++) s.update(false);
    expect(s.scale).toBe(1);
  });

  it('rejects invalid states', () => {
    const s = new LossScaler();
    expect(() => s.loadState({ scale: 0, growthTracker: 0 })).toThrow(/scale/);
    expect(() => s.loadState({ scale: 1024, growthTracker: 2000 })).toThrow(/growthTracker/);
  });

  it('round-trips through a checkpoint and continues identically', () => {
    const a = new LossScaler();
    for (let i = 0; i < 5; i++) a.update(true); // 2^16 / 2^5 = 2048
    for (let i = 0; i < 1234; i++) a.update(false);
    expect(a.state()).toEqual({ scale: 2048, growthTracker: 1234 });
    const path = join(tmp, 'ck');
    const weights = new Map([['w', { data: Float32Array.of(1, 2), shape: [2] }]]);
    // The trainer's state object carries the scaler state as `lossScaler`.
    saveCheckpoint(path, { weights, config: {}, epoch: 3 }, { trainerState: { epoch: 3, stepInEpoch: 7, globalStep: 100, bestMetric: null, bestEpoch: null, lossScaler: a.state() } });
    const st = loadCheckpoint(path).trainerState as { lossScaler: { scale: number; growthTracker: number } };
    const b = new LossScaler();
    b.loadState(st.lossScaler);
    expect(b.state()).toEqual(a.state());
    // 766 more clean steps reach 2000: both double at the same step.
    for (let i = 0; i < 765; i++) {
      a.update(false);
      b.update(false);
    }
    expect([a.scale, b.scale]).toEqual([2048, 2048]);
    a.update(false);
    b.update(false);
    expect([a.scale, b.scale]).toEqual([4096, 4096]);
  });
});
