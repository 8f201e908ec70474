import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateCase, writeSynthDataset, caseSeed, MIN_LESION_VOXELS } from '../../src/data/synth.js';
import { readNifti } from '../../src/io/nifti.js';

/** 26-connected components of a binary mask by BFS; returns tight [x1,y1,z1,x2,y2,z2) boxes. */
function componentBoxes(mask: Uint8Array, [X, Y, Z]: number[]): number[][] {
  const seen = new Uint8Array(mask.length);
  const out: number[][] = [];
  const queue = new Int32Array(mask.length);
  for (let s = 0; s < mask.length; s++) {
    if (!mask[s] || seen[s]) continue;
    let head = 0, tail = 0;
    queue[tail++] = s;
    seen[s] = 1;
    const b = [Infinity, Infinity, Infinity, -Infinity, -Infinity, -Infinity];
    while (head < tail) {
      const i = queue[head++];
      const x = i % X, y = Math.floor(i / X) % Y, z = Math.floor(i / (X * Y));
      b[0] = Math.min(b[0], x); b[1] = Math.min(b[1], y); b[2] = Math.min(b[2], z);
      b[3] = Math.max(b[3], x + 1); b[4] = Math.max(b[4], y + 1); b[5] = Math.max(b[5], z + 1);
      for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx, ny = y + dy, nz = z + dz;
        if (nx < 0 || ny < 0 || nz < 0 || nx >= X || ny >= Y || nz >= Z) continue;
        const j = nx + X * (ny + Y * nz);
        if (mask[j] && !seen[j]) {
          seen[j] = 1;
          queue[tail++] = j;
        }
      }
    }
    out.push(b);
  }
  return out;
}

const sortBoxes = (bs: number[][]) => bs.map((b) => b.join(',')).sort();

describe('synthetic CT cases', () => {
  it('is deterministic by seed and differs across seeds', () => {
    const a = generateCase(42, { size: [48, 48, 24] });
    const b = generateCase(42, { size: [48, 48, 24] });
    const c = generateCase(43, { size: [48, 48, 24] });
    expect(Buffer.from(a.image.data.buffer).equals(Buffer.from(b.image.data.buffer))).toBe(true);
    expect(Array.from(a.boxes)).toEqual(Array.from(b.boxes));
    expect(a.image.affine).toEqual(b.image.affine);
    expect(Buffer.from(a.image.data.buffer).equals(Buffer.from(c.image.data.buffer))).toBe(false);
    expect(caseSeed(1, 0)).not.toBe(caseSeed(1, 1));
    expect(caseSeed(1, 0)).not.toBe(caseSeed(2, 0));
  });

  it('returns boxes that are exactly the connected components of the mask, inside the volume', () => {
    let lesionsSeen = 0;
    const sites = new Set<string>();
    for (let seed = 0; seed < 8; seed++) {
      const c = generateCase(seed);
      const [X, Y, Z] = c.image.dims;
      expect(c.image.dims).toEqual([96, 96, 48]);
      expect(c.image.data).toBeInstanceOf(Int16Array);
      expect(c.label.data).toBeInstanceOf(Uint8Array);
      const mask = c.label.data as Uint8Array;
      expect(mask.every((v) => v === 0 || v === 1)).toBe(true);
      const n = c.boxes.length / 6;
      expect(n).toBe(c.lesions.length);
      expect(c.labels.length).toBe(n);
      const boxes = Array.from({ length: n }, (_, i) => Array.from(c.boxes.subarray(6 * i, 6 * i + 6)));
      for (const b of boxes) {
        expect(b[0]).toBeGreaterThanOrEqual(0);
        expect(b[1]).toBeGreaterThanOrEqual(0);
        expect(b[2]).toBeGreaterThanOrEqual(0);
        expect(b[3]).toBeLessThanOrEqual(X);
        expect(b[4]).toBeLessThanOrEqual(Y);
        expect(b[5]).toBeLessThanOrEqual(Z);
        for (let k = 0; k < 3; k++) expect(b[k + 3] - b[k]).toBeGreaterThanOrEqual(2);
      }
      expect(sortBoxes(componentBoxes(mask, [X, Y, Z]))).toEqual(sortBoxes(boxes));
      expect(mask.reduce((s, v) => s + v, 0)).toBe(c.lesions.reduce((s, l) => s + l.voxels, 0));
      for (const l of c.lesions) {
        expect(l.voxels).toBeGreaterThanOrEqual(MIN_LESION_VOXELS); // survives the default min_size of 10 voxels
        expect(MIN_LESION_VOXELS).toBeGreaterThanOrEqual(10);
        sites.add(l.site);
      }
      lesionsSeen += n;
    }
    expect(lesionsSeen).toBeGreaterThan(6);
    expect(sites).toEqual(new Set(['lung', 'tissue']));
  });

  it('has CT-like intensities, spacing and an LPS-like affine', () => {
    const c = generateCase(5);
    const [X, Y, Z] = c.image.dims;
    const img = c.image.data as Int16Array;
    const mask = c.label.data as Uint8Array;
    // Corners are air: about −1000 HU.
    let air = 0;
    for (let z = 0; z < Z; z++) air += img[X * Y * z] + img[X - 1 + X * Y * z];
    expect(air / (2 * Z)).toBeGreaterThan(-1024);
    expect(air / (2 * Z)).toBeLessThan(-960);
    // Centre line of the body at the lowest slice is soft tissue (0–100 HU on average).
    let soft = 0, cnt = 0;
    for (let x = Math.floor(X * 0.4); x < Math.floor(X * 0.6); x++) {
      soft += img[x + X * Math.floor(Y * 0.45)];
      cnt++;
    }
    expect(soft / cnt).toBeGreaterThan(-20);
    expect(soft / cnt).toBeLessThan(120);
    // Lungs: a good share of voxels below −700 HU in the upper part.
    let lung = 0;
    for (let i = X * Y * Math.floor(Z * 0.6); i < X * Y * Math.floor(Z * 0.8); i++) if (img[i] < -700) lung++;
    expect(lung).toBeGreaterThan(0.05 * X * Y * Math.floor(Z * 0.2));
    let mn = Infinity, mx = -Infinity;
    for (const v of img) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
    expect(mn).toBeGreaterThanOrEqual(-1024);
    expect(mx).toBeLessThan(1200); // bone-like maxima, nothing absurd
    // Lesions stand out from their surroundings by their contrast.
    for (const l of c.lesions) {
      const inside: number[] = [];
      const [cx, cy, cz] = l.center.map(Math.round);
      for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const i = cx + dx + X * (cy + dy + Y * (cz + dz));
        if (mask[i]) inside.push(img[i]);
      }
      const m = inside.reduce((a, b) => a + b, 0) / inside.length;
      expect(Math.abs(m - l.hu)).toBeLessThan(40);
      if (l.site === 'lung') expect(m).toBeGreaterThan(-200);
      else expect(m).toBeGreaterThan(80);
    }
    // Spacing: x = y in [2.0, 2.6], z in [3.0, 4.0]; affine flips x and y (LPS-like) with an origin offset.
    const [sx, sy, sz] = c.spacing;
    expect(sx).toBe(sy);
    expect(sx).toBeGreaterThanOrEqual(2.0);
    expect(sx).toBeLessThanOrEqual(2.6);
    expect(sz).toBeGreaterThanOrEqual(3.0);
    expect(sz).toBeLessThanOrEqual(4.0);
    const A = c.image.affine;
    expect(A[0][0]).toBeCloseTo(-sx, 12);
    expect(A[1][1]).toBeCloseTo(-sy, 12);
    expect(A[2][2]).toBeCloseTo(sz, 12);
    expect(Math.abs(A[2][3])).toBeGreaterThan(50);
    expect(c.label.affine).toEqual(A);
  });

  it('honours the knobs: empty cases, counts, diameters and identity geometry', () => {
    expect(generateCase(1, { emptyFraction: 1 }).lesions).toEqual([]);
    const c = generateCase(2, { emptyFraction: 0, lesionCount: [3, 3], lesionDiameterMm: [20, 20], spacing: [2, 2, 3], orientation: 'identity' });
    expect(c.lesions.length).toBe(3);
    for (const l of c.lesions) {
      // diameter 20 mm → semi-axis 10 mm × aspect 0.8–1.25 → 4–6.25 voxels at 2 mm, 2.67–4.17 at 3 mm
      expect(l.radii[0]).toBeGreaterThanOrEqual(4 - 1e-9);
      expect(l.radii[0]).toBeLessThanOrEqual(6.25 + 1e-9);
      expect(l.radii[2]).toBeGreaterThanOrEqual(20 / 6 * 0.8 - 1e-9);
      expect(l.radii[2]).toBeLessThanOrEqual(20 / 6 * 1.25 + 1e-9);
    }
    expect(c.image.affine).toEqual([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]);
    expect(() => generateCase(1, { size: [8, 96, 48] })).toThrow(/size must be three integers ≥ 16/);
    expect(() => generateCase(1, { lesionDiameterMm: [30, 10] })).toThrow(/lesionDiameterMm must be \[min, max\]/);
  });

  it('writes a NIfTI data set that reads back identically', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-'));
    const res = await writeSynthDataset(dir, { cases: 2, seed: 7, size: [32, 32, 16], lesionDiameterMm: [10, 14] });
    expect(res.images.map((p) => path.relative(dir, p))).toEqual(['images/case_000.nii.gz', 'images/case_001.nii.gz']);
    expect(res.labels.map((p) => path.relative(dir, p))).toEqual(['labels/case_000.nii.gz', 'labels/case_001.nii.gz']);
    const expected = generateCase(caseSeed(7, 1), { size: [32, 32, 16], lesionDiameterMm: [10, 14] });
    const img = await readNifti(res.images[1]);
    const lbl = await readNifti(res.labels[1]);
    expect(img.dims).toEqual([32, 32, 16]);
    expect(Array.from(img.data)).toEqual(Array.from(expected.image.data));
    expect(Array.from(lbl.data)).toEqual(Array.from(expected.label.data));
    for (let r = 0; r < 4; r++) for (let k = 0; k < 4; k++) expect(img.affine[r][k]).toBeCloseTo(expected.image.affine[r][k], 4);
    const manifest = JSON.parse(fs.readFileSync(res.manifest, 'utf8'));
    expect(manifest.cases[1].boxes_voxel).toEqual(Array.from(expected.boxes));
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
