// Detection logic between the network's head outputs and the loss / final boxes.
export * as anchors from './anchors.js';
export * as boxes from './boxes.js';
export * as match from './match.js';
export * as sampler from './sampler.js';
export * as detector from './detector.js';
export type { AnchorOptions } from './anchors.js';
export type { BoxCoderWeights } from './boxes.js';
export type { AtssOptions } from './match.js';
export type { SamplerOptions } from './sampler.js';
export type { HeadOutputs, ImageTargets, DetectorLossOptions, DetectorLossResult } from './loss.js';
export type { PostprocessOptions, Detections } from './postprocess.js';
