// npm run bench -- coco [--images N] [--dets D] [--gts G] [--classes K]
//
// Times evaluate.coco (MONAI COCOMetric semantics: matching at 10 IoU
// thresholds, 101-point AP, AR) on random scenes: N images with G ground-truth
// boxes and D detections each. Validation runs it once per evaluation, so
// it only needs to be small next to inference (well under a second for a
// LUNA16-sized validation set: ~180 images, 100 detections each).
// Uses the built library (dist/).
import { coco } from '../dist/eval/coco.js';

function parse(args) {
  const o = { images: 180, dets: 100, gts: 2, classes: 1, reps: 3 };
  for (let i = 0; i < args.length; ++i) {
    const a = args[i];
    if (a === '--images') o.images = Number(args[++i]);
    else if (a === '--dets') o.dets = Number(args[++i]);
    else if (a === '--gts') o.gts = Number(args[++i]);
    else if (a === '--classes') o.classes = Number(args[++i]);
    else if (a === '--reps') o.reps = Number(args[++i]);
    else throw new Error(`coco bench: unknown option ${a}`);
  }
  return o;
}

export async function main(args) {
  const o = parse(args);
  let s = 12345;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const box = () => {
    const c = [rand() * 400, rand() * 400, rand() * 200];
    const w = 4 + rand() * 20;
    return [c[0], c[1], c[2], c[0] + w, c[1] + w, c[2] + w * 0.6];
  };
  const preds = [];
  const gts = [];
  for (let i = 0; i < o.images; i++) {
    const g = Array.from({ length: o.gts }, box);
    const p = Array.from({ length: o.dets }, (_, k) => (k < o.gts ? g[k].map((v) => v + (rand() - 0.5) * 3) : box()));
    preds.push({
      boxes: new Float32Array(p.flat()),
      scores: Float32Array.from(p, () => rand()),
      labels: Int32Array.from(p, () => Math.floor(rand() * o.classes)),
    });
    gts.push({ boxes: new Float32Array(g.flat()), labels: Int32Array.from(g, () => Math.floor(rand() * o.classes)) });
  }
  const classes = Array.from({ length: o.classes }, (_, k) => `c${k}`);
  coco(preds, gts, { classes }); // warm-up
  const times = [];
  for (let r = 0; r < o.reps; r++) {
    const t0 = performance.now();
    coco(preds, gts, { classes, iouList: [0.1, 0.3, 0.5] });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const dets = o.images * o.dets;
  console.log('images  dets/img  gt/img  classes   best ms  median ms  detections/s');
  console.log(
    `${String(o.images).padStart(6)}  ${String(o.dets).padStart(8)}  ${String(o.gts).padStart(6)}  ${String(o.classes).padStart(7)}  ${times[0].toFixed(1).padStart(8)}  ${times[Math.floor(times.length / 2)].toFixed(1).padStart(9)}  ${(dets / (times[0] / 1000)).toExponential(2).padStart(12)}`,
  );
}
