// detseg3d: the typed public face of the library.

// Tensors, low-level ops, build information
export { Tensor, xyzToDims, dimsToXyz, volumeTensorShape } from './tensor.js';
export type { DType, TypedArray, Triple } from './tensor.js';
export * as ops from './ops.js';
export type { Conv3dOptions, Conv3dBackwardOptions, Conv3dGrads, PerAxis } from './ops.js';
export { info, setNumThreads, setSimdLevel, memoryStats, resetPeakMemory } from './info.js';
export type { BuildInfo, GpuInfo, MemoryStats } from './info.js';
export { gpuMemoryStats, emptyCache, resetGpuPeakMemory, gpuSynchronize } from './gpu.js';
export type { GpuMemoryStats } from './gpu.js';

// I/O
export {
  readNifti, readNiftiBuffer, writeNifti, encodeNifti,
  voxelToWorld, worldToVoxel, invertAffine, transformBoxes, boxesVoxelToWorld, boxesWorldToVoxel,
  spacingFromAffine, orientationCode,
} from './io/nifti.js';
export type { NiftiVolume, NiftiHeader, NiftiDatatype, WriteNiftiOptions } from './io/nifti.js';
export { identityAffine, voxelCount } from './io/volume.js';
export type { Volume, VoxelArray, Affine } from './io/volume.js';

// Data
export { connectedComponents, boxesFromSegmentation } from './data/boxes_from_mask.js';
export type { Connectivity, ClassMap, ConnectedComponents, BoxesFromSegmentationOptions, SegmentationBoxes } from './data/boxes_from_mask.js';
export { listFolderDataset, loadDatalist, splitCases } from './data/dataset.js';
export type { CaseSource, DatalistOptions, SplitOptions, GtBoxMode, FolderDatasetOptions } from './data/dataset.js';
export { prepareCase } from './data/prepare.js';
export type { PrepareOptions, PreparedCase } from './data/prepare.js';
export { createTrainLoader, createValidationLoader, TrainLoader, ValidationLoader } from './data/loader.js';
export type { LoaderOptions, LoaderReport, CaseInfo } from './data/loader.js';
export { makeTrainBatch, makeValidationItem } from './data/pipeline.js';
export type { Batch, ValidationItem, PipelineOptions } from './data/pipeline.js';
export type { AugmentOptions, SpatialAugmentOptions, IntensityAugmentOptions } from './data/augment.js';
export type { IntensityOptions } from './data/preprocess.js';
export { generateCase, writeSynthDataset, SynthRng } from './data/synth.js';
export type { SynthOptions, SynthCase, SynthLesion, SynthDatasetOptions } from './data/synth.js';

// Network
export { RetinaNet, SGD, LUNA16_CONFIG, resolveConfig, permuteConvWeight } from './model/index.js';
export type {
  RetinaNetConfig, ResolvedRetinaNetConfig, ResNetDepth, ParamInfo, RetinaNetOutput, RetinaNetGrads,
  ForwardOptions, BackwardOptions, SetWeightsOptions, SGDOptions,
} from './model/index.js';
export * as nn from './model/layers.js';

// Detection logic
export { anchors, boxes, match, sampler, detector } from './detection/index.js';
export type {
  AnchorOptions, BoxCoderWeights, AtssOptions, SamplerOptions, HeadOutputs as DetectorHeadOutputs, ImageTargets,
  DetectorLossOptions, DetectorLossResult, PostprocessOptions, Detections,
} from './detection/index.js';

// Training
export { train } from './train/trainer.js';
export type { TrainEvent, TrainHooks, TrainResult } from './train/trainer.js';
export { TRAIN_OPTIONS, defaultTrainConfig, resolveTrainConfig, parseConfigObject, ConfigError } from './train/config.js';
export type { TrainConfig, OptionSpec } from './train/config.js';
export { computePrecision } from './train/config.js';
export { LossScaler } from './train/loss_scaler.js';
export type { LossScalerState, LossScalerOptions } from './train/loss_scaler.js';
export { resolveComputeDevice, cudaUnavailableReason } from './train/device.js';
export type { ComputeDevice } from './train/device.js';
export { learningRateAt } from './train/schedule.js';
export { validate } from './train/validate.js';
export type { ValidationResult } from './train/validate.js';
export { saveCheckpoint, loadCheckpoint, checkpointPaths, diffConfig, CheckpointMismatchError } from './train/checkpoint.js';
export type { CheckpointContent, CheckpointExtras, CheckpointPaths, LoadCheckpointOptions, LoadedCheckpoint } from './train/checkpoint.js';
export { readSafetensors, writeSafetensors, encodeSafetensors, decodeSafetensors } from './train/safetensors.js';
export type { SafeDType, SafeTensor, TensorInput, SafetensorsContent } from './train/safetensors.js';
export { writeFileAtomic, writeFilesAtomic } from './train/atomic.js';
export { SummaryWriter, readEventFile } from './train/tensorboard.js';
export type { DecodedEvent } from './train/tensorboard.js';
export { JsonlLogger, readJsonl } from './train/jsonl_log.js';
export { TrainProgress } from './train/progress.js';
export type { ProgressOptions } from './train/progress.js';

// Evaluation
export * as evaluate from './eval/index.js';

// Inference
export { Detector, mergeEnsemble } from './infer/detector.js';
export type { DetectOptions, DetectionResult } from './infer/detector.js';
export { predictVolume, windowHeads } from './infer/predict.js';
export type { PredictOptions, HeadNetwork } from './infer/predict.js';
export { slidingWindowHeads, windowOrigins } from './infer/sliding_window.js';
export type { SlidingWindowOptions, BlendedMaps, BlendMode } from './infer/sliding_window.js';
export {
  boxesToWorld, toResultEntry, resultsJsonText, writeResultsJson, readResultsJson, resultsCsvText, writeResultsCsv,
  readResultsCsv, entriesToCsvRows, seriesUidFromPath, cccwhdToCorners, CSV_COLUMNS,
} from './infer/export.js';
export type { WorldFrame, WorldBoxes, ResultEntry, ResultsFile, ExportOptions, CsvRow } from './infer/export.js';
export { boxesToLabelMap, labelMapVolume } from './infer/mask.js';
export type { LabelMapOptions } from './infer/mask.js';
export { detectionPictures, overviewPicture, writeDetectionPictures } from './infer/pictures.js';
export type { PictureOptions, DetectionPicture } from './infer/pictures.js';
export { encodePng, decodePng } from './infer/draw.js';
export type { RgbaImage, Rgba } from './infer/draw.js';

// Distributed
export * as dist from './dist/index.js';
export { initProcessGroup, distInfo, ProcessGroup, GradientReducer } from './dist/process_group.js';
export type { DistBackend, ReduceOp, DistInfo, InitProcessGroupOptions, ReducerOptions, ModelReducerOptions } from './dist/process_group.js';
export { DistributedSampler, shardIndices } from './dist/sampler.js';
export { readDistEnv } from './dist/env.js';
export type { DistEnv } from './dist/env.js';
export { launch } from './dist/launcher.js';
