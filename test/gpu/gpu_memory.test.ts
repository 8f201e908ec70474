// GPU memory controls through the addon. On a machine without a usable GPU
// (the CI default) the statistics are all zero and synchronising fails with a
// clear Error; with a GPU, synchronising succeeds and the counters are
// consistent (reserved >= allocated, peak >= allocated).
import { describe, expect, it } from 'vitest';
import { info } from '../../src/info.js';
import { emptyCache, gpuMemoryStats, gpuSynchronize, resetGpuPeakMemory } from '../../src/gpu.js';

const hasGpu = info().gpus.length > 0;

describe('GPU memory controls', () => {
  it('reports consistent allocator statistics', () => {
    const s = gpuMemoryStats();
    expect(s.device).toBe(0);
    for (const k of ['allocatedBytes', 'reservedBytes', 'peakAllocatedBytes', 'numAllocs', 'numCudaMallocs'] as const)
      expect(s[k]).toBeGreaterThanOrEqual(0);
    expect(s.reservedBytes).toBeGreaterThanOrEqual(s.allocatedBytes);
    expect(s.peakAllocatedBytes).toBeGreaterThanOrEqual(s.allocatedBytes);
    expect(s.allocatedBytes).toBeGreaterThanOrEqual(s.requestedBytes);
    if (!hasGpu) {
      // Nothing was ever allocated on a GPU, and no device figures are reported.
      expect(s.numAllocs).toBe(0);
      expect(s.reservedBytes).toBe(0);
      expect(s.deviceTotalBytes).toBeUndefined();
    } else {
      expect(s.deviceTotalBytes).toBeGreaterThan(0);
    }
  });

  it('emptyCache and resetGpuPeakMemory never throw; bad indices do', () => {
    expect(() => emptyCache()).not.toThrow();
    expect(() => emptyCache(0)).not.toThrow();
    expect(() => resetGpuPeakMemory()).not.toThrow();
    expect(() => gpuMemoryStats(-1)).toThrow(/device index must be >= 0/);
  });

  it('synchronises a usable GPU and explains a missing one', () => {
    if (hasGpu) {
      expect(() => gpuSynchronize(0)).not.toThrow();
    } else {
      expect(() => gpuSynchronize(0)).toThrow(/no GPU is usable|no CUDA support/);
    }
  });
});
