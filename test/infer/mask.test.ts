import { describe, expect, it } from 'vitest';
import { boxesToLabelMap, labelMapVolume } from '../../src/infer/mask.js';
import { identityAffine } from '../../src/io/volume.js';

describe('boxesToLabelMap', () => {
  it('paints voxels inside boxes by rank, higher score winning overlaps, zero outside', () => {
    const dims: [number, number, number] = [12, 10, 8];
    // Box 0 (score 0.4): voxels x 2..5, y 1..3, z 0..1 (integer [2,6)x[1,4)x[0,2)).
    // Box 1 (score 0.9): fractional [4.5, 8.2) -> voxels ceil(4.5)=5 .. ceil(8.2)-1=8, y [2,5) -> 2..4, z [1,3) -> 1..2.
    // Box 2 (score 0.1): below the threshold, not painted.
    // Box 3 (score 0.6): partly outside the volume -> clipped to x 9..11, y 0..1, z 6..7.
    const boxes = new Float32Array([2, 1, 0, 6, 4, 2, 4.5, 2, 1, 8.2, 5, 3, 0, 0, 0, 12, 10, 8, 9, -3, 6, 20, 2, 30]);
    const dets = { boxes, scores: new Float32Array([0.4, 0.9, 0.1, 0.6]), labels: new Int32Array([2, 0, 1, 4]) };
    const map = boxesToLabelMap(dims, dets, { scoreThreshold: 0.2 });
    expect(map).toBeInstanceOf(Uint8Array);
    // Independent expectation: rank by score among kept (0.9 -> 1, 0.6 -> 2, 0.4 -> 3); voxel i inside
    // [lo, hi) when lo <= i < hi (integer index sense, using ceil of the fractional ends).
    const kept = [
      { v: 1, lo: [5, 2, 1], hi: [9, 5, 3] },
      { v: 2, lo: [9, 0, 6], hi: [12, 2, 8] },
      { v: 3, lo: [2, 1, 0], hi: [6, 4, 2] },
    ];
    let painted = 0;
    for (let z = 0; z < 8; z++) {
      for (let y = 0; y < 10; y++) {
        for (let x = 0; x < 12; x++) {
          const hit = kept.find((k) => [x, y, z].every((c, a) => c >= k.lo[a] && c < k.hi[a]));
          const expected = hit ? hit.v : 0;
          expect(map[x + 12 * (y + 10 * z)]).toBe(expected);
          if (expected) painted++;
        }
      }
    }
    expect(painted).toBeGreaterThan(50);
    // Overlap voxel (5, 2, 1) lies in boxes 0 and 1: the 0.9 detection (rank 1) wins.
    expect(map[5 + 12 * (2 + 10 * 1)]).toBe(1);

    const byClass = boxesToLabelMap(dims, dets, { scoreThreshold: 0.2, value: 'class' });
    expect(byClass[5 + 12 * (2 + 10 * 1)]).toBe(1); // label 0 + 1
    expect(byClass[2 + 12 * (1 + 10 * 0)]).toBe(3); // box 0, label 2 + 1
    expect(byClass[10 + 12 * (1 + 10 * 7)]).toBe(5); // box 3, label 4 + 1
  });

  it('switches to uint16 beyond 255 detections and keeps the affine in labelMapVolume', () => {
    const n = 300;
    const boxes = new Float32Array(6 * n);
    const scores = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      boxes.set([i, 0, 0, i + 1, 1, 1], 6 * i);
      scores[i] = 1 - i / 1000; // descending: box i has rank i + 1
    }
    const aff = identityAffine([0.5, 0.5, 2]);
    const vol = labelMapVolume([n, 1, 1], aff, { boxes, scores, labels: new Int32Array(n) });
    expect(vol.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(vol.data.subarray(295, 300))).toEqual([296, 297, 298, 299, 300]);
    expect(vol.affine).toEqual(aff);
    expect(vol.affine).not.toBe(aff);
  });

  it('rejects corrupt detections', () => {
    const dims: [number, number, number] = [4, 4, 4];
    expect(() => boxesToLabelMap(dims, { boxes: new Float32Array(5), scores: new Float32Array(0), labels: new Int32Array(0) })).toThrow(/multiple of 6/);
    expect(() => boxesToLabelMap(dims, { boxes: new Float32Array(6), scores: new Float32Array(2), labels: new Int32Array(1) })).toThrow(/1 boxes but 2 scores/);
    expect(() => boxesToLabelMap([4, 0, 4], { boxes: new Float32Array(0), scores: new Float32Array(0), labels: new Int32Array(0) })).toThrow(/dims/);
  });
});
