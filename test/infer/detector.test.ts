// Detector helpers: boxes found in the pre-processed grid map back exactly to
// the input file's voxel grid, and ensembles merge by per-class NMS.
import { describe, expect, it } from 'vitest';
import { spatialPreprocess } from '../../src/data/preprocess.js';
import { mergeEnsemble, preprocessEdgeMap } from '../../src/infer/detector.js';
import { invertAffine, transformBoxes } from '../../src/io/affine.js';
import type { Volume } from '../../src/io/volume.js';

function vol(dims: [number, number, number], affine: number[][]): Volume {
  return { data: new Int16Array(dims[0] * dims[1] * dims[2]), dims, affine };
}

describe('preprocessEdgeMap', () => {
  const boxes = new Float32Array([2, 3, 1, 7, 9, 4, 0, 0, 0, 10, 12, 6]);
  const cases: [string, Volume, number[] | undefined][] = [
    ['LPS, no resampling', vol([10, 12, 6], [[-0.8, 0, 0, 40], [0, -0.7, 0, 30], [0, 0, 2.5, -10], [0, 0, 0, 1]]), undefined],
    ['LPS with resampling', vol([10, 12, 6], [[-0.8, 0, 0, 40], [0, -0.7, 0, 30], [0, 0, 2.5, -10], [0, 0, 0, 1]]), [1.6, 1.4, 1.25]],
    ['axes permuted (z first) and flipped', vol([6, 10, 12], [[0, 0, -0.8, 5], [0, 0.9, 0, 0], [-2, 0, 0, 3], [0, 0, 0, 1]]), undefined],
    ['RAS, resampling only', vol([10, 12, 6], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]), [2, 2, 1.5]],
  ];
  for (const [name, v, spacing] of cases) {
    it(`inverts the pre-processing's box mapping: ${name}`, () => {
      // spatialPreprocess (the data pipeline) moves boxes into the canonical grid;
      // the inverse of preprocessEdgeMap must bring them back.
      const inBox = boxes.subarray(0, 6 * 2).map((b, i) => Math.min(b, v.dims[i % 3]));
      const sp = spatialPreprocess(v, Float32Array.from(inBox), { orientation: 'RAS', spacing });
      const back = transformBoxes(invertAffine(preprocessEdgeMap(v, { orientation: 'RAS', spacing })), sp.boxes);
      for (let i = 0; i < inBox.length; i++) expect(back[i]).toBeCloseTo(inBox[i], 4);
    });
  }
});

describe('mergeEnsemble', () => {
  it('keeps the best of overlapping boxes of one class, and boxes of other classes', () => {
    const a = { boxes: new Float32Array([0, 0, 0, 10, 10, 10]), scores: new Float32Array([0.9]), labels: new Int32Array([0]) };
    // Same place, lower score (IoU 0.73 with a's box): suppressed. Same place, other class: kept.
    const b = {
      boxes: new Float32Array([1, 0, 0, 11, 10, 10, 0, 0, 0, 10, 10, 10, 20, 20, 20, 25, 25, 25]),
      scores: new Float32Array([0.8, 0.7, 0.6]),
      labels: new Int32Array([0, 1, 0]),
    };
    const m = mergeEnsemble([a, b], 0.22, 100);
    expect(Array.from(m.scores)).toEqual([0.9, 0.7, 0.6].map((v) => Math.fround(v)));
    expect(Array.from(m.labels)).toEqual([0, 1, 0]);
    expect(mergeEnsemble([a], 0.22, 100)).toBe(a);
  });
});
