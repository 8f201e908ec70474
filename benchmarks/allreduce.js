// npm run bench -- allreduce [--nproc 2] [--backend gloo|nccl] [--sizes 1,2,4,8,16,32,64] [--iters 5]
//                            [--overlap] [--master_port 29531]
// All-reduce bandwidth of the distributed backend (Gloo over TCP on this
// machine; NCCL on a GPU machine) for float32 buckets of 1-64 MB, as
// nccl-tests reports it: algbw = bytes / time, busbw = algbw * 2(n-1)/n (the
// traffic each rank's link carries in a ring all-reduce). With --overlap it
// also times a simulated backward pass whose gradients go through the
// bucketed reducer, with and without overlapping communication and compute.
// Starts --nproc local ranks through the launcher; rank 0 prints the table.
import { fileURLToPath, pathToFileURL } from 'node:url';

const lib = (m) => import(new URL(`../dist/${m}`, import.meta.url).href);

function parse(args) {
  const o = { nproc: 2, backend: 'gloo', sizes: [1, 2, 4, 8, 16, 32, 64], iters: 5, overlap: false, port: 29531, worker: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--nproc') o.nproc = Number(args[++i]);
    else if (a === '--backend') o.backend = args[++i];
    else if (a === '--sizes') o.sizes = args[++i].split(',').map(Number);
    else if (a === '--iters') o.iters = Number(args[++i]);
    else if (a === '--overlap') o.overlap = true;
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
  let overlap;
  if (o.overlap) overlap = await overlapRun(pg, Tensor, o);
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
