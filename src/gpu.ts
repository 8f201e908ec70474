// GPU memory controls (the native caching allocator) and device
// synchronisation. All of them work on a machine without a GPU: statistics
// are zero, emptyCache does nothing, gpuSynchronize throws an Error saying why
// no GPU is usable.
import { native } from './native.js';

export interface GpuMemoryStats {
  device: number;
  /** Bucket bytes held by live tensors. */
  allocatedBytes: number;
  /** Bytes the live tensors asked for (allocatedBytes minus bucket rounding). */
  requestedBytes: number;
  /** Bytes obtained from the driver: live tensors plus the cache. */
  reservedBytes: number;
  peakAllocatedBytes: number;
  peakReservedBytes: number;
  numAllocs: number;
  /** cudaMalloc / cudaFree calls (the cache exists to keep these rare). */
  numCudaMallocs: number;
  numCudaFrees: number;
  cacheHits: number;
  /** Times a failed cudaMalloc made the allocator release its cache and retry. */
  oomRetries: number;
  cachedBlocks: number;
  /** Free / total memory of the device as the driver reports it (only when the device exists). */
  deviceFreeBytes?: number;
  deviceTotalBytes?: number;
}

/** Statistics of the caching allocator of GPU `device` (default 0). */
export function gpuMemoryStats(device = 0): GpuMemoryStats {
  return native.gpuMemoryStats(device);
}

/** Returns cached, unused GPU blocks to the driver (all devices when `device` is omitted). */
export function emptyCache(device?: number): void {
  native.emptyCache(device);
}

export function resetGpuPeakMemory(device = 0): void {
  native.resetGpuPeakMemory(device);
}

/** Waits until all queued work on the device's compute stream has finished (throws the first asynchronous error). */
export function gpuSynchronize(device = 0): void {
  native.gpuSynchronize(device);
}
