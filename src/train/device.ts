// Where and in which precision a run computes. `--device cuda` needs a build
// with CUDA (nvcc on the PATH when the addon was compiled) and a visible GPU;
// otherwise it fails before any data is read, saying which of the two is
// missing and how to get it. Each process of a data-parallel run uses
// cuda:LOCAL_RANK (modulo the GPUs it sees).
import type { DType } from '../tensor.js';
import { info as buildInfo, type BuildInfo } from '../info.js';
import { computePrecision, ConfigError, type TrainConfig } from './config.js';

export interface ComputeDevice {
  /** 'cpu' or 'cuda:<i>'. */
  device: 'cpu' | `cuda:${number}`;
  /** The precision the run computes in ('fp32' on the CPU whatever --amp / --precision say). */
  precision: 'fp16' | 'bf16' | 'fp32';
  /** The model's compute dtype for that precision. */
  dtype: DType;
  /** float16 needs dynamic loss scaling; bf16 and fp32 do not. */
  lossScaling: boolean;
}

const DTYPE = { fp16: 'float16', bf16: 'bfloat16', fp32: 'float32' } as const;

/** What the CUDA checks need to know about the machine (from `info()`); also --gpus's (src/dist/gpu_launch.ts). */
export type GpuVisibility = Pick<BuildInfo, 'cudaCompiled' | 'gpus' | 'gpuNote'>;

/** Why CUDA cannot be used here ('' when it can), from the addon's build info. */
export function cudaUnavailableReason(i: GpuVisibility): string {
  if (!i.cudaCompiled)
    return 'this build of detseg3d has no CUDA support: rebuild the native addon on a machine with the CUDA toolkit (nvcc on the PATH), e.g. `node scripts/build.js --native-only` (DETSEG3D_CUDA must not be OFF)';
  if (i.gpus.length === 0)
    return `no GPU is visible (${i.gpuNote || 'no CUDA device found'}); run on a machine with an NVIDIA GPU and driver, and check CUDA_VISIBLE_DEVICES`;
  return '';
}

/**
 * Resolves --device / --amp / --precision. `what` names the command in
 * messages ('--device cuda' by default). Throws ConfigError when CUDA is
 * asked for and unavailable.
 */
export function resolveComputeDevice(
  cfg: Pick<TrainConfig, 'device' | 'amp' | 'precision'>,
  localRank = 0,
  i: GpuVisibility = buildInfo(),
  what = '--device cuda',
): ComputeDevice {
  if (cfg.device !== 'cuda') return { device: 'cpu', precision: 'fp32', dtype: 'float32', lossScaling: false };
  const why = cudaUnavailableReason(i);
  if (why) throw new ConfigError(`${what}: ${why}; or use --device cpu`);
  const precision = computePrecision(cfg);
  const index = localRank % i.gpus.length;
  return { device: `cuda:${index}`, precision, dtype: DTYPE[precision], lossScaling: precision === 'fp16' };
}
