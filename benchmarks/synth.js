// npm run bench -- synth [--cases N] [--size X,Y,Z]
//
// Times synthetic CT case generation (generateCase: body, lungs, vessels,
// lesions, noise) and the encode + gzip of its image/label NIfTI pair, per
// case. The target is well under 1 s per 96x96x48 case on one core.
// Uses the built library (dist/).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateCase, writeSynthDataset } from '../dist/data/synth.js';

function parse(args) {
  const o = { cases: 8, size: [96, 96, 48] };
  for (let i = 0; i < args.length; ++i) {
    const a = args[i];
    if (a === '--cases') o.cases = Number(args[++i]);
    else if (a === '--size') o.size = args[++i].split(',').map(Number);
    else throw new Error(`synth bench: unknown option ${a}`);
  }
  return o;
}

export async function main(args) {
  const o = parse(args);
  generateCase(0, { size: o.size }); // warm-up (JIT)
  const gen = [];
  for (let i = 0; i < o.cases; i++) {
    const t0 = performance.now();
    generateCase(1000 + i, { size: o.size });
    gen.push(performance.now() - t0);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'detseg3d-synth-bench-'));
  const t0 = performance.now();
  await writeSynthDataset(dir, { cases: o.cases, seed: 1, size: o.size });
  const write = (performance.now() - t0) / o.cases;
  fs.rmSync(dir, { recursive: true, force: true });
  gen.sort((a, b) => a - b);
  const voxels = o.size[0] * o.size[1] * o.size[2];
  const rows = [
    ['generateCase', gen[0], gen[Math.floor(gen.length / 2)]],
    ['generate + write .nii.gz pair', write, write],
  ];
  console.log(`shape ${o.size.join('x')} (${voxels} voxels), ${o.cases} cases`);
  console.log('step                             best ms  median ms  Mvoxel/s (median)');
  for (const [name, best, med] of rows) {
    console.log(`${name.padEnd(32)} ${best.toFixed(1).padStart(7)}  ${med.toFixed(1).padStart(9)}  ${(voxels / med / 1e3).toFixed(2).padStart(8)}`);
  }
}
