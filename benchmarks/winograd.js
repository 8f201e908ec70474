// npm run bench -- winograd [--reps R] [--threads N] [--simd avx2|avx512] [--sizes 8,12,16,24] [--channels 64,128,256] [--quick]
//
// The Winograd paths of conv3d (native/ops/conv3d_winograd.cpp) against the
// GEMM path on 3x3x3, stride-1, padding-1 layers with cubic inputs (the
// detector's finest level is 24^3 at 96x96x48 and 16^3 at 64x64x32): F(2,3)^3
// tiles ("F2") and the mixed F(2,3) x F(4,3)^2 tiles ("F4").
// DETSEG3D_WINOGRAD is switched per call (0 = GEMM path, 1 = Winograd, forced
// even below the automatic size threshold, so the crossover is visible) and
// DETSEG3D_WINOGRAD_TILE (2 or 4) picks the tiles; the three paths alternate
// and each number is the best of R runs of both rounds.
// GFLOP/s counts the direct convolution's FLOPs (2 * positions * 27 * Cin * Cout),
// so Winograd can exceed the machine's FMA peak, which is printed for scale.
// Uses the built library (dist/ + the addon; DETSEG3D_BUILD_DIR is honoured).
import { loadavg } from 'node:os';
import { native } from '../dist/native.js';
import { conv3d, conv3dBackward } from '../dist/ops.js';
import { Tensor } from '../dist/tensor.js';
import { info, setNumThreads, setSimdLevel } from '../dist/info.js';

function parse(args) {
  const o = { reps: 3, threads: 0, simd: '', sizes: [8, 12, 16, 24], channels: [64, 128, 256] };
  for (let i = 0; i < args.length; ++i) {
    const a = args[i];
    if (a === '--reps') o.reps = Number(args[++i]);
    else if (a === '--threads') o.threads = Number(args[++i]);
    else if (a === '--simd') o.simd = args[++i];
    else if (a === '--sizes') o.sizes = args[++i].split(',').map(Number);
    else if (a === '--channels') o.channels = args[++i].split(',').map(Number);
    else if (a === '--quick') (o.reps = 1), (o.sizes = [8, 16]), (o.channels = [256]);
    else throw new Error(`winograd bench: unknown option ${a}`);
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

function best(fn, reps) {
  fn(); // warm-up
  let b = Infinity;
  for (let r = 0; r < reps; ++r) {
    const t0 = process.hrtime.bigint();
    fn();
    b = Math.min(b, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return b;
}

const pad = (s, n) => String(s).padStart(n);

export async function main(args) {
  const o = parse(args);
  const start = info();
  const envBefore = process.env.DETSEG3D_WINOGRAD;
  const tileBefore = process.env.DETSEG3D_WINOGRAD_TILE;
  if (o.simd) setSimdLevel(o.simd);
  if (o.threads > 0) setNumThreads(o.threads);
  const threads = info().threads;
  const peak = Math.max(...[0, 1, 2].map(() => native.benchPeakFlops(threads)));
  console.log(
    `winograd benchmark: SIMD ${info().simd}, ${threads} thread(s), FMA peak ${peak.toFixed(0)} GFLOP/s, ` +
      `load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`,
  );
  console.log(
    `${'layer'.padEnd(16)} ${'pass'.padEnd(12)} ${pad('GEMM ms', 9)} ${pad('F2 ms', 9)} ${pad('F4 ms', 9)} ${pad('F2 gain', 8)} ${pad('F4 gain', 8)} ${pad('GEMM GF/s', 10)} ${pad('F4 GF/s', 10)}`,
  );
  try {
    for (const C of o.channels)
      for (const s of o.sizes) {
        const D = [s, s, s];
        const X = Tensor.from(random(s * s * s * C, 1), [1, ...D, C]);
        const W = Tensor.from(random(C * 27 * C, 2), [C, 3, 3, 3, C]);
        const DY = Tensor.from(random(s * s * s * C, 3), [1, ...D, C]);
        const flops = 2 * s * s * s * 27 * C * C;
        const passes = [
          ['forward', () => conv3d(X, W, null, { padding: 1 })],
          ['grad input', () => conv3dBackward(X, W, DY, { padding: 1, weight: false })],
          ['grad weight', () => conv3dBackward(X, W, DY, { padding: 1, input: false })],
        ];
        for (const [pass, fn] of passes) {
          const t = { gemm: Infinity, f2: Infinity, f4: Infinity };
          const modes = { gemm: ['0', '2'], f2: ['1', '2'], f4: ['1', '4'] };
          for (const m of ['gemm', 'f2', 'f4', 'gemm', 'f2', 'f4']) {
            [process.env.DETSEG3D_WINOGRAD, process.env.DETSEG3D_WINOGRAD_TILE] = modes[m];
            t[m] = Math.min(t[m], best(fn, o.reps));
          }
          console.log(
            `${`${s}^3 ${C}->${C}`.padEnd(16)} ${pass.padEnd(12)} ${pad(t.gemm.toFixed(2), 9)} ${pad(t.f2.toFixed(2), 9)} ${pad(t.f4.toFixed(2), 9)} ` +
              `${pad(`${(t.gemm / t.f2).toFixed(2)}x`, 8)} ${pad(`${(t.gemm / t.f4).toFixed(2)}x`, 8)} ${pad((flops / t.gemm / 1e6).toFixed(0), 10)} ${pad((flops / t.f4 / 1e6).toFixed(0), 10)}`,
          );
        }
      }
  } finally {
    if (envBefore === undefined) delete process.env.DETSEG3D_WINOGRAD;
    else process.env.DETSEG3D_WINOGRAD = envBefore;
    if (tileBefore === undefined) delete process.env.DETSEG3D_WINOGRAD_TILE;
    else process.env.DETSEG3D_WINOGRAD_TILE = tileBefore;
    setSimdLevel(start.simd);
    setNumThreads(start.threads);
  }
  console.log(`load average after: ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
}
