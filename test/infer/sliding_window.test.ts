import { describe, expect, it } from 'vitest';
import { padVolume, slidingWindowHeads, windowOrigins, type HeadOutputs } from '../../src/infer/sliding_window.js';
import type { Int3 } from '../../src/train/config.js';

// A toy "network" with a receptive field confined to each output cell:
// level l (stride 2^(l+1) on every axis) outputs, per cell, the mean (class
// channel) and the max (box channel) of the input block it covers.
function blockPredictor(levels: number) {
  return async (win: Float32Array, roi: Int3): Promise<HeadOutputs> => {
    const out: HeadOutputs = { cls: [], box: [], sizes: [] };
    for (let l = 0; l < levels; l++) {
      const s = 2 ** (l + 1);
      const size: Int3 = [roi[0] / s, roi[1] / s, roi[2] / s];
      const cls = new Float32Array(size[0] * size[1] * size[2]);
      const box = new Float32Array(cls.length);
      for (let z = 0; z < size[2]; z++)
        for (let y = 0; y < size[1]; y++)
          for (let x = 0; x < size[0]; x++) {
            let sum = 0;
            let max = -Infinity;
            for (let dz = 0; dz < s; dz++)
              for (let dy = 0; dy < s; dy++)
                for (let dx = 0; dx < s; dx++) {
                  const v = win[((z * s + dz) * roi[1] + y * s + dy) * roi[0] + x * s + dx];
                  sum += v;
                  max = Math.max(max, v);
                }
            const i = (z * size[1] + y) * size[0] + x;
            cls[i] = sum / s ** 3;
            box[i] = max;
          }
      out.cls.push(cls);
      out.box.push(box);
      out.sizes.push(size);
    }
    return out;
  };
}

function randomVolume(dims: Int3, seed: number): Float32Array {
  let s = seed >>> 0;
  const v = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let i = 0; i < v.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = s / 2 ** 32;
  }
  return v;
}

describe('windowOrigins', () => {
  it('covers the axis with aligned origins and a flush last window', () => {
    // size 40, roi 16, overlap 0.25: interval = floor(12 / 4) * 4 = 12 -> 0, 12, then 24 = 40 - 16 (flush).
    expect(windowOrigins(40, 16, 0.25, 4)).toEqual([0, 12, 24]);
    // No overlap: interval 16 -> 0, 16, then 24 (flush; overlaps the previous window by 8).
    expect(windowOrigins(40, 16, 0, 8)).toEqual([0, 16, 24]);
    expect(windowOrigins(16, 16, 0.5, 4)).toEqual([0]);
    // Overlap 0.9 would give interval 1.6 -> at least one alignment step (4).
    expect(windowOrigins(24, 16, 0.9, 4)).toEqual([0, 4, 8]);
    expect(() => windowOrigins(8, 16, 0.25, 4)).toThrow(/larger than the volume/);
    expect(() => windowOrigins(32, 16, 1, 4)).toThrow(/overlap/);
  });
});

describe('slidingWindowHeads', () => {
  const dims: Int3 = [30, 20, 14];
  const vol = randomVolume(dims, 7);
  const common = { sizeDivisible: [4, 4, 4] as Int3, clsChannels: 1, boxChannels: 1 };

  it('equals the whole-volume output when one window covers the volume', async () => {
    const whole = await slidingWindowHeads(vol, dims, blockPredictor(2), { ...common, roi: [64, 64, 64], overlap: 0.25 });
    expect(whole.windows).toBe(1);
    expect(whole.paddedSize).toEqual([32, 20, 16]);
    // Direct evaluation of the predictor on the padded volume.
    const direct = await blockPredictor(2)(padVolume(vol, dims, [32, 20, 16]), [32, 20, 16]);
    for (let l = 0; l < 2; l++) {
      expect(whole.sizes[l]).toEqual(direct.sizes[l]);
      expect(Array.from(whole.cls[l])).toEqual(Array.from(direct.cls[l]));
      expect(Array.from(whole.box[l])).toEqual(Array.from(direct.box[l]));
    }
  });

  it('blends overlapping windows to the whole-volume result for a cell-local model (constant and gaussian)', async () => {
    const whole = await slidingWindowHeads(vol, dims, blockPredictor(2), { ...common, roi: [64, 64, 64], overlap: 0 });
    for (const mode of ['constant', 'gaussian'] as const) {
      const sw = await slidingWindowHeads(vol, dims, blockPredictor(2), { ...common, roi: [16, 8, 8], overlap: 0.5, mode });
      expect(sw.windows).toBeGreaterThan(8);
      for (let l = 0; l < 2; l++) {
        expect(sw.sizes[l]).toEqual(whole.sizes[l]);
        for (let i = 0; i < whole.cls[l].length; i++) {
          expect(sw.cls[l][i]).toBeCloseTo(whole.cls[l][i], 5);
          expect(sw.box[l][i]).toBeCloseTo(whole.box[l][i], 5);
        }
      }
    }
  });

  it('pads with the given value and rejects misaligned strides', async () => {
    const tiny: Int3 = [3, 3, 3];
    const res = await slidingWindowHeads(new Float32Array(27).fill(1), tiny, blockPredictor(1), {
      ...common,
      roi: [4, 4, 4],
      overlap: 0,
      padValue: -1,
    });
    // Padded to 4x4x4; the first 2x2x2 block is all inside the volume (mean 1),
    // the last one has 1 inside voxel and 7 padded voxels: mean (1 - 7) / 8.
    expect(res.cls[0][0]).toBeCloseTo(1, 6);
    expect(res.cls[0][7]).toBeCloseTo(-6 / 8, 6);
    // sizeDivisible 2 but a level with stride 4: windows at odd multiples of 2 cannot align.
    await expect(
      slidingWindowHeads(vol, dims, blockPredictor(2), { ...common, sizeDivisible: [2, 2, 2], roi: [6, 6, 6], overlap: 0.5 }),
    ).rejects.toThrow(/does not divide/);
  });
});
