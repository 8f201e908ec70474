import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { JsonlLogger, readJsonl } from '../../src/train/jsonl_log.js';
import { TrainProgress } from '../../src/train/progress.js';

class Capture extends Writable {
  text = '';
  isTTY?: boolean;
  columns = 120;
  constructor(tty: boolean) {
    super();
    this.isTTY = tty;
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
  // cli-progress's terminal uses readline helpers on TTY streams
  cursorTo(_x: number, _y?: number, cb?: () => void) { cb?.(); return true; }
  moveCursor(_dx: number, _dy: number, cb?: () => void) { cb?.(); return true; }
  clearLine(_d: number, cb?: () => void) { cb?.(); return true; }
  clearScreenDown(cb?: () => void) { cb?.(); return true; }
}

describe('JSON-lines log', () => {
  it('appends records with time, keeps non-finite numbers, and tolerates a torn last line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jl-'));
    const file = path.join(dir, 'sub', 'train.jsonl');
    const log = new JsonlLogger(file);
    log.log({ epoch: 1, loss: 0.5, lr: 0.01 });
    log.log({ epoch: 2, loss: Number.NaN, grad: Number.POSITIVE_INFINITY, step: 10n, v: new Float32Array([0.5, 2]) });
    log.close();
    const again = new JsonlLogger(file); // append mode resumes
    again.log({ epoch: 3 });
    again.close();
    fs.appendFileSync(file, '{"epoch": 4, "lo'); // crash mid-line
    const rows = readJsonl(file);
    expect(rows.map((r) => r.epoch)).toEqual([1, 2, 3]);
    expect(Object.keys(rows[0])[0]).toBe('time');
    expect(Number.isNaN(Date.parse(rows[0].time as string))).toBe(false);
    expect(rows[1]).toMatchObject({ loss: 'NaN', grad: 'Infinity', step: '10', v: [0.5, 2] });
    fs.writeFileSync(file, '{"a":1}\nnot json\n{"b":2}\n');
    expect(() => readJsonl(file)).toThrow(/train\.jsonl:2: not valid JSON/);
    const fresh = new JsonlLogger(file, { append: false });
    fresh.log({ x: 1 });
    fresh.close();
    expect(readJsonl(file).length).toBe(1);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('TrainProgress', () => {
  it('prints plain lines with loss and throughput when not a TTY', () => {
    const out = new Capture(false);
    let t = 0;
    const p = new TrainProgress({ epochs: 2, stepsPerEpoch: 4, stream: out, logEvery: 2, now: () => t });
    p.startEpoch(1);
    for (const loss of [1, 0.5, 0.25, 0.25]) {
      t += 500; // 0.5 s per step of 2 samples → 4 samples/s
      p.update(loss, 2);
    }
    expect(p.endEpoch({ 'val/mAP': 0.5 })).toBeCloseTo(0.5, 12);
    p.startEpoch(2, 1); // a shorter last epoch
    t += 250;
    p.update(Number.NaN, 1); // a non-finite loss is shown but kept out of the average
    expect(Number.isNaN(p.endEpoch())).toBe(true);
    p.stop();
    const lines = out.text.trim().split('\n');
    expect(lines).toEqual([
      'epoch 1/2 step 2/4 loss 0.5000 (avg 0.7500) 4.00 samples/s eta 1s',
      'epoch 1/2 step 4/4 loss 0.2500 (avg 0.5000) 4.00 samples/s eta 0s',
      'epoch 1/2 done: loss 0.5000 4.00 samples/s 2s | val/mAP 0.5000',
      'epoch 2/2 step 1/1 loss NaN (avg NaN) 4.00 samples/s eta 0s',
      'epoch 2/2 done: loss NaN 4.00 samples/s 0s',
    ]);
    expect(out.text).not.toMatch(/\x1b\[/);
  });

  it('draws bars on a TTY and still shows the epoch summary', async () => {
    const out = new Capture(true);
    const p = new TrainProgress({ epochs: 1, stepsPerEpoch: 3, stream: out });
    p.startEpoch(1);
    p.update(0.75, 1);
    p.update(0.5, 1);
    p.update(0.25, 1);
    p.endEpoch();
    await new Promise((r) => setTimeout(r, 150)); // one redraw period
    p.stop();
    expect(out.text).toMatch(/epoch \|/);
    expect(out.text).toMatch(/loss 0\.2500 \(avg 0\.5000\)/);
    expect(out.text).toMatch(/epoch 1\/1 done: loss 0\.5000/);
  });
});
