// Learning-rate schedule: StepLR (multiply by gamma every `stepSize` epochs)
// with an optional linear warm-up over the first `warmupEpochs` epochs
// (epoch e < W uses (e + 1) / W of the rate, so no epoch trains at zero).
// Epochs count from 0. A pure function of the epoch, so resuming needs only
// the epoch number.
export interface StepSchedule {
  baseLr: number;
  stepSize: number;
  gamma: number;
  warmupEpochs?: number;
}

export function learningRateAt(s: StepSchedule, epoch: number): number {
  if (!(s.baseLr > 0) || !(s.stepSize >= 1) || !(s.gamma > 0) || !(epoch >= 0))
    throw new Error(`invalid learning-rate schedule ${JSON.stringify(s)} at epoch ${epoch}`);
  let lr = s.baseLr * s.gamma ** Math.floor(epoch / s.stepSize);
  const w = s.warmupEpochs ?? 0;
  if (w > 0 && epoch < w) lr *= (epoch + 1) / w;
  return lr;
}
