import { describe, expect, it } from 'vitest';
import { froc } from '../../src/eval/froc.js';
import { groundTruthFromLuna16, predictionsFromCsv, predictionsFromResults } from '../../src/eval/froc_inputs.js';
import { readResultsCsv, readResultsJson, resultsCsvText, resultsJsonText, toResultEntry } from '../../src/infer/export.js';

// LUNA16-style files in world (LPS) mm.
const annotations = `seriesuid,coordX,coordY,coordZ,diameter_mm
scanA,-100,50,-200,10
scanA,30,-40,-150,6
scanB,0,0,0,8
`;
const excluded = `seriesuid,coordX,coordY,coordZ,diameter_mm
scanA,60,60,-100,-1
`;

describe('froc inputs from files', () => {
  it('reads LUNA16 annotations as cubes of side diameter_mm, with empty scans and ignore regions', () => {
    const gt = groundTruthFromLuna16(annotations, { seriesuids: ['scanA', 'scanB', 'scanC'], excluded });
    expect(gt.map((g) => g.id)).toEqual(['scanA', 'scanB', 'scanC']);
    expect(Array.from(gt[0].boxes)).toEqual([-105, 45, -205, -95, 55, -195, 27, -43, -153, 33, -37, -147]);
    expect(gt[2].boxes.length).toBe(0);
    // Negative diameter in the excluded file -> 10 mm default.
    expect(Array.from(gt[0].ignore!)).toEqual([55, 55, -105, 65, 65, -95]);
    expect(gt[1].ignore).toBeUndefined();
    expect(() => groundTruthFromLuna16('seriesuid,coordX,coordY,coordZ\nx,1,2,3\n')).toThrow(/diameter_mm/);
  });

  it('evaluates a LUNA16 submission CSV (points) in mm', () => {
    // scanA: nodule 1 hit at 4.9 mm (< radius 5); the 0.8 mark is 3.1 mm from nodule 2 (radius 3): a miss,
    // so an FP; a mark on the excluded region (ignored); one more FP. scanB: hit. scanC: one FP.
    const submission = `seriesuid,coordX,coordY,coordZ,probability
scanA,-100,54.9,-200,0.9
scanA,30,-40,-146.9,0.8
scanA,61,60,-100,0.95
scanA,200,200,200,0.7
scanB,1,1,1,0.6
scanC,5,5,5,0.5
`;
    const gt = groundTruthFromLuna16(annotations, { seriesuids: ['scanA', 'scanB', 'scanC'], excluded });
    const r = froc(predictionsFromCsv(readResultsCsv(submission)), gt, { bootstraps: 0 });
    expect(r.counts).toMatchObject({ lesions: 3, detectedLesions: 2, falsePositives: 3, ignored: 1 });
    // Curve: 0.9 TP (0, 1/3); 0.8 FP (1/3, 1/3); 0.7 FP (2/3, 1/3); 0.6 TP (2/3, 2/3); 0.5 FP (1, 2/3).
    // At 1/8 and 1/4 the sensitivity is 1/3; at 1/2 it is interpolated on the horizontal segment: 1/3;
    // from 2/3 on it is 2/3. CPM = (3/3 + 4 * 2/3) / 7 = 11/21.
    expect(r.cpm).toBeCloseTo(11 / 21, 12);
  });

  it('round-trips exported JSON and CSV into identical evaluations', () => {
    const affine = [
      [-0.7, 0, 0, 180],
      [0, -0.7, 0, 170],
      [0, 0, 1.25, -300],
      [0, 0, 0, 1],
    ];
    // Voxel boxes -> LPS world: x_lps = -(-0.7 x + 180) = 0.7 x - 180, y_lps = 0.7 y - 170, z = 1.25 z - 300.
    // Box centred at voxel (114.2857.., 314.2857.., 80) lands on scanA's first nodule (-100, 50, -200).
    const cx = 80 / 0.7;
    const cy = 220 / 0.7;
    const dets = {
      boxes: new Float32Array([cx - 5, cy - 5, 76, cx + 5, cy + 5, 84, 10, 10, 10, 20, 20, 20]),
      scores: new Float32Array([0.9, 0.4]),
      labels: new Int32Array([0, 0]),
    };
    const entry = toResultEntry('/x/scanA.nii.gz', affine, dets);
    expect(entry.box[0][0]).toBeCloseTo(-100, 3);
    expect(entry.box[0][1]).toBeCloseTo(50, 3);
    expect(entry.box[0][2]).toBeCloseTo(-200, 6);
    const gt = groundTruthFromLuna16(annotations, { seriesuids: ['scanA', 'scanB'] });
    const fromJson = froc(predictionsFromResults(readResultsJson(resultsJsonText([entry]))), gt, { bootstraps: 0 });
    const fromCsv = froc(predictionsFromCsv(readResultsCsv(resultsCsvText([entry]))), gt, { bootstraps: 0 });
    expect(fromJson.counts).toMatchObject({ detectedLesions: 1, falsePositives: 1 });
    expect(fromCsv.sensitivity).toEqual(fromJson.sensitivity);
    expect(fromCsv.counts).toEqual(fromJson.counts);
    // IoU also works from the JSON (boxes have sizes): the 7 x 7 x 10 mm box vs the 10 mm cube.
    const iou = froc(predictionsFromResults(readResultsJson(resultsJsonText([entry]))), gt, { bootstraps: 0, criterion: 'iou', iouThreshold: 0.3 });
    expect(iou.counts.detectedLesions).toBe(1);
  });
});
