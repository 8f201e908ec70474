// npm run bench -- froc [--scans 888] [--dets 300] [--bootstraps 1000]
// FROC/CPM on a synthetic LUNA16-sized study (888 scans, ~1.3 lesions per scan,
// `dets` detections per scan as after MONAI's box selector): time of the
// matching + point estimate, and of the bootstrap CI. Pure TypeScript, no native code.
import { froc } from '../dist/eval/froc.js';

function parse(args) {
  const o = { scans: 888, dets: 300, bootstraps: 1000 };
  for (let i = 0; i < args.length; i += 2) {
    const k = args[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown option ${args[i]} (have --scans --dets --bootstraps)`);
    o[k] = Number(args[i + 1]);
  }
  return o;
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function study(nScans, nDets) {
  const rand = mulberry32(1);
  const gt = [];
  const preds = [];
  for (let s = 0; s < nScans; s++) {
    const nL = rand() < 0.35 ? 0 : 1 + Math.floor(rand() * 2.2);
    const les = [];
    for (let j = 0; j < nL; j++) {
      const c = [50 + rand() * 400, 50 + rand() * 400, 20 + rand() * 200];
      const d = 4 + rand() * 20;
      les.push(c[0] - d / 2, c[1] - d / 2, c[2] - d / 2, c[0] + d / 2, c[1] + d / 2, c[2] + d / 2);
    }
    gt.push({ id: `s${s}`, boxes: new Float32Array(les), spacing: [0.703125, 0.703125, 1.25] });
    const boxes = new Float32Array(6 * nDets);
    const scores = new Float32Array(nDets);
    for (let i = 0; i < nDets; i++) {
      const onLesion = nL > 0 && i < nL && rand() < 0.9;
      const c = onLesion
        ? [0, 1, 2].map((a) => (les[6 * i + a] + les[6 * i + 3 + a]) / 2 + (rand() - 0.5) * 2)
        : [rand() * 512, rand() * 512, rand() * 240];
      boxes.set([c[0] - 4, c[1] - 4, c[2] - 3, c[0] + 4, c[1] + 4, c[2] + 3], 6 * i);
      scores[i] = onLesion ? 0.3 + 0.7 * rand() : 0.02 + 0.98 * rand() ** 24;
    }
    preds.push({ id: `s${s}`, boxes, scores });
  }
  return { gt, preds };
}

export async function main(args) {
  const o = parse(args);
  const { gt, preds } = study(o.scans, o.dets);
  const nDet = o.scans * o.dets;
  froc(preds, gt, { bootstraps: 0 }); // warm-up
  let t0 = performance.now();
  const r0 = froc(preds, gt, { bootstraps: 0 });
  const tPoint = performance.now() - t0;
  t0 = performance.now();
  const r = froc(preds, gt, { bootstraps: o.bootstraps, seed: 0 });
  const tBoot = performance.now() - t0 - tPoint;
  const rows = [
    ['scans x dets/scan', `${o.scans} x ${o.dets}`],
    ['lesions', String(r0.counts.lesions)],
    ['CPM (CI)', `${r.cpm.toFixed(4)} (${r.bootstrap.cpm.lower.toFixed(4)} .. ${r.bootstrap.cpm.upper.toFixed(4)})`],
    ['match + curve', `${tPoint.toFixed(1)} ms (${((nDet / tPoint) * 1e3 / 1e6).toFixed(2)} M det/s)`],
    [`bootstrap x${o.bootstraps}`, `${tBoot.toFixed(1)} ms (${((o.bootstraps / tBoot) * 1e3).toFixed(0)} resamples/s)`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log('froc benchmark (pure TypeScript)');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
}
