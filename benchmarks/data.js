// npm run bench -- data [--size 512,512,256] [--patch 192,192,80] [--batch 4] [--batches 6] [--workers 1,2]
//
// Throughput of the data pipeline:
//   - NIfTI decode (MB/s of voxel data) for .nii and .nii.gz
//   - segmentation → boxes (connected components) on a 512x512x300 mask
//   - the full training pipeline: cached int16 CT-like volume → augmented
//     float32 patches with boxes, in-process and through the worker pool.
import { mkdtempSync, rmSync, readFileSync, statSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { readNiftiBuffer, writeNifti } from '../dist/io/nifti.js';
import { boxesFromSegmentation } from '../dist/data/boxes_from_mask.js';
import { createTrainLoader } from '../dist/data/loader.js';
import { makeTrainBatch } from '../dist/data/pipeline.js';
import { prepareCase } from '../dist/data/prepare.js';

function arg(args, name, def) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
}
const triple = (s) => s.split(',').map(Number);

// Deterministic CT-like volume: air, an elliptic body (soft tissue with noise),
// two lungs, a spine, and spherical lesions (also returned as a mask).
function ctVolume(dims, lesions = 12) {
  const [X, Y, Z] = dims;
  const img = new Int16Array(X * Y * Z);
  const mask = new Uint8Array(X * Y * Z);
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  const cx = X / 2, cy = Y / 2;
  for (let z = 0; z < Z; z++) {
    for (let y = 0; y < Y; y++) {
      for (let x = 0; x < X; x++) {
        const bx = (x - cx) / (0.45 * X), by = (y - cy) / (0.35 * Y);
        let v = -1000;
        if (bx * bx + by * by < 1) {
          v = 40;
          const lx = (Math.abs(x - cx) - 0.2 * X) / (0.12 * X), ly = (y - cy) / (0.22 * Y);
          if (lx * lx + ly * ly < 1) v = -850;
          const sx = (x - cx) / (0.04 * X), sy = (y - (cy + 0.25 * Y)) / (0.04 * Y);
          if (sx * sx + sy * sy < 1) v = 700;
        }
        img[x + X * (y + Y * z)] = v + Math.floor(rnd() * 40) - 20;
      }
    }
  }
  for (let l = 0; l < lesions; l++) {
    const r = 3 + Math.floor(rnd() * 8);
    const c = [cx + (rnd() - 0.5) * 0.5 * X, cy + (rnd() - 0.5) * 0.4 * Y, r + rnd() * (Z - 2 * r)];
    for (let z = Math.max(0, Math.floor(c[2] - r)); z <= Math.min(Z - 1, c[2] + r); z++) {
      for (let y = Math.floor(c[1] - r); y <= c[1] + r; y++) {
        for (let x = Math.floor(c[0] - r); x <= c[0] + r; x++) {
          if ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r) {
            img[x + X * (y + Y * z)] = 60;
            mask[x + X * (y + Y * z)] = 1;
          }
        }
      }
    }
  }
  return { img, mask };
}

function time(fn) {
  const t = process.hrtime.bigint();
  const r = fn();
  return [Number(process.hrtime.bigint() - t) / 1e9, r];
}

export async function main(args) {
  const size = triple(arg(args, 'size', '512,512,256'));
  const patch = triple(arg(args, 'patch', '192,192,80'));
  const batch = Number(arg(args, 'batch', '4'));
  const nBatches = Number(arg(args, 'batches', '6'));
  const workerCounts = triple(arg(args, 'workers', '1,2'));
  const dir = mkdtempSync(join(tmpdir(), 'detseg3d-bench-data-'));
  const rows = [];
  const row = (what, shape, seconds, throughput) => rows.push({ what, shape, 'time (s)': seconds.toFixed(3), throughput });
  try {
    console.log(`data benchmark: volume ${size.join('x')} int16, patch ${patch.join('x')}, ${batch} patches/batch, ${cpus().length} cores`);
    const { img, mask } = ctVolume(size);
    const affine = [[0.7, 0, 0, 0], [0, 0.7, 0, 0], [0, 0, 1.25, 0], [0, 0, 0, 1]];
    const paths = { nii: join(dir, 'ct.nii'), gz: join(dir, 'ct.nii.gz'), label: join(dir, 'ct_label.nii.gz') };
    await writeNifti(paths.nii, { data: img, dims: size, affine });
    await writeNifti(paths.gz, { data: img, dims: size, affine });
    await writeNifti(paths.label, { data: mask, dims: size, affine });
    const rawMB = img.byteLength / 1e6;

    for (const [name, p] of [['.nii', paths.nii], ['.nii.gz', paths.gz]]) {
      const buf = readFileSync(p);
      readNiftiBuffer(buf); // warm-up
      const [t] = time(() => readNiftiBuffer(buf, p));
      row(`NIfTI decode ${name} (${(statSync(p).size / 1e6).toFixed(0)} MB file)`, size.join('x'), t, `${(rawMB / t).toFixed(0)} MB/s voxels`);
    }

    // Connected components at the reference size (512x512x300), same lesions pattern.
    const ccDims = [512, 512, 300];
    const cc = ctVolume(ccDims, 20).mask;
    boxesFromSegmentation({ data: cc, dims: ccDims });
    const [tcc, res] = time(() => boxesFromSegmentation({ data: cc, dims: ccDims }));
    row(`boxesFromSegmentation (${res.labels.length} boxes, 26-conn)`, ccDims.join('x'), tcc, `${(cc.length / tcc / 1e6).toFixed(0)} Mvox/s`);

    // Pre-processing (decode + boxes + RAS check) of one case.
    const src = { id: 'ct', image: paths.gz, label: paths.label };
    const t0 = process.hrtime.bigint();
    const prepared = await prepareCase(src, {});
    const tPrep = Number(process.hrtime.bigint() - t0) / 1e9;
    row('prepare case (decode image+mask, boxes, stats)', size.join('x'), tPrep, `${prepared.labels.length} boxes`);

    // In-process pipeline (one thread, no worker overhead).
    const opts = { patchSize: patch, batchSize: batch };
    makeTrainBatch(prepared, opts, 1, [0, 0]);
    const [tb] = time(() => { for (let i = 0; i < 3; i++) makeTrainBatch(prepared, opts, 1, [1, i]); });
    row('train pipeline, in-process (1 thread)', `${batch}x${patch.join('x')}`, tb, `${((3 * batch) / tb).toFixed(1)} patches/s`);

    const runs = workerCounts.map((w) => ({ w, cacheDir: undefined }));
    runs.push({ w: Math.max(...workerCounts), cacheDir: join(dir, 'cache') });
    for (const { w, cacheDir } of runs) {
      // Several case entries of the same file so the pool has work across cases (each is cached once).
      const cases = Array.from({ length: Math.max(2, w) }, (_, i) => ({ ...src, id: `ct${i}` }));
      const loader = await createTrainLoader({ cases, workers: w, patchSize: patch, batchSize: batch, seed: 1, cacheDir });
      const it = loader.stream(0, Math.ceil((nBatches + 1) / cases.length) + 1);
      await it.next(); // warm-up (workers start, JIT)
      const t1 = process.hrtime.bigint();
      for (let i = 0; i < nBatches; i++) await it.next();
      const t = Number(process.hrtime.bigint() - t1) / 1e9;
      await it.return(undefined);
      await loader.close();
      const what = `train loader, ${w} worker${w > 1 ? 's' : ''}${cacheDir ? ', disk cache (slab reads)' : ', memory cache'}`;
      row(what, `${batch}x${patch.join('x')}`, t, `${((nBatches * batch) / t).toFixed(1)} patches/s`);
    }
    console.table(rows);
    console.log('target: >= 8 patches/s with 2 workers on a 2-core machine (noisy when the machine is shared).');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
