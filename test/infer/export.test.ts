import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  boxesToWorld,
  cccwhdToCorners,
  checkDetections,
  entriesToCsvRows,
  readResultsCsv,
  readResultsJson,
  resultsCsvText,
  seriesUidFromPath,
  spacingFromAffine,
  toResultEntry,
  writeResultsCsv,
  writeResultsJson,
  type Detections,
} from '../../src/infer/export.js';

const dir = mkdtempSync(join(tmpdir(), 'detseg3d-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Independent reference: 4x4 affine built from rotation * diag(spacing) + origin,
// applied to the 8 corners by explicit matrix multiplication.
function matmul3(a: number[][], b: number[][]): number[][] {
  return a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
}
function rotX(t: number): number[][] {
  return [
    [1, 0, 0],
    [0, Math.cos(t), -Math.sin(t)],
    [0, Math.sin(t), Math.cos(t)],
  ];
}
function rotZ(t: number): number[][] {
  return [
    [Math.cos(t), -Math.sin(t), 0],
    [Math.sin(t), Math.cos(t), 0],
    [0, 0, 1],
  ];
}
function makeAffine(r: number[][], spacing: number[], origin: number[]): number[][] {
  const m = matmul3(r, [
    [spacing[0], 0, 0],
    [0, spacing[1], 0],
    [0, 0, spacing[2]],
  ]);
  return [[...m[0], origin[0]], [...m[1], origin[1]], [...m[2], origin[2]], [0, 0, 0, 1]];
}
function apply(aff: number[][], p: number[]): number[] {
  const v = [p[0], p[1], p[2], 1];
  return [0, 1, 2].map((r) => aff[r][0] * v[0] + aff[r][1] * v[1] + aff[r][2] * v[2] + aff[r][3] * v[3]);
}
function referenceWorld(aff: number[][], b: number[], lps: boolean) {
  const flip = (w: number[]) => (lps ? [-w[0], -w[1], w[2]] : w);
  const pts: number[][] = [];
  for (const x of [b[0], b[3]]) for (const y of [b[1], b[4]]) for (const z of [b[2], b[5]]) pts.push(flip(apply(aff, [x, y, z])));
  const lo = [0, 1, 2].map((a) => Math.min(...pts.map((p) => p[a])));
  const hi = [0, 1, 2].map((a) => Math.max(...pts.map((p) => p[a])));
  const c = flip(apply(aff, [(b[0] + b[3]) / 2, (b[1] + b[4]) / 2, (b[2] + b[5]) / 2]));
  return { c, size: [0, 1, 2].map((a) => hi[a] - lo[a]), lo, hi };
}

const boxes = new Float32Array([
  10, 20, 5, 18, 31, 9, //
  0, 0, 0, 1, 1, 1, //
  100.5, 40.25, 60, 130, 70.75, 61,
]);

describe('boxesToWorld', () => {
  it('matches a hand-worked diagonal affine (RAS and LPS)', () => {
    // affine diag(2, 3, 4) + origin (10, 20, 30); box [1,2,3,5,6,7):
    // voxel centre (3, 4, 5) -> RAS (16, 32, 50); size (4*2, 4*3, 4*4) = (8, 12, 16).
    const aff = makeAffine(rotZ(0), [2, 3, 4], [10, 20, 30]);
    const box = new Float32Array([1, 2, 3, 5, 6, 7]);
    const ras = boxesToWorld(aff, box, 'ras');
    expect(Array.from(ras.center)).toEqual([16, 32, 50]);
    expect(Array.from(ras.size)).toEqual([8, 12, 16]);
    expect(Array.from(ras.corners)).toEqual([12, 26, 42, 20, 38, 58]);
    const lps = boxesToWorld(aff, box, 'lps');
    expect(Array.from(lps.center)).toEqual([-16, -32, 50]);
    expect(Array.from(lps.size)).toEqual([8, 12, 16]);
    expect(Array.from(lps.corners)).toEqual([-20, -38, 42, -12, -26, 58]);
  });

  for (const frame of ['ras', 'lps'] as const) {
    it(`matches 8-corner matrix multiplication on an oblique anisotropic affine (${frame})`, () => {
      const aff = makeAffine(matmul3(rotZ(0.52), rotX(-0.35)), [0.7, 0.8, 2.5], [-120.5, 33.25, -410]);
      const w = boxesToWorld(aff, boxes, frame);
      expect(w.n).toBe(3);
      for (let i = 0; i < 3; i++) {
        const ref = referenceWorld(aff, Array.from(boxes.subarray(6 * i, 6 * i + 6)), frame === 'lps');
        for (let a = 0; a < 3; a++) {
          expect(w.center[3 * i + a]).toBeCloseTo(ref.c[a], 9);
          expect(w.size[3 * i + a]).toBeCloseTo(ref.size[a], 9);
          expect(w.corners[6 * i + a]).toBeCloseTo(ref.lo[a], 9);
          expect(w.corners[6 * i + 3 + a]).toBeCloseTo(ref.hi[a], 9);
        }
      }
    });
  }

  it('equals the two-corner (MONAI) result for a signed-permutation affine, e.g. an LPS-stored image', () => {
    // Axes permuted (x->y, y->x) and flipped, spacing (0.7, 0.9, 1.25): only two corners needed.
    const aff = [
      [0, -0.9, 0, 150],
      [-0.7, 0, 0, 160],
      [0, 0, 1.25, -300],
      [0, 0, 0, 1],
    ];
    const w = boxesToWorld(aff, boxes, 'ras');
    for (let i = 0; i < 3; i++) {
      const b = Array.from(boxes.subarray(6 * i, 6 * i + 6));
      const p = apply(aff, [b[0], b[1], b[2]]);
      const q = apply(aff, [b[3], b[4], b[5]]);
      for (let a = 0; a < 3; a++) {
        expect(w.corners[6 * i + a]).toBeCloseTo(Math.min(p[a], q[a]), 9);
        expect(w.corners[6 * i + 3 + a]).toBeCloseTo(Math.max(p[a], q[a]), 9);
      }
      // And cccwhd -> corners inverts the centre/size representation.
      const back = cccwhdToCorners([...w.center.subarray(3 * i, 3 * i + 3), ...w.size.subarray(3 * i, 3 * i + 3)]);
      for (let k = 0; k < 6; k++) expect(back[k]).toBeCloseTo(w.corners[6 * i + k], 9);
    }
    expect(spacingFromAffine(aff).map((v) => +v.toFixed(12))).toEqual([0.7, 0.9, 1.25]);
  });

  it('rejects corrupt boxes with clear messages', () => {
    const aff = makeAffine(rotZ(0), [1, 1, 1], [0, 0, 0]);
    expect(() => boxesToWorld(aff, new Float32Array(7))).toThrow(/multiple of 6/);
    expect(() => boxesToWorld(aff, new Float32Array([0, 0, 0, NaN, 1, 1]))).toThrow(/non-finite/);
    expect(() => boxesToWorld(aff, new Float32Array([5, 0, 0, 1, 1, 1]))).toThrow(/max < min on axis x/);
    expect(() => boxesToWorld([[1, 0, 0]], new Float32Array(6))).toThrow(/4x4/);
    const bad: Detections = { boxes: new Float32Array(12), scores: new Float32Array(1), labels: new Int32Array(2) };
    expect(() => checkDetections(bad)).toThrow(/2 boxes but 1 scores/);
    expect(() => checkDetections({ ...bad, scores: new Float32Array([0.1, NaN]) })).toThrow(/score 1 is not finite/);
  });
});

describe('results JSON and CSV', () => {
  const aff = makeAffine(matmul3(rotZ(0.1), rotX(0.2)), [0.703125, 0.703125, 1.25], [-180, -170, -320]);
  const dets: Detections = {
    boxes,
    scores: new Float32Array([0.25, 0.875, 0.5]),
    labels: new Int32Array([0, 1, 0]),
  };
  const entryA = toResultEntry('/data/luna/1.3.6.1.4.1.14519.5.2.1.6279.nii.gz', aff, dets);
  const entryB = toResultEntry('other,scan.nii', aff, dets, { coords: 'ras', scoreThreshold: 0.3 });

  it('builds entries sorted by score with world cccwhd boxes', () => {
    expect(entryA.label_scores).toEqual([0.875, 0.5, 0.25]);
    expect(entryA.label).toEqual([1, 0, 0]);
    const w = boxesToWorld(aff, boxes, 'lps');
    // Highest score is input box 1.
    expect(entryA.box[0]).toEqual([...w.center.subarray(3, 6), ...w.size.subarray(3, 6)]);
    // Threshold drops the 0.25 detection; RAS differs from LPS by the sign of x and y.
    expect(entryB.label_scores).toEqual([0.875, 0.5]);
    expect(entryB.box[0][0]).toBeCloseTo(-entryA.box[0][0], 9);
    expect(entryB.box[0][1]).toBeCloseTo(-entryA.box[0][1], 9);
    expect(entryB.box[0][2]).toBeCloseTo(entryA.box[0][2], 9);
  });

  it('writes the MONAI {"validation": [...]} layout and reads it back', () => {
    const path = join(dir, 'result.json');
    writeResultsJson(path, [entryA, entryB]);
    const raw = JSON.parse(readFileSync(path, 'utf8'));
    expect(Object.keys(raw.validation[0]).sort()).toEqual(['box', 'image', 'label', 'label_scores']);
    const back = readResultsJson(path);
    expect(back.coords).toBe('lps');
    expect(back.validation).toEqual([entryA, entryB]);
    // A MONAI bundle file (bare list, no coords) reads as LPS.
    const bare = readResultsJson(JSON.stringify([{ image: 'a.nii.gz', box: [[1, 2, 3, 4, 5, 6]], label: [0], label_scores: [0.5] }]));
    expect(bare.coords).toBe('lps');
    expect(bare.validation[0].box).toEqual([[1, 2, 3, 4, 5, 6]]);
    expect(() => readResultsJson('{"validation": [{"image": "a", "box": [[1,2,3]], "label": [0], "label_scores": [1]}]}')).toThrow(/box 0 is not 6/);
    expect(() => readResultsJson('{"validation": [{"image": "a", "box": [[1,2,3,4,5,6]], "label": [0], "label_scores": []}]}')).toThrow(/label_scores/);
    expect(() => readResultsJson('{"nothing": 1}')).toThrow(/validation/);
  });

  it('writes LUNA16 CSV columns and reads them back', () => {
    expect(seriesUidFromPath('/data/luna/1.3.6.1.4.1.14519.5.2.1.6279.nii.gz')).toBe('1.3.6.1.4.1.14519.5.2.1.6279');
    expect(seriesUidFromPath('x/scan01.nii')).toBe('scan01');
    const path = join(dir, 'result.csv');
    writeResultsCsv(path, [entryA, entryB]);
    const text = readFileSync(path, 'utf8');
    expect(text.split('\n')[0]).toBe('seriesuid,coordX,coordY,coordZ,probability,label,diameterX_mm,diameterY_mm,diameterZ_mm');
    expect(text).toContain('"other,scan"'); // quoted because of the comma
    const rows = readResultsCsv(path);
    expect(rows).toEqual(entriesToCsvRows([entryA, entryB]));
    expect(rows.length).toBe(5);
    expect(rows[0].seriesuid).toBe('1.3.6.1.4.1.14519.5.2.1.6279');
    expect(rows[0].coordX).toBe(entryA.box[0][0]);
    expect(rows[0].diameterZ_mm).toBe(entryA.box[0][5]);
    expect(resultsCsvText([entryA])).toBe(readFileSync(path, 'utf8').split('\n').slice(0, 4).join('\n') + '\n');
  });

  it('reads a plain LUNA16 submission and rejects broken CSV', () => {
    const rows = readResultsCsv('probability,seriesuid,coordX,coordY,coordZ\n0.5,abc,1,2,3\n');
    expect(rows).toEqual([
      { seriesuid: 'abc', coordX: 1, coordY: 2, coordZ: 3, probability: 0.5, label: 0, diameterX_mm: NaN, diameterY_mm: NaN, diameterZ_mm: NaN },
    ]);
    expect(() => readResultsCsv('seriesuid,coordX,coordY,probability\nabc,1,2,0.5\n')).toThrow(/missing column 'coordZ'/);
    expect(() => readResultsCsv('seriesuid,coordX,coordY,coordZ,probability\nabc,1,2,x,0.5\n')).toThrow(/line 2: coordZ 'x' is not a finite number/);
    expect(() => readResultsCsv('seriesuid,coordX,coordY,coordZ,probability\nabc,1,2\n')).toThrow(/3 fields/);
  });
});
