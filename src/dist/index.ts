// Distributed training: launcher, environment, rendezvous store, process
// groups (Gloo / NCCL), gradient reducer and sampler.
export { readDistEnv, isDistributed, DEFAULT_MASTER_PORT } from './env.js';
export type { DistEnv, DistSource } from './env.js';
export { StoreServer, StoreClient, defaultTimeoutMs } from './store.js';
export type { StoreClientOptions } from './store.js';
export { initProcessGroup, distInfo, ProcessGroup, GradientReducer } from './process_group.js';
export type { DistBackend, ReduceOp, Reducible, DistInfo, InitProcessGroupOptions, ReducerOptions, ModelReducerOptions } from './process_group.js';
export { DistributedSampler, shardIndices, epochPermutation, describeBatch } from './sampler.js';
export type { DistributedSamplerOptions } from './sampler.js';
export { launch, runLaunch, parseLaunchArgs, resolveCommand, launchBuilder, launchHandler, relaunchTrainForGpus } from './launcher.js';
export type { LaunchOptions, LaunchArgs } from './launcher.js';
export { planGpuTraining, insideDistributedJob } from './gpu_launch.js';
export type { GpuTrainPlan, GpuVisibility } from './gpu_launch.js';
