// npm run bench -- conv3d [--threads N] [--reps R] [--simd scalar|avx2|avx512] [--quick]
//
// Measures the machine's single-precision FMA ceiling (independent FMA chains
// on each thread) and the GEMM's large-size throughput, then times conv3d
// forward, grad-input and grad-weight on the detector's layer shapes scaled to
// CPU-sized volumes. Each number is the best of R runs (the median is shown
// too: on a shared machine the best is the least disturbed run). The last
// column divides the work by the CPU time the process actually got
// (process.cpuUsage) and compares it with the FMA loop measured the same way:
// on a machine shared with other jobs it shows the code's efficiency on the
// cores it ran on, while the wall-clock columns show what a user sees.
// Uses the built library (dist/ + the addon; DETSEG3D_BUILD_DIR is honoured).
import { loadavg, cpus } from 'node:os';
import { native } from '../dist/native.js';
import { conv3d, conv3dBackward } from '../dist/ops.js';
import { Tensor, xyzToDims } from '../dist/tensor.js';
import { info, setNumThreads, setSimdLevel } from '../dist/info.js';

function parse(args) {
  const o = { threads: 0, reps: 5, simd: '', quick: false };
  for (let i = 0; i < args.length; ++i) {
    const a = args[i];
    if (a === '--threads') o.threads = Number(args[++i]);
    else if (a === '--reps') o.reps = Number(args[++i]);
    else if (a === '--simd') o.simd = args[++i];
    else if (a === '--quick') o.quick = true;
    else throw new Error(`conv3d bench: unknown option ${a}`);
  }
  return o;
}

function random(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; ++i) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

const cpuSeconds = (c) => (c.user + c.system) / 1e6;

function time(fn, reps) {
  fn(); // warm-up (packing buffers, thread pool, page faults)
  const t = [];
  const c0 = process.cpuUsage();
  for (let r = 0; r < reps; ++r) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const cpu = cpuSeconds(process.cpuUsage(c0)) / reps;
  t.sort((a, b) => a - b);
  return { best: t[0], median: t[Math.floor(t.length / 2)], cpu };
}

// GFLOP per CPU-second of the FMA loop on one thread (best of 3).
function peakPerCpuSecond() {
  let best = 0;
  for (let i = 0; i < 3; ++i) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const g = native.benchPeakFlops(1);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.max(best, (g * wall) / Math.max(1e-9, cpuSeconds(process.cpuUsage(c0))));
  }
  return best;
}

const prod = (a) => a.reduce((p, q) => p * q, 1);
const pad = (s, n) => String(s).padStart(n);

// Layer shapes (sizes and strides in (x, y, z) as in MONAI; converted to tensor order).
const SHAPES = [
  { name: '3x3x3 64->64', xyz: [32, 32, 16], ci: 64, co: 64, k: 3, stride: [1, 1, 1], pad: 1 },
  { name: '3x3x3 256->256', xyz: [16, 16, 8], ci: 256, co: 256, k: 3, stride: [1, 1, 1], pad: 1 },
  { name: '1x1x1 256->64', xyz: [32, 32, 16], ci: 256, co: 64, k: 1, stride: [1, 1, 1], pad: 0 },
  { name: '7x7x7 stem 1->64 s[2,2,1]', xyz: [64, 64, 32], ci: 1, co: 64, k: 7, stride: [2, 2, 1], pad: 3 },
  { name: '3x3x3 128->128 s2', xyz: [32, 32, 16], ci: 128, co: 128, k: 3, stride: [2, 2, 2], pad: 1 },
  { name: '3x3x3 256->18 head', xyz: [16, 16, 8], ci: 256, co: 18, k: 3, stride: [1, 1, 1], pad: 1 },
];

export async function main(args) {
  const o = parse(args);
  const start = info();
  if (o.simd) setSimdLevel(o.simd);
  if (o.threads > 0) setNumThreads(o.threads);
  const threads = info().threads;
  const reps = o.quick ? 2 : o.reps;
  console.log(
    `conv3d benchmark: ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} logical CPUs, ` +
      `SIMD ${info().simd}, ${threads} thread(s), load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`,
  );

  // Ceiling: best of 3 runs of the FMA loop.
  const peak1 = Math.max(...[0, 1, 2].map(() => native.benchPeakFlops(1)));
  const peak = Math.max(...[0, 1, 2].map(() => native.benchPeakFlops(threads)));
  const peakCpu = peakPerCpuSecond();
  console.log(
    `FMA peak (float32): ${peak1.toFixed(1)} GFLOP/s on 1 thread, ${peak.toFixed(1)} GFLOP/s on ${threads}; ` +
      `${peakCpu.toFixed(1)} GFLOP per CPU-second (ideal ${threads} cores: ${(threads * peakCpu).toFixed(1)} GFLOP/s)`,
  );
  const gemmSizes = o.quick ? [[1024, 1024, 1024]] : [[2048, 2048, 2048], [16384, 64, 1728], [4096, 256, 2304]];
  for (const [M, N, K] of gemmSizes) {
    const g = native.benchGemm(M, N, K, o.quick ? 2 : 5);
    console.log(
      `GEMM ${M}x${N}x${K} (${g.kernel}): ${g.gflops.toFixed(1)} GFLOP/s = ${((100 * g.gflops) / peak).toFixed(1)}% of peak`,
    );
  }

  console.log('');
  console.log(
    `${'layer'.padEnd(28)} ${'input (x,y,z)'.padEnd(14)} ${'pass'.padEnd(12)} ${pad('best ms', 9)} ${pad('median', 9)} ${pad('GFLOP/s', 8)} ${pad('% peak', 7)} ${pad('% per CPU-s', 11)}`,
  );
  for (const s of o.quick ? SHAPES.slice(0, 2) : SHAPES) {
    const D = xyzToDims(s.xyz);
    const stride = xyzToDims(s.stride);
    const xs = [1, ...D, s.ci];
    const ws = [s.co, s.k, s.k, s.k, s.ci];
    const x = Tensor.from(random(prod(xs), 1), xs);
    const w = Tensor.from(random(prod(ws), 2), ws);
    const opts = { stride, padding: s.pad };
    const y = conv3d(x, w, null, opts);
    const dy = Tensor.from(random(prod(y.shape), 3), y.shape);
    const flops = 2 * prod(y.shape.slice(0, 4)) * s.co * s.k ** 3 * s.ci;
    const passes = [
      ['forward', () => conv3d(x, w, null, opts)],
      ['grad input', () => conv3dBackward(x, w, dy, { ...opts, input: true, weight: false })],
      ['grad weight', () => conv3dBackward(x, w, dy, { ...opts, input: false, weight: true })],
    ];
    for (const [pass, fn] of passes) {
      const t = time(fn, reps);
      const gf = flops / t.best / 1e9;
      console.log(
        `${s.name.padEnd(28)} ${s.xyz.join('x').padEnd(14)} ${pass.padEnd(12)} ${pad((t.best * 1e3).toFixed(2), 9)} ${pad((t.median * 1e3).toFixed(2), 9)} ${pad(gf.toFixed(1), 8)} ${pad(((100 * gf) / peak).toFixed(1), 7)} ${pad(((100 * flops) / t.cpu / 1e9 / peakCpu).toFixed(1), 11)}`,
      );
    }
  }
  console.log(`\nload average after: ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  setSimdLevel(start.simd);
  setNumThreads(start.threads);
}
