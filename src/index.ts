// detseg3d: the typed public face of the library.
export { Tensor, xyzToDims, dimsToXyz, volumeTensorShape } from './tensor.js';
export type { DType, TypedArray, Triple } from './tensor.js';
export * as ops from './ops.js';
export type { Conv3dOptions, Conv3dBackwardOptions, Conv3dGrads, PerAxis } from './ops.js';
export { info, setNumThreads, setSimdLevel, memoryStats, resetPeakMemory } from './info.js';
export type { BuildInfo, GpuInfo, MemoryStats } from './info.js';
