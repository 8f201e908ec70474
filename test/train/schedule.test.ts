import { describe, expect, it } from 'vitest';
import { learningRateAt } from '../../src/train/schedule.js';

describe('learningRateAt', () => {
  it('follows StepLR', () => {
    const s = { baseLr: 0.01, stepSize: 50, gamma: 0.1 };
    expect(learningRateAt(s, 0)).toBe(0.01);
    expect(learningRateAt(s, 49)).toBe(0.01);
    expect(learningRateAt(s, 50)).toBeCloseTo(0.001, 15);
    expect(learningRateAt(s, 100)).toBeCloseTo(0.0001, 15);
  });
  it('warms up linearly', () => {
    const s = { baseLr: 0.01, stepSize: 50, gamma: 0.1, warmupEpochs: 4 };
    expect([0, 1, 2, 3, 4].map((e) => learningRateAt(s, e))).toEqual([0.0025, 0.005, 0.0075, 0.01, 0.01]);
    expect(() => learningRateAt({ ...s, baseLr: 0 }, 0)).toThrow(/invalid learning-rate schedule/);
  });
});
