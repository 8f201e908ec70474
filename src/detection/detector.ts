// The `detector` namespace: training loss and post-processing on head outputs.
export { loss, lossAsync } from './loss.js';
export type { HeadOutputs, ImageTargets, DetectorLossOptions, DetectorLossResult } from './loss.js';
export { postprocess, postprocessAsync } from './postprocess.js';
export type { PostprocessOptions, Detections } from './postprocess.js';
