// npm run bench -- train-step [--sizes 64x64x32,96x96x48] [--steps 5] [--threads N] [--quick]
//
// One training step of the seed network (MONAI LUNA16 RetinaNet: ResNet50,
// returned layers [1, 2], stem stride (2, 2, 1), 1 channel, 1 class, 3
// anchors): forward + backward + SGD (momentum 0.9, Nesterov, weight decay
// 3e-5) on one patch (batch 1). Output gradients are fixed random values (the
// loss itself is not part of the network). Each size runs in its own child
// process so that its peak RSS is its own. Reported: median of the timed
// steps (after one warm-up step) split into forward / backward / step,
// voxels per second, the allocator's peak bytes during the steps, and the
// process's peak RSS, next to MONAI on PyTorch 1.13 on the reference machine
// (2 threads: 3.75 s / 1.1 GB at 64x64x32, 6.3 s / 1.6 GB at 96x96x48).
// Sizes are (x, y, z). Uses the built library (dist/ + the addon; DETSEG3D_BUILD_DIR is honoured).
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const MONAI = { '64x64x32': { s: 3.75, rss: 1.1e9 }, '96x96x48': { s: 6.3, rss: 1.6e9 } };

function parse(args) {
  const o = { sizes: ['64x64x32', '96x96x48'], steps: 5, threads: 0, child: '' };
  for (let i = 0; i < args.length; ++i) {
    const a = args[i];
    if (a === '--sizes') o.sizes = args[++i].split(',');
    else if (a === '--steps') o.steps = Number(args[++i]);
    else if (a === '--threads') o.threads = Number(args[++i]);
    else if (a === '--quick') (o.sizes = ['32x32x16']), (o.steps = 2);
    else if (a === '--child') o.child = args[++i];
    else throw new Error(`train-step bench: unknown option ${a}`);
  }
  if (!(o.steps >= 1)) throw new Error('train-step bench: --steps must be >= 1');
  return o;
}

const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];

function random(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; ++i) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

// Runs one size in this process and prints a JSON line.
async function child(size, o) {
  const { RetinaNet, SGD, LUNA16_CONFIG } = await import('../dist/model/index.js');
  const { Tensor, volumeTensorShape } = await import('../dist/tensor.js');
  const { memoryStats, resetPeakMemory, setNumThreads, info } = await import('../dist/info.js');
  if (o.threads > 0) setNumThreads(o.threads);
  const xyz = size.split('x').map(Number);
  const model = RetinaNet.create({ ...LUNA16_CONFIG, seed: 1 });
  const opt = new SGD(model, { lr: 1e-3, momentum: 0.9, nesterov: true, weightDecay: 3e-5 });
  const x = Tensor.from(random(xyz[0] * xyz[1] * xyz[2], 7), volumeTensorShape(xyz));
  let grads = null;
  const t = { fwd: [], bwd: [], step: [], total: [] };
  resetPeakMemory();
  for (let s = 0; s <= o.steps; ++s) {
    const t0 = performance.now();
    model.zeroGrad();
    const out = await model.forwardAsync(x);
    const t1 = performance.now();
    if (!grads) {
      const mk = (ts, seed) => ts.map((u, i) => Tensor.from(random(u.numel, seed + i).map((v) => v * 1e-3), u.shape));
      grads = { clsGrads: mk(out.clsLogits, 100), boxGrads: mk(out.boxRegression, 200) };
    }
    await model.backwardAsync(grads);
    const t2 = performance.now();
    await opt.stepAsync();
    const t3 = performance.now();
    if (s === 0) continue; // warm-up
    t.fwd.push(t1 - t0);
    t.bwd.push(t2 - t1);
    t.step.push(t3 - t2);
    t.total.push(t3 - t0);
  }
  const ms = memoryStats();
  const r = {
    size,
    threads: info().threads,
    fwd: median(t.fwd),
    bwd: median(t.bwd),
    step: median(t.step),
    total: median(t.total),
    peakNative: ms.peakBytes,
    maxRss: process.resourceUsage().maxRSS * 1024,
    voxels: xyz[0] * xyz[1] * xyz[2],
  };
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
}

const pad = (s, n) => String(s).padStart(n);
const mb = (b) => (b / 1e6).toFixed(0);

export async function main(args) {
  const o = parse(args);
  if (o.child) return child(o.child, o);
  console.log(`train-step: LUNA16 RetinaNet (20.9 M parameters), batch 1, ${o.steps} timed steps after 1 warm-up`);
  console.log(`machine: ${cpus().length} cores, load ${loadavg()[0].toFixed(2)}${o.threads ? `, threads ${o.threads}` : ''}`);
  console.log(
    `${'size (x,y,z)'.padEnd(13)}${pad('fwd s', 8)}${pad('bwd s', 8)}${pad('sgd s', 8)}${pad('step s', 8)}${pad('kvox/s', 8)}` +
      `${pad('native MB', 11)}${pad('RSS MB', 8)}${pad('MONAI s', 9)}${pad('speedup', 9)}${pad('MONAI MB', 10)}`,
  );
  const self = fileURLToPath(import.meta.url);
  for (const size of o.sizes) {
    if (!/^\d+x\d+x\d+$/.test(size)) throw new Error(`train-step bench: size must look like 64x64x32, got ${size}`);
    const argv = [self, '--child', size, '--steps', String(o.steps)];
    if (o.threads) argv.push('--threads', String(o.threads));
    const r = spawnSync(process.execPath, argv, { encoding: 'utf8', env: process.env, maxBuffer: 1 << 24 });
    const line = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) {
      console.log(`${size.padEnd(13)} failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
      continue;
    }
    const v = JSON.parse(line.slice(7));
    const ref = MONAI[size];
    console.log(
      `${size.padEnd(13)}${pad((v.fwd / 1e3).toFixed(2), 8)}${pad((v.bwd / 1e3).toFixed(2), 8)}${pad((v.step / 1e3).toFixed(3), 8)}` +
        `${pad((v.total / 1e3).toFixed(2), 8)}${pad((v.voxels / v.total).toFixed(1), 8)}${pad(mb(v.peakNative), 11)}${pad(mb(v.maxRss), 8)}` +
        `${pad(ref ? ref.s.toFixed(2) : '-', 9)}${pad(ref ? `${(ref.s / (v.total / 1e3)).toFixed(2)}x` : '-', 9)}${pad(ref ? mb(ref.rss) : '-', 10)}`,
    );
  }
  console.log('target: step <= 1.9 s (64x64x32) and <= 3.1 s (96x96x48) with RSS no larger than MONAI');
}

// Run directly as the per-size child process.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
