// A tiny detection dataset for training tests: bright cuboids (100 HU) on a
// noisy −600 HU background, 32×32×16 voxels, with their masks, written as
// NIfTI with a 1.5 × 1.5 × 2 mm RAS affine. `maxCubes` 1 draws exactly one
// cuboid per case; 2 draws one or two.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeNifti } from '../../src/io/nifti.js';

export async function writeCubes(dir: string, cases: number, seed: number, maxCubes: 1 | 2 = 2): Promise<void> {
  mkdirSync(join(dir, 'images'), { recursive: true });
  mkdirSync(join(dir, 'labels'), { recursive: true });
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const dims: [number, number, number] = [32, 32, 16];
  const affine = [[1.5, 0, 0, -20], [0, 1.5, 0, 10], [0, 0, 2, 5], [0, 0, 0, 1]];
  for (let c = 0; c < cases; c++) {
    const img = new Int16Array(32 * 32 * 16);
    const lab = new Uint8Array(img.length);
    for (let i = 0; i < img.length; i++) img[i] = Math.round(-600 + 60 * (rnd() - 0.5));
    const n = maxCubes === 1 ? 1 : 1 + Math.floor(rnd() * 2);
    for (let k = 0; k < n; k++) {
      const w = [5 + Math.floor(rnd() * 4), 5 + Math.floor(rnd() * 4), 3 + Math.floor(rnd() * 3)];
      const o = [0, 1, 2].map((a) => Math.floor(rnd() * (dims[a] - w[a])));
      for (let z = o[2]; z < o[2] + w[2]; z++)
        for (let y = o[1]; y < o[1] + w[1]; y++)
          for (let x = o[0]; x < o[0] + w[0]; x++) {
            img[(z * 32 + y) * 32 + x] = 100;
            lab[(z * 32 + y) * 32 + x] = 1;
          }
    }
    const name = `case_${String(c).padStart(2, '0')}.nii.gz`;
    await writeNifti(join(dir, 'images', name), { data: img, dims, affine });
    await writeNifti(join(dir, 'labels', name), { data: lab, dims, affine });
  }
}
