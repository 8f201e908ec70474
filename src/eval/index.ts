// `evaluate`: COCO metrics (MONAI semantics) and LUNA16 FROC / CPM.
export { coco, cocoStatistics, cocoWithStatistics, formatHeadline, apAtIou } from './coco.js';
export type { CocoOptions, CocoStatistics, EvalPrediction, EvalGroundTruth } from './coco.js';
export { boxIou3d } from './box_iou.js';
export { froc, sensitivityAt, LUNA16_FP_RATES } from './froc.js';
export type { FrocPrediction, FrocGroundTruth, FrocOptions, FrocResult, FrocCurve, FrocBand } from './froc.js';
export { predictionsFromResults, predictionsFromCsv, groundTruthFromLuna16 } from './froc_inputs.js';
export { plotFroc, writeFrocPlot, frocPlotLayout } from './plot.js';
export type { FrocPlotOptions, FrocSeries, PlotLayout } from './plot.js';
