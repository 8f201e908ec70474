// The command line as a user runs it (node bin/detseg3d.js, from the compiled
// dist/ that `npm install` builds): usage errors are one line and exit code 2;
// infer processes a folder, reports a corrupt file and still writes the others.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNifti } from '../src/io/nifti.js';
import { RetinaNet } from '../src/model/retinanet.js';
import { saveCheckpoint } from '../src/train/checkpoint.js';
import { resolveTrainConfig, toSnakeCase } from '../src/train/config.js';
import { modelConfigOf } from '../src/train/trainer.js';

const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'detseg3d.js');
const built = existsSync(join(root, 'dist', 'cli', 'main.js'));
let tmp = '';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmp || root, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'detseg3d-cli-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!built)('detseg3d CLI (skipped: run `npm run build` first)', () => {
  it('info prints the build facts as JSON', () => {
    const r = cli('info', '--json');
    expect(r.code).toBe(0);
    const i = JSON.parse(r.out);
    expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(typeof i.glooCompiled).toBe('boolean');
  });

  it('usage errors are one clear line with exit code 2', () => {
    mkdirSync(join(tmp, 'imgs'), { recursive: true });
    const cases: [string[], RegExp][] = [
      [['train'], /--image_dir and --label_dir \(or --datalist\)/],
      [['train', '--image_dir', join(tmp, 'missing'), '--label_dir', join(tmp, 'imgs')], /--image_dir is not a folder/],
      [['train', '--image_dir', join(tmp, 'imgs'), '--label_dir', join(tmp, 'imgs'), '--patch_size', '96', '96'], /--patch_size needs 3 values/],
      [['train', '--image-dir', join(tmp, 'imgs'), '--label-dir', join(tmp, 'imgs'), '--patch-size', '96', '0', '48'], /--patch_size must be >= 1, got 0/],
      [['train', '--lr', 'fast'], /lr/],
      [['trian'], /Unknown argument: trian/],
      [['infer', '--model', 'x'], /Missing required argument: input/],
    ];
    writeFileSync(join(tmp, 'bad.json'), JSON.stringify({ patch_size: [96, 96, 48], learning_rate: 0.1 }));
    cases.push([['train', '--config', join(tmp, 'bad.json')], /unknown key 'learning_rate'/]);
    for (const [args, re] of cases) {
      const r = cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      const lines = r.err.trim().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(re);
    }
  });

  it('infer writes results for the good volumes and names the corrupt one', async () => {
    const cfg = resolveTrainConfig({ depth: 10, widths: [8, 16, 32, 64], fpnChannels: 16, valPatchSize: [32, 32, 16], scoreThresh: 0 });
    const model = RetinaNet.create(modelConfigOf(cfg));
    const shapes = new Map([...model.parameters(), ...model.buffers()].map((p) => [p.name, p.shape]));
    const weights = new Map([...model.getWeights()].map(([n, d]) => [n, { data: d, shape: shapes.get(n)! }]));
    saveCheckpoint(join(tmp, 'model'), { weights, config: toSnakeCase(cfg), epoch: 1 });
    const scans = join(tmp, 'scans');
    mkdirSync(scans, { recursive: true });
    const affine = [[-0.8, 0, 0, 10], [0, -0.8, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1]];
    for (const name of ['a.nii.gz', 'b.nii']) {
      const data = new Int16Array(40 * 36 * 20).map((_, i) => (i % 97) - 600);
      await writeNifti(join(scans, name), { data, dims: [40, 36, 20], affine });
    }
    writeFileSync(join(scans, 'broken.nii.gz'), Buffer.from('not a nifti file at all'));
    const out = join(tmp, 'res.json');
    const r = cli('infer', '--model', join(tmp, 'model'), '--input', scans, '--output', out, '--save_mask');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/broken\.nii\.gz/);
    const res = JSON.parse(readFileSync(out, 'utf8'));
    expect(res.validation.map((e: { image: string }) => e.image.split('/').pop()).sort()).toEqual(['a.nii.gz', 'b.nii']);
    expect(existsSync(join(tmp, 'a_boxes.nii.gz'))).toBe(true);
    // validate: metrics of the checkpoint on a folder dataset (masks with one box each).
    mkdirSync(join(tmp, 'lab'), { recursive: true });
    for (const name of ['a.nii.gz', 'b.nii']) {
      const lab = new Uint8Array(40 * 36 * 20);
      for (let z = 4; z < 10; z++) for (let y = 8; y < 16; y++) for (let x = 10; x < 20; x++) lab[(z * 36 + y) * 40 + x] = 1;
      await writeNifti(join(tmp, 'lab', name), { data: lab, dims: [40, 36, 20], affine });
    }
    mkdirSync(join(tmp, 'img2'), { recursive: true });
    for (const name of ['a.nii.gz', 'b.nii']) writeFileSync(join(tmp, 'img2', name), readFileSync(join(scans, name)));
    const v = cli('validate', '--model', join(tmp, 'model'), '--image_dir', join(tmp, 'img2'), '--label_dir', join(tmp, 'lab'), '--json', join(tmp, 'm.json'));
    expect(v.code, v.err).toBe(0);
    expect(v.out).toMatch(/2 cases in .* s: mAP /);
    expect(JSON.parse(readFileSync(join(tmp, 'm.json'), 'utf8'))).toHaveProperty(['mAP_IoU_0.10_0.50_0.05_MaxDet_100']);
    // An untrained network scoring at threshold 0 still gives boxes in the MONAI layout.
    for (const e of res.validation) {
      expect(e.box.length).toBe(e.label_scores.length);
      for (const b of e.box) expect(b).toHaveLength(6);
    }
  });
});
