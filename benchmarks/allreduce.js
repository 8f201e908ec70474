// npm run bench -- allreduce [--nproc 2] [--backend gloo|nccl] [--sizes 1,2,4,8,16,32,64] [--iters 5]
//                            [--overlap] [--model] [--master_port 29531]
// All-reduce bandwidth of the distributed backend (Gloo over TCP on this
// machine; NCCL on a GPU machine) for float32 buckets of 1-64 MB, as
// nccl-tests reports it: algbw = bytes / time, busbw = algbw * 2(n-1)/n (the
// traffic each rank's link carries in a ring all-reduce). With --overlap it
// also times a simulated backward pass whose gradients go through the
// bucketed reducer, with and without overlapping communication and compute.
// With --model it times real data-parallel steps of a small BatchNorm
// RetinaNet (ResNet18, widths 16-128, 1 MB buckets, one 64x64x32 patch per
// rank): forward + backward + gradient all-reduce with the reducer fed by the
// model's backward (heads, FPN, then the backbone block by block), with the
// all-reduce only after backward, and fed by backward with SyncBatchNorm.
// Starts --nproc local ranks through the launcher; rank 0 prints the table.
import { fileURLToPath, pathToFileURL } from 'node:url';

const lib = (m) => import(new URL(`../dist/${m}`, import.meta.url).href);

function parse(args) {
  const o = { nproc: 2, backend: 'gloo', sizes: [1, 2, 4, 8, 16, 32, 64], iters: 5, overlap: false, model: false, port: 29531, worker: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--nproc') o.nproc = Number(args[++i]);
    else if (a === '--backend') o.backend = args[++i];
    else if (a === '--sizes') o.sizes = args[++i].split(',').map(Number);
    else if (a === '--iters') o.iters = Number(args[++i]);
    else if (a === '--overlap') o.overlap = true;
    else if (a === '--model') o.model = true;
    else if (a === '--master_port') o.port = Number(args[++i]);
    else if (a === '--worker') o.worker = true;
    else throw new Error(`allreduce benchmark: unknown argument ${a}`);
  }
  return o;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function busy(ms) {
  // Stand-in for backward compute of one layer: keeps this thread busy for ms.
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}

async function worker(o) {
  const { initProcessGroup } = await lib('dist/process_group.js');
  const { Tensor } = await lib('tensor.js');
  const pg = await initProcessGroup({ backend: o.backend });
  const n = pg.worldSize;
  const rows = [];
  for (const mb of o.sizes) {
    const count = Math.round((mb * 2 ** 20) / 4);
    // Correctness first: rank r contributes (r + 1) * p[i] with small integers p[i], so the
    // float32 sum n(n+1)/2 * p[i] is exact; checked against this CPU computation.
    const p = (i) => (i % 7) - 3;
    const x = new Float32Array(count);
    for (let i = 0; i < count; i++) x[i] = (pg.rank + 1) * p(i);
    const t = Tensor.from(x, [count]);
    await pg.allReduce(t, 'sum');
    const got = t.toArray();
    let bad = 0;
    for (let i = 0; i < count; i++) if (got[i] !== ((n * (n + 1)) / 2) * p(i)) bad++;
    // Timing: buffers in the backend's own memory (GPU memory for NCCL).
    const ms = (await pg.timeAllReduce(count, o.iters)) * 1000;
    const algbw = (count * 4) / (ms / 1000) / 1e9;
    rows.push({ mb, ms, algbw, busbw: (algbw * 2 * (n - 1)) / n, check: bad === 0 ? 'ok' : `${bad} wrong` });
  }
  let overlap, model;
  if (o.overlap) overlap = await overlapRun(pg, Tensor, o);
  if (o.model) model = await modelRun(pg, Tensor);
  if (pg.rank === 0) {
    console.log(`all-reduce, backend ${o.backend}, ${n} ranks, float32, median of ${o.iters}`);
    console.log('size (MB) | time (ms) | algbw (GB/s) | busbw (GB/s) | sum vs CPU');
    for (const r of rows)
      console.log(
        `${String(r.mb).padStart(9)} | ${r.ms.toFixed(2).padStart(9)} | ${r.algbw.toFixed(3).padStart(12)} | ${r.busbw.toFixed(3).padStart(12)} | ${r.check}`,
      );
    if (n === 1) console.log('(1 rank: no communication; the time is the call and synchronisation overhead)');
    if (overlap) {
      console.log(`\nsimulated backward: ${overlap.grads} gradients x ${overlap.mb} MB, ${overlap.computeMs} ms compute each, 25 MB buckets`);
      console.log(`  compute only          ${overlap.compute.toFixed(1)} ms`);
      console.log(`  reduce after backward ${overlap.serial.toFixed(1)} ms`);
      console.log(`  overlapped (reducer)  ${overlap.overlapped.toFixed(1)} ms  (communication hidden: ${(overlap.hidden * 100).toFixed(0)}%)`);
    }
    if (model) {
      console.log(`\ndata-parallel steps: ${model.describe}, ${model.buckets} buckets, median of ${model.steps} steps`);
      console.log('reducer fed                         | step (ms) | vs after-backward');
      for (const [name, ms] of model.rows)
        console.log(`${name.padEnd(35)} | ${ms.toFixed(1).padStart(9)} | ${((ms / model.serial) * 100).toFixed(0).padStart(16)}%`);
    }
  }
  await pg.destroy();
}

async function overlapRun(pg, Tensor, o) {
  const grads = 16, mb = 4, computeMs = 15;
  const count = (mb * 2 ** 20) / 4;
  const g = Array.from({ length: grads }, () => Tensor.from(new Float32Array(count).fill(1), [count]));
  const red = pg.createReducer(g, { bucketMB: 25 });
  const step = async (overlapped) => {
    await pg.barrier('overlap');
    const t0 = performance.now();
    for (let i = grads - 1; i >= 0; i--) {
      busy(computeMs);
      if (overlapped) red.markReady(i);
    }
    if (!overlapped) for (let i = grads - 1; i >= 0; i--) red.markReady(i);
    await red.wait();
    return performance.now() - t0;
  };
  await step(true); // warm-up
  const serial = [], over = [];
  for (let i = 0; i < 3; i++) {
    serial.push(await step(false));
    over.push(await step(true));
  }
  red.destroy();
  const compute = grads * computeMs;
  const s = median(serial), v = median(over);
  return { grads, mb, computeMs, compute, serial: s, overlapped: v, hidden: s > compute ? Math.min(1, (s - v) / (s - compute)) : 0 };
}

async function modelRun(pg, Tensor) {
  const { RetinaNet } = await lib('model/retinanet.js');
  const cfg = { depth: 18, widths: [16, 32, 64, 128], fpnChannels: 32, returnedLayers: [1, 2, 3], conv1TStride: [2, 2, 1], numAnchors: 3, numClasses: 1 };
  const shape = [1, 32, 64, 64, 1]; // [N, z, y, x, C]
  const model = RetinaNet.create({ ...cfg, seed: 1 });
  await pg.broadcastModel(model, { params: true, buffers: true }, 0);
  const red = pg.createModelReducer(model, { bucketMB: 1 });
  const params = model.parameters().filter((p) => p.trainable);
  const wave = (n, salt) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + salt + pg.rank));
  const x = Tensor.from(wave(shape.reduce((a, b) => a * b, 1), 0), shape);
  const steps = 3;
  // One step: forward, backward of fixed output gradients, all-reduce; `after`: gradients handed over after backward.
  const step = async (after) => {
    model.zeroGrad();
    await pg.barrier('model-step');
    const t0 = performance.now();
    const out = await model.forwardAsync(x);
    const g = (ts, salt) => ts.map((t, i) => Tensor.from(wave(t.shape.reduce((a, b) => a * b, 1), salt + i).map((v) => v * 1e-3), t.shape));
    await model.backwardAsync({ clsGrads: g(out.clsLogits, 1), boxGrads: g(out.boxRegression, 9) });
    if (after) params.forEach((p, i) => red.markReady(i, model.grad(p.name)));
    await red.finishModel(model);
    return performance.now() - t0;
  };
  const timed = async (after) => {
    await step(after); // warm-up
    const t = [];
    for (let i = 0; i < steps; i++) t.push(await step(after));
    return median(t);
  };
  const overlapped = await timed(false);
  red.detachModel(model);
  const serial = await timed(true);
  red.attachModel(model, { syncBatchNorm: true });
  const synced = await timed(false);
  const buckets = red.buckets.length;
  red.detachModel(model);
  red.destroy();
  return {
    describe: `ResNet18 RetinaNet (widths ${cfg.widths.join('/')}), patch 64x64x32 per rank, ${params.length} parameter tensors`,
    buckets,
    steps,
    serial,
    rows: [
      ['after backward (no overlap)', serial],
      ['during backward (overlap)', overlapped],
      ['during backward + SyncBatchNorm', synced],
    ],
  };
}

export async function main(args) {
  const o = parse(args);
  if (o.worker) return worker(o);
  const { launch } = await lib('dist/launcher.js');
  const code = await launch({
    nprocPerNode: o.nproc,
    masterPort: o.port,
    command: [fileURLToPath(import.meta.url), ...args, '--worker'],
  });
  if (code !== 0) process.exitCode = code;
}

// Run directly (as a launched rank).
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`allreduce benchmark, rank ${process.env.RANK}: ${e.message}`);
    process.exit(1);
  });
}
