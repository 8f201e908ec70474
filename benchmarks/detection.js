// npm run bench -- detection [--reps R] [--batch N] [--step-ms MS] [--quick]
//
// Times the detection logic that runs every training / inference step:
//  - ATSS matching and the full loss (match + hard-negative sampling + focal
//    / BCE + smooth-L1 / GIoU with gradients) for MONAI's LUNA16 seed
//    configuration: a 192x192x80 patch, 3 levels with strides (4,4,2),
//    (8,8,4), (16,16,8) -> feature maps 48x48x40, 24x24x20, 12x12x10, base
//    anchor shapes (6,8,4), (8,6,5), (10,10,6) (315,360 anchors), 5 GT boxes;
//  - post-processing (+ NMS) of 3 levels of head outputs of a 512x512x208
//    volume (5.8 M anchors), one class.
// Each number is the best of R runs (median shown too). "% of step" relates
// the time to --step-ms (default 1000 ms, a fast GPU training step of the
// seed configuration); the target is well under 5 %.
// Uses the built library (dist/ + the addon; DETSEG3D_BUILD_DIR is honoured).
import { anchors, boxes, detector, match } from '../dist/detection/index.js';
import { Tensor } from '../dist/tensor.js';

function parse(args) {
  const o = { reps: 5, batch: 1, stepMs: 1000, quick: false };
  for (let i = 0; i < args.length; ++i) {
    const a = args[i];
    if (a === '--reps') o.reps = Number(args[++i]);
    else if (a === '--batch') o.batch = Number(args[++i]);
    else if (a === '--step-ms') o.stepMs = Number(args[++i]);
    else if (a === '--quick') o.quick = true;
    else throw new Error(`detection bench: unknown option ${a}`);
  }
  return o;
}

function lcg(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function time(fn, reps) {
  fn();
  const t = [];
  for (let r = 0; r < reps; ++r) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  return { best: t[0], median: t[Math.floor(t.length / 2)] };
}

const STRIDES = [[4, 4, 2], [8, 8, 4], [16, 16, 8]];
const SHAPES = [[6, 8, 4], [8, 6, 5], [10, 10, 6]];

function config(imageSize) {
  const featureMapSizes = STRIDES.map((s) => s.map((v, k) => imageSize[k] / v));
  const lv = anchors.generate({ imageSize, featureMapSizes, baseAnchorShapes: SHAPES });
  return { featureMapSizes, lv, total: lv.reduce((a, l) => a + l.length / 6, 0) };
}

// Head outputs [N, z, y, x, A*ch] with values from gen().
function heads(featureMapSizes, N, C, gen) {
  const A = SHAPES.length;
  const mk = (ch, f) => featureMapSizes.map((s) => {
    const n = N * s[0] * s[1] * s[2] * A * ch;
    const a = new Float32Array(n);
    for (let i = 0; i < n; ++i) a[i] = f();
    return Tensor.from(a, [N, s[2], s[1], s[0], A * ch]);
  });
  return { clsLogits: mk(C, gen.cls), boxRegression: mk(6, gen.box) };
}

function gtBoxes(r, n, size) {
  const b = new Float32Array(6 * n);
  for (let i = 0; i < n; ++i)
    for (let k = 0; k < 3; ++k) {
      const s = 4 + r() * 26;
      const lo = r() * (size[k] - s);
      b[6 * i + k] = lo;
      b[6 * i + k + 3] = lo + s;
    }
  return b;
}

export async function main(args) {
  const o = parse(args);
  const rows = [];
  const row = (name, shape, t, items, unit) =>
    rows.push([name, shape, t.best.toFixed(2), t.median.toFixed(2), `${((items / t.best) * 1e3 / 1e6).toFixed(1)} M${unit}/s`, `${((t.best / o.stepMs) * 100).toFixed(2)} %`]);

  // ---- training: ATSS + loss on the seed patch ----
  const patch = [192, 192, 80];
  const tr = config(patch);
  const r = lcg(1);
  const targets = Array.from({ length: o.batch }, () => ({ boxes: gtBoxes(r, 5, patch), labels: new Int32Array(5) }));
  const nrm = () => { // roughly normal logits around -4 (a trained detector's background)
    const u = r() + r() + r() - 1.5;
    return -4 + 2 * u;
  };
  const h = heads(tr.featureMapSizes, o.batch, 1, { cls: nrm, box: () => (r() - 0.5) * 0.4 });
  const shape = `${patch.join('x')} N=${o.batch}, ${tr.total} anchors, 5 GT`;
  row('ATSS match (1 image)', shape, time(() => match.atss(tr.lv, targets[0].boxes, { anchorsPerLocation: 3 }), o.reps), tr.total, 'anchors');
  let seed = 0;
  for (const [clsLoss, boxLoss] of [['focal', 'smoothl1'], ['bce', 'giou']]) {
    const t = time(() => detector.loss(h, tr.lv, targets, { clsLoss, boxLoss, seed: seed++ }), o.reps);
    row(`loss ${clsLoss}+${boxLoss} (+grads)`, shape, t, tr.total * o.batch, 'anchors');
  }
  const ta = [];
  for (let i = 0; i <= o.reps; ++i) {
    const t0 = process.hrtime.bigint();
    await detector.lossAsync(h, tr.lv, targets, { seed: seed++ });
    if (i > 0) ta.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ta.sort((a, b) => a - b);
  row('lossAsync focal+smoothl1', shape, { best: ta[0], median: ta[Math.floor(ta.length / 2)] }, tr.total * o.batch, 'anchors');

  // ---- inference: post-processing of a whole volume ----
  const vol = o.quick ? [256, 256, 104] : [512, 512, 208];
  const inf = config(vol);
  const hi = heads(inf.featureMapSizes, 1, 1, { cls: nrm, box: () => (r() - 0.5) * 0.4 });
  const vshape = `${vol.join('x')}, ${inf.total} anchors`;
  let last;
  const tp = time(() => { last = detector.postprocess(hi, inf.lv, vol); }, Math.max(1, Math.min(o.reps, 3)));
  row('postprocess (+NMS)', vshape, tp, inf.total, 'anchors');
  // NMS alone on the pre-NMS candidate count of this setting (3 levels x topk 1000).
  const nb = gtBoxes(r, 3000, vol);
  const ns = Float32Array.from({ length: 3000 }, () => r());
  const nl = new Int32Array(3000);
  row('batched NMS 3000 boxes', '1 class, thr 0.22', time(() => boxes.batchedNms(nb, ns, nl, 0.22, 100), o.reps), 3000, 'boxes');

  const head = ['operation', 'shape', 'best ms', 'median ms', 'throughput', `% of ${o.stepMs} ms step`];
  const w = head.map((s, i) => Math.max(s.length, ...rows.map((x) => x[i].length)));
  const line = (x) => x.map((s, i) => (i < 2 ? s.padEnd(w[i]) : s.padStart(w[i]))).join('  ');
  console.log(line(head));
  for (const x of rows) console.log(line(x));
  console.log(`(postprocess kept ${last[0].scores.length} detections)`);
}
