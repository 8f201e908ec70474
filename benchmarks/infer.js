// npm run bench -- infer [--size X Y Z] [--quick] [--reps N] [--single]
// Seconds per volume for whole-volume detection with the seed network
// (MONAI LUNA16 RetinaNet, random weights) on the CPU: one window covering the
// volume (MONAI's val_patch_size 512x512x208 covers a typical LUNA16 scan)
// versus sliding windows of half the size with overlap 0.25, which shows the
// sliding-window overhead. Reports the median time, the native peak memory and
// the process peak RSS. The full size takes minutes per volume on a 2-core CPU;
// --quick uses 128x128x64; --single skips the sliding-window comparison.
import { cpus, loadavg } from 'node:os';
import { LUNA16_CONFIG, RetinaNet, info, memoryStats, predictVolume, resetPeakMemory } from '../dist/index.js';

function arg(args, name, n, def) {
  const i = args.indexOf(name);
  return i < 0 ? def : args.slice(i + 1, i + 1 + n).map(Number);
}

export async function main(args) {
  const quick = args.includes('--quick');
  const size = arg(args, '--size', 3, quick ? [128, 128, 64] : [512, 512, 208]);
  const reps = arg(args, '--reps', 1, [quick ? 3 : 1])[0];
  const model = RetinaNet.create({ ...LUNA16_CONFIG, seed: 0 });
  model.eval();
  const n = size[0] * size[1] * size[2];
  const vol = new Float32Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) vol[i] = (s = (s * 16807) % 2147483647) / 2147483647;
  const base = { baseAnchorShapes: [[6, 8, 4], [8, 6, 5], [10, 10, 6]], numClasses: 1 };
  const half = size.map((v, a) => Math.max([16, 16, 8][a], Math.ceil(v / 2 / [16, 16, 8][a]) * [16, 16, 8][a]));
  console.log(`infer benchmark: seed network (20.9 M parameters), volume ${size.join('x')}, ${cpus().length} cores, ${info().threads} threads, load ${loadavg()[0].toFixed(2)}`);
  const rows = [];
  const modes = [['one window', size, 0.25]];
  if (!args.includes('--single')) modes.push([`windows ${half.join('x')}, overlap 0.25`, half, 0.25]);
  for (const [name, roi, overlap] of modes) {
    const times = [];
    resetPeakMemory();
    let dets = 0;
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const d = await predictVolume(model, vol, size, { ...base, roi, overlap });
      times.push((performance.now() - t0) / 1000);
      dets = d.scores.length;
    }
    times.sort((a, b) => a - b);
    rows.push({
      mode: name,
      'median s': times[Math.floor(times.length / 2)].toFixed(2),
      'Mvox/s': (n / 1e6 / times[Math.floor(times.length / 2)]).toFixed(3),
      'native peak MB': (memoryStats().peakBytes / 2 ** 20).toFixed(0),
      'RSS peak MB': (process.resourceUsage().maxRSS / 1024).toFixed(0),
      detections: dets,
    });
  }
  console.table(rows);
  if (rows.length > 1) {
    const ratio = Number(rows[1]['median s']) / Number(rows[0]['median s']);
    console.log(`sliding-window overhead (half-size windows vs one window): ${ratio.toFixed(2)}x`);
  }
}
