// TensorBoard event files without a protobuf or TensorFlow dependency.
//
// File: `events.out.tfevents.<unix seconds>.<hostname>` in the log dir, a
// sequence of TFRecords:
//   uint64 LE length | uint32 LE masked CRC-32C(length bytes) | data | uint32 LE masked CRC-32C(data)
// Each record's data is a serialized tensorflow.Event:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
// The first record is the file_version event "brain.Event:2"; scalars use the
// legacy simple_value field, which `tensorboard --logdir` shows as scalars.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { maskedCrc32c } from './crc32c.js';

// --- minimal protobuf wire encoding --------------------------------------

class ProtoWriter {
  private parts: number[] = [];

  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.parts.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.parts.push(Number(x));
    return this;
  }
  private key(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.key(field, 1).parts.push(...b);
    return this;
  }
  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.key(field, 5).parts.push(...b);
    return this;
  }
  int64(field: number, v: number | bigint): this {
    return this.key(field, 0).varint(v);
  }
  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2).varint(b.length).parts.push(...b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** Serializes an Event with optional file_version or scalar values. */
export function encodeEvent(e: { wallTime: number; step?: number; fileVersion?: string; scalars?: { tag: string; value: number }[] }): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime);
  if (e.step !== undefined && e.step !== 0) w.int64(2, e.step);
  if (e.fileVersion !== undefined) w.string(3, e.fileVersion);
  if (e.scalars && e.scalars.length) {
    const summary = new ProtoWriter();
    for (const s of e.scalars) summary.bytes(1, new ProtoWriter().string(1, s.tag).float(2, s.value).finish());
    w.bytes(5, summary.finish());
  }
  return w.finish();
}

/** Frames `data` as one TFRecord. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

// --- writer ----------------------------------------------------------------

export interface SummaryWriterOptions {
  /** Extra text appended to the file name (e.g. ".train"). */
  filenameSuffix?: string;
}

/**
 * Appends scalar summaries to a new event file in `logDir` (created if
 * missing). Each call writes through to the file, so a crash loses nothing
 * already logged; call close() at the end.
 */
export class SummaryWriter {
  readonly path: string;
  private fd: number | null;

  constructor(logDir: string, opts: SummaryWriterOptions = {}) {
    fs.mkdirSync(logDir, { recursive: true });
    const base = `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${os.hostname()}`;
    let name = base + (opts.filenameSuffix ?? '');
    // Two writers started in the same second in one directory must not share a file.
    for (let n = 1; fs.existsSync(path.join(logDir, name)); n++) name = `${base}.${process.pid}.${n}${opts.filenameSuffix ?? ''}`;
    this.path = path.join(logDir, name);
    this.fd = fs.openSync(this.path, 'wx');
    this.write(encodeEvent({ wallTime: Date.now() / 1000, fileVersion: 'brain.Event:2' }));
  }

  private write(event: Uint8Array): void {
    if (this.fd === null) throw new Error(`SummaryWriter: ${this.path} is already closed`);
    fs.writeSync(this.fd, frameRecord(event));
  }

  /** Logs one scalar (stored as float32) at `step`. */
  addScalar(tag: string, value: number, step: number, wallTime = Date.now() / 1000): void {
    this.addScalars({ [tag]: value }, step, wallTime);
  }

  /** Logs several scalars in one event at `step`; non-finite values are written as they are (TensorBoard shows NaN/inf). */
  addScalars(values: Record<string, number>, step: number, wallTime = Date.now() / 1000): void {
    if (!Number.isInteger(step)) throw new Error(`SummaryWriter: step must be an integer, got ${step}`);
    const scalars = Object.entries(values).map(([tag, value]) => ({ tag, value }));
    if (scalars.length === 0) return;
    this.write(encodeEvent({ wallTime, step, scalars }));
  }

  /** Forces the data to disk. */
  flush(): void {
    if (this.fd !== null) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

// --- reader ----------------------------------------------------------------

export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: { tag: string; value: number }[];
}

type Field = { field: number; wire: number; value: bigint | Uint8Array; offset: number };

function* fields(buf: Uint8Array): Generator<Field> {
  let i = 0;
  const varint = (): bigint => {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++];
      r |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return r;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const offset = i;
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { field, wire, value: varint(), offset };
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (i + n > buf.length) throw new Error('truncated fixed field');
      yield { field, wire, value: buf.subarray(i, i + n), offset };
      i += n;
    } else if (wire === 2) {
      const n = Number(varint());
      if (i + n > buf.length) throw new Error('truncated length-delimited field');
      yield { field, wire, value: buf.subarray(i, i + n), offset };
      i += n;
    } else throw new Error(`unsupported wire type ${wire} at byte ${offset}`);
  }
}

const le = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Decodes one serialized Event (wall_time, step, file_version, simple_value scalars). */
export function decodeEvent(data: Uint8Array): DecodedEvent {
  const ev: DecodedEvent = { wallTime: 0, step: 0, scalars: [] };
  for (const f of fields(data)) {
    if (f.field === 1 && f.wire === 1) ev.wallTime = le(f.value as Uint8Array).getFloat64(0, true);
    else if (f.field === 2 && f.wire === 0) ev.step = Number(BigInt.asIntN(64, f.value as bigint));
    else if (f.field === 3 && f.wire === 2) ev.fileVersion = new TextDecoder().decode(f.value as Uint8Array);
    else if (f.field === 5 && f.wire === 2) {
      for (const v of fields(f.value as Uint8Array)) {
        if (v.field !== 1 || v.wire !== 2) continue;
        let tag = '';
        let value: number | undefined;
        for (const g of fields(v.value as Uint8Array)) {
          if (g.field === 1 && g.wire === 2) tag = new TextDecoder().decode(g.value as Uint8Array);
          else if (g.field === 2 && g.wire === 5) value = le(g.value as Uint8Array).getFloat32(0, true);
        }
        if (value !== undefined) ev.scalars.push({ tag, value });
      }
    }
  }
  return ev;
}

/**
 * Reads an event file, verifying both CRCs of every record; throws with the
 * byte offset of the first damaged or truncated record.
 */
export function readEventFile(file: string): DecodedEvent[] {
  const buf = new Uint8Array(fs.readFileSync(file));
  const dv = le(buf);
  const out: DecodedEvent[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 12 > buf.length) throw new Error(`${file}: truncated record header at byte ${off}`);
    const len = Number(dv.getBigUint64(off, true));
    if (dv.getUint32(off + 8, true) !== maskedCrc32c(buf.subarray(off, off + 8))) {
      throw new Error(`${file}: length CRC mismatch in the record at byte ${off} (file corrupted)`);
    }
    if (off + 12 + len + 4 > buf.length) throw new Error(`${file}: truncated record at byte ${off} (needs ${len} data bytes)`);
    const data = buf.subarray(off + 12, off + 12 + len);
    if (dv.getUint32(off + 12 + len, true) !== maskedCrc32c(data)) {
      throw new Error(`${file}: data CRC mismatch in the record at byte ${off} (file corrupted)`);
    }
    out.push(decodeEvent(data));
    off += 12 + len + 4;
  }
  return out;
}
