import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32c, maskedCrc32c } from '../../src/train/crc32c.js';
import { SummaryWriter, decodeEvent, encodeEvent, frameRecord, readEventFile } from '../../src/train/tensorboard.js';

// Bit-at-a-time CRC-32C, the textbook definition, as an independent reference.
function crcBitwise(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the standard check value and RFC 3720 vectors', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });
  it('agrees with the bitwise definition on random lengths and supports chaining', () => {
    let s = 7;
    for (const n of [1, 2, 3, 5, 17, 64, 1001]) {
      const b = Uint8Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) & 0xff);
      expect(crc32c(b)).toBe(crcBitwise(b));
      const k = n >> 1;
      expect(crc32c(b.subarray(k), crc32c(b.subarray(0, k)))).toBe(crcBitwise(b));
    }
  });
  it('masks as TFRecord does', () => {
    const b = new TextEncoder().encode('123456789');
    const c = 0xe3069283;
    expect(maskedCrc32c(b)).toBe(((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) % 2 ** 32);
  });
});

describe('TensorBoard events', () => {
  it('encodes an Event byte for byte', () => {
    const bytes = encodeEvent({ wallTime: 1.5, step: 3, scalars: [{ tag: 'a', value: 0.5 }] });
    // 09 <double 1.5 LE>  10 03  2A 0A [0A 08 [0A 01 'a' 15 <float 0.5 LE>]]
    expect(Array.from(bytes)).toEqual([
      0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0x03, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 0x61, 0x15, 0, 0, 0, 0x3f,
    ]);
    const rec = frameRecord(bytes);
    const dv = new DataView(rec.buffer);
    expect(rec.length).toBe(8 + 4 + bytes.length + 4);
    expect(dv.getBigUint64(0, true)).toBe(BigInt(bytes.length));
    expect(dv.getUint32(8, true)).toBe(maskedCrc32c(rec.subarray(0, 8)));
    expect(dv.getUint32(12 + bytes.length, true)).toBe(maskedCrc32c(bytes));
    // steps beyond 2^31 and negative steps survive the varint
    expect(decodeEvent(encodeEvent({ wallTime: 2, step: 2 ** 40 + 5 })).step).toBe(2 ** 40 + 5);
    expect(decodeEvent(encodeEvent({ wallTime: 2, step: -7 })).step).toBe(-7);
  });

  it('writes a file TensorBoard can read and reads it back with CRC checks', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tb-'));
    const w = new SummaryWriter(dir);
    expect(path.basename(w.path)).toMatch(new RegExp(`^events\\.out\\.tfevents\\.\\d+\\.${os.hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
    w.addScalar('loss/train', 0.25, 1, 1000.5);
    w.addScalars({ 'loss/train': 0.125, 'val/mAP': 0.75 }, 2, 1001);
    w.close();
    const w2 = new SummaryWriter(dir); // same second: must pick a distinct file
    w2.close();
    expect(w2.path).not.toBe(w.path);

    const ev = readEventFile(w.path);
    expect(ev[0].fileVersion).toBe('brain.Event:2');
    expect(ev[1]).toEqual({ wallTime: 1000.5, step: 1, scalars: [{ tag: 'loss/train', value: 0.25 }] });
    expect(ev[2].scalars).toEqual([
      { tag: 'loss/train', value: 0.125 },
      { tag: 'val/mAP', value: 0.75 },
    ]);
    expect(ev[2].step).toBe(2);

    // Flip one byte inside the last record's data: the data CRC must catch it.
    const buf = fs.readFileSync(w.path);
    const bad = Buffer.from(buf);
    bad[bad.length - 6] ^= 0x01;
    fs.writeFileSync(w.path, bad);
    expect(() => readEventFile(w.path)).toThrow(/data CRC mismatch/);
    // Damage a length field: the length CRC catches it.
    const bad2 = Buffer.from(buf);
    bad2[0] ^= 0x01;
    fs.writeFileSync(w.path, bad2);
    expect(() => readEventFile(w.path)).toThrow(/length CRC mismatch in the record at byte 0/);
    // Truncation is reported too.
    fs.writeFileSync(w.path, buf.subarray(0, buf.length - 3));
    expect(() => readEventFile(w.path)).toThrow(/truncated record/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
