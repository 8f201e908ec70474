import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../../src/train/safetensors.js';
import { writeFileAtomic, writeFilesAtomic } from '../../src/train/atomic.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'st-'));

describe('safetensors', () => {
  it('writes the exact byte layout of a tiny file', () => {
    const bytes = encodeSafetensors({ a: { data: new Float32Array([1, 2]), shape: [2] } });
    // JSON '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' is 54 bytes; 8 + 54 = 62 is
    // padded with 2 spaces to 64, so the header length field is 56.
    const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  ';
    const expected = [56, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from(json, 'ascii'), 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40];
    expect(Array.from(bytes)).toEqual(expected);
  });

  it('round-trips every dtype with metadata, ordering data by element size then name', () => {
    const t = {
      'u8.bytes': { data: new Uint8Array([1, 2, 255]), shape: [3] },
      'w.f64': { data: new Float64Array([Math.PI, -0, 1e300, Number.NaN]), shape: [2, 2] },
      'half': { data: new Uint16Array([0x3c00, 0xc000]), shape: [2], dtype: 'F16' as const },
      'bhalf': { data: new Uint16Array([0x3f80]), shape: [1, 1], dtype: 'BF16' as const },
      'i64': { data: new BigInt64Array([-(2n ** 62n), 5n]), shape: [2] },
      'i32': { data: new Int32Array([-7, 2 ** 31 - 1]), shape: [2, 1] },
      'f32': { data: new Float32Array([0.5, -1.25, 3, 4, 5, 6]), shape: [1, 2, 3] },
      'empty': { data: new Float32Array(0), shape: [0, 4] },
      'scalar': { data: new Float32Array([7]), shape: [] },
    };
    const dir = tmp();
    const file = path.join(dir, 'm.safetensors');
    writeSafetensors(file, t, { note: 'hello', json: '{"x":1}' });
    const raw = fs.readFileSync(file);
    const hlen = Number(raw.readBigUInt64LE(0));
    expect((8 + hlen) % 8).toBe(0);
    const header = JSON.parse(raw.subarray(8, 8 + hlen).toString('utf8'));
    expect(header.__metadata__).toEqual({ note: 'hello', json: '{"x":1}' });
    // 8-byte types first (i64, w.f64), then 4 (empty, f32, i32, scalar), 2 (bhalf, half), 1 (u8.bytes)
    const order = Object.entries(header).filter(([k]) => k !== '__metadata__').sort((a: any, b: any) => a[1].data_offsets[0] - b[1].data_offsets[0] || a[1].data_offsets[1] - b[1].data_offsets[1]).map(([k]) => k);
    expect(order).toEqual(['i64', 'w.f64', 'empty', 'f32', 'i32', 'scalar', 'bhalf', 'half', 'u8.bytes']);
    expect(raw.length).toBe(8 + hlen + 16 + 32 + 0 + 24 + 8 + 4 + 2 + 4 + 3);

    const back = readSafetensors(file);
    expect(back.metadata).toEqual({ note: 'hello', json: '{"x":1}' });
    for (const [name, v] of Object.entries(t)) {
      const b = back.tensors.get(name)!;
      expect(b.shape, name).toEqual(v.shape);
      expect(b.data.constructor, name).toBe(v.data.constructor);
      expect(Array.from(b.data as ArrayLike<number | bigint>), name).toEqual(Array.from(v.data as ArrayLike<number | bigint>));
    }
    expect(back.tensors.get('half')!.dtype).toBe('F16');
    expect(back.tensors.get('bhalf')!.dtype).toBe('BF16');
    expect(Object.is((back.tensors.get('w.f64')!.data as Float64Array)[1], -0)).toBe(true);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('rejects bad input and damaged files with specific messages', () => {
    expect(() => encodeSafetensors({ a: { data: new Float32Array(3), shape: [2, 2] } })).toThrow(/shape \[2, 2\] \(4 elements\) but 3 values/);
    expect(() => encodeSafetensors({ a: { data: new Uint16Array(1), shape: [1] } })).toThrow(/F16' or 'BF16/);
    expect(() => encodeSafetensors({ a: { data: new Float32Array(1), shape: [1], dtype: 'F64' } })).toThrow(/dtype F64 but its data is a Float32Array/);
    const good = encodeSafetensors({ a: { data: new Float32Array([1, 2]), shape: [2] }, b: { data: new Int32Array([3]), shape: [1] } });
    expect(() => decodeSafetensors(good.subarray(0, good.length - 1), 'x')).toThrow(/cover 12 data bytes but the file holds 11/);
    const extra = Buffer.concat([good, Buffer.from([0])]);
    expect(() => decodeSafetensors(extra, 'x')).toThrow(/trailing/);
    const badLen = Buffer.from(good);
    badLen.writeBigUInt64LE(10n ** 9n, 0);
    expect(() => decodeSafetensors(badLen, 'x')).toThrow(/header length/);
    // A header that claims overlapping tensors.
    const h = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}';
    const hb = Buffer.from(h);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    expect(() => decodeSafetensors(Buffer.concat([len, hb, Buffer.alloc(6)]), 'x')).toThrow(/'b' starts at data byte 2 but the previous tensor ends at 4/);
  });
});

describe('atomic writes', () => {
  it('keeps the previous file intact when the writer fails mid-way, and leaves no temp file', () => {
    const dir = tmp();
    const file = path.join(dir, 'ckpt.bin');
    writeFileAtomic(file, (s) => s.write(Buffer.from('previous good content')));
    expect(() =>
      writeFileAtomic(file, (s) => {
        s.write(new Uint8Array(4096).fill(7)); // partially written...
        expect(s.bytesWritten).toBe(4096);
        throw new Error('disk full (simulated)');
      }),
    ).toThrow('disk full (simulated)');
    expect(fs.readFileSync(file, 'utf8')).toBe('previous good content');
    expect(fs.readdirSync(dir)).toEqual(['ckpt.bin']);
    // A successful write replaces the content.
    writeFileAtomic(file, (s) => {
      s.write(Buffer.from('new '));
      s.write(Buffer.from('content'));
    });
    expect(fs.readFileSync(file, 'utf8')).toBe('new content');
    expect(fs.readdirSync(dir)).toEqual(['ckpt.bin']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stages several files and renames none of them when one fails', () => {
    const dir = tmp();
    const a = path.join(dir, 'a.bin');
    fs.writeFileSync(a, 'old a');
    fs.writeFileSync(path.join(dir, 'blocker'), 'a file, not a directory');
    expect(() =>
      writeFilesAtomic([
        { path: a, chunks: [Buffer.from('new a')] },
        { path: path.join(dir, 'blocker', 'b.bin'), chunks: [Buffer.from('b')] }, // cannot be created
      ]),
    ).toThrow();
    expect(fs.readFileSync(a, 'utf8')).toBe('old a');
    expect(fs.readdirSync(dir).sort()).toEqual(['a.bin', 'blocker']);
    writeFilesAtomic([
      { path: a, chunks: [Buffer.from('new '), Buffer.from('a')] },
      { path: path.join(dir, 'c.bin'), chunks: [Buffer.from('c')] },
    ]);
    expect(fs.readFileSync(a, 'utf8')).toBe('new a');
    expect(fs.readFileSync(path.join(dir, 'c.bin'), 'utf8')).toBe('c');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a failing safetensors encode never touches the existing file', () => {
    const dir = tmp();
    const file = path.join(dir, 'w.safetensors');
    writeSafetensors(file, { a: { data: new Float32Array([1]), shape: [1] } });
    const before = fs.readFileSync(file);
    expect(() => writeSafetensors(file, { a: { data: new Float32Array([1]), shape: [3] } })).toThrow();
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
