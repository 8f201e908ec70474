import { describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listFolderDataset, loadDatalist, splitCases, toXyzxyz } from '../../src/data/dataset.js';
import { prepareCase } from '../../src/data/prepare.js';
import { writeNifti } from '../../src/io/nifti.js';
import type { Affine } from '../../src/io/volume.js';

const root = mkdtempSync(join(tmpdir(), 'detseg3d-ds-'));

function touch(p: string) {
  writeFileSync(p, '');
}

describe('folder layout', () => {
  it('pairs images and labels by file name, .nii and .nii.gz alike', () => {
    const r = join(root, 'ok');
    mkdirSync(join(r, 'images'), { recursive: true });
    mkdirSync(join(r, 'labels'), { recursive: true });
    for (const n of ['b.nii.gz', 'a.nii']) touch(join(r, 'images', n));
    for (const n of ['a.nii.gz', 'b.nii.gz', 'notes.txt']) touch(join(r, 'labels', n));
    const cases = listFolderDataset(r);
    expect(cases.map((c) => c.id)).toEqual(['a', 'b']);
    expect(cases[0].image).toBe(join(r, 'images', 'a.nii'));
    expect(cases[0].label).toBe(join(r, 'labels', 'a.nii.gz'));
  });

  it('names every file without a partner', () => {
    const r = join(root, 'bad');
    mkdirSync(join(r, 'images'), { recursive: true });
    mkdirSync(join(r, 'labels'), { recursive: true });
    for (const n of ['a.nii.gz', 'c.nii.gz']) touch(join(r, 'images', n));
    for (const n of ['a.nii.gz', 'd.nii']) touch(join(r, 'labels', n));
    expect(() => listFolderDataset(r)).toThrow(
      new RegExp(`images without a label: ${join(r, 'images', 'c.nii.gz')}.*labels without an image: ${join(r, 'labels', 'd.nii')}`),
    );
  });

  it('reports a missing folder', () => {
    expect(() => listFolderDataset(join(root, 'nothing'))).toThrow(/cannot list .*nothing[\\/]images/);
  });
});

describe('Decathlon datalist', () => {
  it('reads cccwhd world boxes, resolves relative paths, defaults labels to 0', () => {
    const p = join(root, 'datalist.json');
    writeFileSync(p, JSON.stringify({
      training: [
        { image: 'imgs/x.nii.gz', box: [[10, 20, 30, 4, 6, 8]], label: [2] },
        { image: '/abs/y.nii.gz', box: [[0, 0, 0, 2, 2, 2], [1, 1, 1, 1, 1, 1]] },
        { image: 'imgs/neg.nii.gz', box: [] },
      ],
      validation: [{ image: 'v.nii.gz', box: [] }],
    }));
    const cases = loadDatalist(p);
    expect(cases.map((c) => c.id)).toEqual(['x', 'y', 'neg']);
    expect(cases[0].image).toBe(join(root, 'imgs', 'x.nii.gz'));
    expect(cases[1].image).toBe('/abs/y.nii.gz');
    // centre (10,20,30), size (4,6,8) → [8, 17, 26, 12, 23, 34]
    expect(Array.from(cases[0].worldBoxes!)).toEqual([8, 17, 26, 12, 23, 34]);
    expect(Array.from(cases[0].boxLabels!)).toEqual([2]);
    expect(Array.from(cases[1].boxLabels!)).toEqual([0, 0]);
    expect(loadDatalist(p, { key: 'validation' }).length).toBe(1);
    expect(Array.from(toXyzxyz([1, 2, 3, 4, 5, 6], 'xyzxyz'))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('gives clear errors for malformed lists', () => {
    const p = join(root, 'bad.json');
    writeFileSync(p, JSON.stringify({ training: [{ image: 'a.nii', box: [[1, 2, 3]] }] }));
    expect(() => loadDatalist(p)).toThrow(/training\[0\]: "box" must be a list of 6-number boxes/);
    expect(() => loadDatalist(p, { key: 'test' })).toThrow(/no "test" list; keys present: training/);
    writeFileSync(p, JSON.stringify({ training: [{ image: 'a.nii', box: [[1, 2, 3, 4, 5, 6]], label: [0, 1] }] }));
    expect(() => loadDatalist(p)).toThrow(/"label" must list one non-negative integer class per box \(1 boxes\)/);
  });
});

describe('train/validation split', () => {
  const cases = Array.from({ length: 20 }, (_, i) => ({ id: `case${String(i).padStart(2, '0')}` }));
  it('is deterministic, seeded, independent of listing order', () => {
    const a = splitCases(cases, { validationFraction: 0.25, seed: 3 });
    const b = splitCases([...cases].reverse(), { validationFraction: 0.25, seed: 3 });
    expect(a.validation.length).toBe(5);
    expect(a.train.length).toBe(15);
    expect(a.validation.map((c) => c.id).sort()).toEqual(b.validation.map((c) => c.id).sort());
    const c = splitCases(cases, { validationFraction: 0.25, seed: 4 });
    expect(c.validation.map((x) => x.id).sort()).not.toEqual(a.validation.map((x) => x.id).sort());
    // disjoint and complete
    expect(new Set([...a.train, ...a.validation].map((x) => x.id)).size).toBe(20);
  });
  it('accepts an explicit list and rejects unknown ids', () => {
    const s = splitCases(cases, { validationIds: ['case03', 'case07'] });
    expect(s.validation.map((c) => c.id)).toEqual(['case03', 'case07']);
    expect(() => splitCases(cases, { validationIds: ['nope'] })).toThrow(/not in the dataset: nope/);
  });
});

describe('prepareCase', () => {
  const A: Affine = [[-1, 0, 0, 20], [0, -1, 0, 30], [0, 0, 2, -5], [0, 0, 0, 1]]; // LPS
  const dims: [number, number, number] = [12, 10, 6];

  it('mask → boxes, reoriented to RAS along with the image', async () => {
    const img = Int16Array.from({ length: 720 }, (_, i) => i - 300);
    const mask = new Uint8Array(720);
    // a 3x2x2 component of value 2 at x 4..6, y 1..2, z 2..3 (12 voxels ≥ minSize 10)
    for (let z = 2; z < 4; z++) for (let y = 1; y < 3; y++) for (let x = 4; x < 7; x++) mask[x + 12 * (y + 10 * z)] = 2;
    mask[0] = 1; // a 1-voxel component: dropped (minSize 10)
    await writeNifti(join(root, 'p_img.nii.gz'), { data: img, dims, affine: A });
    await writeNifti(join(root, 'p_lab.nii.gz'), { data: mask, dims, affine: A });
    const p = await prepareCase({ id: 'p', image: join(root, 'p_img.nii.gz'), label: join(root, 'p_lab.nii.gz') });
    expect(p.orientation).toBe('RAS');
    expect(p.droppedSmall).toBe(1);
    // LPS → RAS flips x and y: x 4..7 → 12−7..12−4 = 5..8, y 1..3 → 10−3..10−1 = 7..9
    expect(Array.from(p.boxes)).toEqual([5, 7, 2, 8, 9, 4]);
    expect(Array.from(p.labels)).toEqual([1]);
    expect(p.negative).toBe(false);
    expect(p.data).toBeInstanceOf(Int16Array);
    // the voxel at new (0,0,0) is old (11, 9, 0)
    expect(p.data[0]).toBe(img[11 + 12 * 9]);
  });

  it('world boxes from a datalist become voxel boxes', async () => {
    await writeNifti(join(root, 'w_img.nii'), { data: new Int16Array(720), dims, affine: A });
    // world x ∈ [12, 16] ↔ voxel x = 20 − wx ∈ [4, 8]; world y ∈ [25, 28] ↔ y ∈ [2, 5]; world z ∈ [−3, 1] ↔ z ∈ [1, 3]
    const p = await prepareCase(
      { id: 'w', image: join(root, 'w_img.nii'), worldBoxes: Float32Array.from([12, 25, -3, 16, 28, 1]), boxLabels: Int32Array.from([3]) },
      { orientation: null },
    );
    expect(Array.from(p.boxes)).toEqual([4, 2, 1, 8, 5, 3]);
    expect(Array.from(p.labels)).toEqual([3]);
  });

  it('empty masks are negatives', async () => {
    await writeNifti(join(root, 'n_lab.nii.gz'), { data: new Uint8Array(720), dims, affine: A });
    const p = await prepareCase({ id: 'n', image: join(root, 'p_img.nii.gz'), label: join(root, 'n_lab.nii.gz') });
    expect(p.negative).toBe(true);
    expect(p.boxes.length).toBe(0);
  });

  it('shape and affine mismatches name both files', async () => {
    await writeNifti(join(root, 's_lab.nii.gz'), { data: new Uint8Array(719 + 1 - 120), dims: [12, 10, 5], affine: A });
    await expect(prepareCase({ id: 's', image: join(root, 'p_img.nii.gz'), label: join(root, 's_lab.nii.gz') }))
      .rejects.toThrow(/s_lab\.nii\.gz: label dims 12x10x5 differ from image .*p_img\.nii\.gz dims 12x10x6/);
    const B = A.map((r) => [...r]);
    B[0][3] += 0.5;
    await writeNifti(join(root, 'a_lab.nii.gz'), { data: new Uint8Array(720), dims, affine: B });
    await expect(prepareCase({ id: 'a', image: join(root, 'p_img.nii.gz'), label: join(root, 'a_lab.nii.gz') }))
      .rejects.toThrow(/a_lab\.nii\.gz: label affine differs from image .*p_img\.nii\.gz affine by up to 0\.500/);
  });
});
