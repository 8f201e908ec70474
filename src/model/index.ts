// The detection network: RetinaNet model, its configuration, SGD, and the
// functional layer ops.
export { RetinaNet } from './retinanet.js';
export type {
  ParamInfo,
  RetinaNetOutput,
  RetinaNetGrads,
  ForwardOptions,
  BackwardOptions,
  SetWeightsOptions,
} from './retinanet.js';
export { LUNA16_CONFIG, resolveConfig } from './config.js';
export type { RetinaNetConfig, ResolvedRetinaNetConfig, ResNetDepth } from './config.js';
export { SGD } from './sgd.js';
export type { SGDOptions } from './sgd.js';
export { permuteConvWeight } from './weights.js';
export * as layers from './layers.js';
