import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNifti } from '../../src/io/nifti.js';
import { listFolderDataset, type CaseSource } from '../../src/data/dataset.js';
import { createTrainLoader, createValidationLoader, type LoaderOptions } from '../../src/data/loader.js';
import type { Batch } from '../../src/data/pipeline.js';
import type { Affine } from '../../src/io/volume.js';

const root = mkdtempSync(join(tmpdir(), 'detseg3d-loader-'));
let cases: CaseSource[] = [];
const dims: [number, number, number] = [40, 36, 20];
const A: Affine = [[0.8, 0, 0, -10], [0, 0.8, 0, 5], [0, 0, 2, 0], [0, 0, 0, 1]];

beforeAll(async () => {
  mkdirSync(join(root, 'images'));
  mkdirSync(join(root, 'labels'));
  for (const [k, id] of ['c0', 'c1', 'c2', 'neg'].entries()) {
    const img = new Int16Array(40 * 36 * 20);
    for (let i = 0; i < img.length; i++) img[i] = ((i * 7919 + k * 104729) % 1500) - 1000;
    const mask = new Uint8Array(img.length);
    if (id !== 'neg') {
      // two lesions per case, at case-dependent places
      for (const [x0, y0, z0, v] of [[5 + k, 6, 3, 1], [25, 20 + k, 10, 2]]) {
        for (let z = z0; z < z0 + 3; z++) for (let y = y0; y < y0 + 4; y++) for (let x = x0; x < x0 + 5; x++) {
          mask[x + 40 * (y + 36 * z)] = v;
          img[x + 40 * (y + 36 * z)] = 200;
        }
      }
    }
    await writeNifti(join(root, 'images', `${id}.nii.gz`), { data: img, dims, affine: A });
    await writeNifti(join(root, 'labels', `${id}.nii.gz`), { data: mask, dims, affine: A });
  }
  cases = listFolderDataset(root);
});

const base = (): LoaderOptions => ({ cases, patchSize: [24, 24, 12], batchSize: 2, seed: 7, minSize: 5 });

async function collect(opts: LoaderOptions, epochs: number[]): Promise<Batch[][]> {
  const loader = await createTrainLoader(opts);
  try {
    const out: Batch[][] = [];
    for (const e of epochs) {
      const batches: Batch[] = [];
      for await (const b of loader.epoch(e)) batches.push(b);
      out.push(batches);
    }
    return out;
  } finally {
    await loader.close();
  }
}

function same(a: Batch[], b: Batch[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i];
    return JSON.stringify(x.caseIds) === JSON.stringify(y.caseIds) &&
      Buffer.from(x.images.buffer).equals(Buffer.from(y.images.buffer)) &&
      JSON.stringify(x.boxes.map((q) => Array.from(q))) === JSON.stringify(y.boxes.map((q) => Array.from(q))) &&
      JSON.stringify(x.labels.map((q) => Array.from(q))) === JSON.stringify(y.labels.map((q) => Array.from(q)));
  });
}

describe('training loader', () => {
  let inProcess: Batch[][];
  beforeAll(async () => {
    inProcess = await collect({ ...base(), workers: 0 }, [0, 1]);
  });

  it('produces batches of the documented layout', () => {
    const [e0] = inProcess;
    expect(e0.length).toBe(4); // one batch per case, negatives kept
    for (const b of e0) {
      expect(b.images.length).toBe(2 * 24 * 24 * 12);
      expect(b.patchSize).toEqual([24, 24, 12]);
      expect(b.boxes.length).toBe(2);
      expect(b.labels.length).toBe(2);
      expect(new Set(b.caseIds).size).toBe(1);
      for (let i = 0; i < 2; i++) {
        expect(b.boxes[i].length).toBe(6 * b.labels[i].length);
        for (let j = 0; j < b.boxes[i].length; j += 6) {
          for (let a = 0; a < 3; a++) {
            expect(b.boxes[i][j + a]).toBeGreaterThanOrEqual(0);
            expect(b.boxes[i][j + 3 + a]).toBeLessThanOrEqual([24, 24, 12][a]);
            expect(b.boxes[i][j + 3 + a] - b.boxes[i][j + a]).toBeGreaterThanOrEqual(1);
          }
        }
      }
      // CT default normalisation clips to [0, 1]; noise/contrast/scale/shift may move values slightly outside
      let mn = Infinity, mx = -Infinity;
      for (const v of b.images) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
      expect(mn).toBeGreaterThan(-1);
      expect(mx).toBeLessThan(2);
    }
    // every positive case's first (positive) patch contains a lesion box
    for (const b of e0) if (b.caseIds[0] !== 'neg') expect(b.labels[0].length).toBeGreaterThan(0);
    // epochs differ (order and augmentation)
    expect(same(inProcess[0], inProcess[1])).toBe(false);
  });

  it('is deterministic: same seed → same batches, with 2 worker threads as in-process', async () => {
    const threaded = await collect({ ...base(), workers: 2, prefetch: 3 }, [0, 1]);
    expect(same(threaded[0], inProcess[0])).toBe(true);
    expect(same(threaded[1], inProcess[1])).toBe(true);
    const other = await collect({ ...base(), workers: 0, seed: 8 }, [0]);
    expect(same(other[0], inProcess[0])).toBe(false);
  });

  it('reports negatives and can drop them', async () => {
    const loader = await createTrainLoader({ ...base(), workers: 0, keepNegatives: false });
    expect(loader.report.negatives).toEqual(['neg']);
    expect(loader.report.droppedNegatives).toEqual(['neg']);
    expect(loader.batchesPerEpoch).toBe(3);
    expect(loader.cases.find((c) => c.id === 'c1')!.boxes).toBe(2);
    await loader.close();
  });

  it('disk cache gives the same batches and is reused', async () => {
    const cacheDir = join(root, 'cache');
    const a = await collect({ ...base(), workers: 1, cacheDir }, [0]);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith('.raw')).length).toBe(4);
    expect(same(a[0], inProcess[0])).toBe(true);
    const b = await collect({ ...base(), workers: 0, cacheDir }, [0]);
    expect(same(b[0], inProcess[0])).toBe(true);
  });

  it('stops cleanly when the consumer breaks out early', async () => {
    const loader = await createTrainLoader({ ...base(), workers: 2 });
    let n = 0;
    for await (const b of loader.epoch(0)) {
      expect(b.images.length).toBeGreaterThan(0);
      if (++n === 1) break;
    }
    // the next epoch still works after an abandoned one
    let m = 0;
    for await (const _ of loader.epoch(1)) m++;
    expect(m).toBe(4);
    await loader.close();
    await expect(loader.epoch(2).next()).rejects.toThrow(/closed/);
  });
});

describe('errors surface with the offending file', () => {
  it('a corrupt image fails loader creation (worker thread)', async () => {
    const bad = join(root, 'corrupt.nii.gz');
    writeFileSync(bad, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
    await expect(createTrainLoader({ ...base(), workers: 2, cases: [...cases, { id: 'corrupt', image: bad }] }))
      .rejects.toThrow(/corrupt\.nii\.gz: cannot decompress/);
  });

  it('a failing batch rejects the epoch iterator with the case file', async () => {
    const loader = await createTrainLoader({ ...base(), workers: 1, patchSize: [24, 0, 12] });
    const it = loader.epoch(0);
    await expect(it.next()).rejects.toThrow(/images[\\/]c\d\.nii\.gz|images[\\/]neg\.nii\.gz/);
    await loader.close();
  });
});

describe('validation loader', () => {
  it('yields whole normalised volumes in order, no augmentation', async () => {
    const loader = await createValidationLoader({ cases: cases.slice(0, 2), workers: 1, minSize: 5 });
    const items = [];
    for await (const v of loader) items.push(v);
    await loader.close();
    expect(items.map((v) => v.caseIds[0])).toEqual(['c0', 'c1']);
    const v = items[0];
    expect(v.patchSize).toEqual(dims);
    expect(v.images.length).toBe(40 * 36 * 20);
    // lesion voxels were 200 HU → (200 + 1024) / 1324
    expect(v.images[5 + 40 * (6 + 36 * 3)]).toBeCloseTo(1224 / 1324, 6);
    // boxes as in the file (RAS already): x 5..10, y 6..10, z 3..6 and x 25..30, y 20..24, z 10..13
    expect(Array.from(v.boxes[0])).toEqual([5, 6, 3, 10, 10, 6, 25, 20, 10, 30, 24, 13]);
    expect(Array.from(v.labels[0])).toEqual([0, 1]);
  });
});

afterAll(() => {});
