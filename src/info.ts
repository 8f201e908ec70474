import { native } from './native.js';

export interface GpuInfo {
  index: number;
  name: string;
  totalMemory: number;
  computeCapability: string;
  multiprocessors: number;
}

export interface BuildInfo {
  version: string;
  buildFlags: string;
  /** SIMD path the CPU kernels use now. */
  simd: 'scalar' | 'avx2' | 'avx512';
  /** Widest SIMD level this CPU supports. */
  simdSupported: 'scalar' | 'avx2' | 'avx512';
  threads: number;
  cudaCompiled: boolean;
  cudaRuntimeVersion: number;
  gpus: GpuInfo[];
  /** Why no GPU is listed, when none is. */
  gpuNote: string;
}

/** Version, build flags, CPU SIMD level, thread count, CUDA and GPUs. */
export function info(): BuildInfo {
  return native.info();
}

/** Number of CPU threads native kernels use (DETSEG3D_NUM_THREADS sets the initial value). */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

/** Restricts CPU kernels to a SIMD level (for testing every code path); cannot exceed the CPU's support. */
export function setSimdLevel(level: 'scalar' | 'avx2' | 'avx512'): void {
  native.setSimdLevel(level);
}

export interface MemoryStats {
  allocatedBytes: number;
  peakBytes: number;
  numAllocs: number;
}

/** Host memory held by native tensors (current and peak). */
export function memoryStats(): MemoryStats {
  return native.memoryStats();
}

export function resetPeakMemory(): void {
  native.resetPeakMemory();
}
