// safetensors files (https://github.com/huggingface/safetensors), the format
// Python's `safetensors` package reads and writes, with no pickle anywhere:
//
//   u64 LE  N                 size of the JSON header in bytes
//   N bytes JSON header       {"__metadata__": {str: str}, "<name>": {"dtype": "F32",
//                              "shape": [..], "data_offsets": [begin, end]}, ...}
//                             padded with spaces so 8 + N is a multiple of 8
//   data                      tensors back to back, row-major, little-endian;
//                             offsets are relative to the start of this area and
//                             must tile it exactly (no gaps, no overlap)
//
// Tensors are laid out by decreasing element size, then name (as the Python
// writer does), which keeps every tensor naturally aligned in the file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { writeBytesAtomic } from './atomic.js';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** float16 / bfloat16 are carried as raw 16-bit patterns in a Uint16Array; BOOL as Uint8Array 0/1. */
export type SafeArray = Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: SafeArray;
}

/** A tensor as callers give it: dtype may be omitted when the array type implies it. */
export interface TensorInput {
  data: SafeArray;
  shape: readonly number[];
  dtype?: SafeDType;
}

const DTYPES: Record<SafeDType, { size: number; ctor: new (b: ArrayBuffer) => SafeArray }> = {
  F64: { size: 8, ctor: Float64Array },
  F32: { size: 4, ctor: Float32Array },
  F16: { size: 2, ctor: Uint16Array },
  BF16: { size: 2, ctor: Uint16Array },
  I64: { size: 8, ctor: BigInt64Array },
  I32: { size: 4, ctor: Int32Array },
  I16: { size: 2, ctor: Int16Array },
  I8: { size: 1, ctor: Int8Array },
  U8: { size: 1, ctor: Uint8Array },
  BOOL: { size: 1, ctor: Uint8Array },
};

const MAX_HEADER = 100_000_000; // the Python reader's limit

if (os.endianness() !== 'LE') {
  throw new Error('detseg3d safetensors: big-endian hosts are not supported (the format is little-endian)');
}

function impliedDtype(a: SafeArray): SafeDType | undefined {
  if (a instanceof Float64Array) return 'F64';
  if (a instanceof Float32Array) return 'F32';
  if (a instanceof BigInt64Array) return 'I64';
  if (a instanceof Int32Array) return 'I32';
  if (a instanceof Int16Array) return 'I16';
  if (a instanceof Int8Array) return 'I8';
  if (a instanceof Uint8Array) return 'U8';
  return undefined; // Uint16Array: F16 or BF16, the caller must say
}

function checkTensor(name: string, t: TensorInput): SafeDType {
  if (!t || !ArrayBuffer.isView(t.data)) throw new Error(`safetensors: tensor '${name}' has no typed-array data`);
  const dtype = t.dtype ?? impliedDtype(t.data);
  if (!dtype) throw new Error(`safetensors: tensor '${name}' is a Uint16Array; say dtype 'F16' or 'BF16'`);
  const spec = DTYPES[dtype];
  if (!spec) throw new Error(`safetensors: tensor '${name}' has unknown dtype '${dtype}'; supported: ${Object.keys(DTYPES).join(', ')}`);
  if (!(t.data instanceof spec.ctor)) {
    throw new Error(`safetensors: tensor '${name}' is dtype ${dtype} but its data is a ${t.data.constructor.name}; use a ${spec.ctor.name}`);
  }
  if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`safetensors: tensor '${name}' has an invalid shape [${t.shape}]; use non-negative integers`);
  }
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== t.data.length) throw new Error(`safetensors: tensor '${name}' has shape [${t.shape.join(', ')}] (${n} elements) but ${t.data.length} values`);
  return dtype;
}

/** Serializes tensors (and optional string metadata) into one safetensors buffer (list of chunks). */
export function encodeSafetensorsChunks(
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).map(([name, t]) => {
    if (name === '__metadata__') throw new Error("safetensors: '__metadata__' is reserved and cannot name a tensor");
    return { name, t, dtype: checkTensor(name, t) };
  });
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name)) throw new Error(`safetensors: duplicate tensor name '${e.name}'`);
    seen.add(e.name);
  }
  entries.sort((a, b) => DTYPES[b.dtype].size - DTYPES[a.dtype].size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata value of '${k}' must be a string (got ${typeof v}); JSON.stringify it`);
    }
    header.__metadata__ = metadata;
  }
  let off = 0;
  for (const e of entries) {
    const bytes = e.t.data.byteLength;
    header[e.name] = { dtype: e.dtype, shape: [...e.t.shape], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  return [head, json, ...entries.map((e) => new Uint8Array(e.t.data.buffer, e.t.data.byteOffset, e.t.data.byteLength))];
}

/** Serializes into one contiguous buffer. */
export function encodeSafetensors(tensors: Map<string, TensorInput> | Record<string, TensorInput>, metadata?: Record<string, string>): Uint8Array {
  return Buffer.concat(encodeSafetensorsChunks(tensors, metadata));
}

export interface SafetensorsContent {
  /** Tensors in file order (by data offset). Each owns a copy of its data. */
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Parses and validates a safetensors buffer; errors name the file part that is wrong. */
export function decodeSafetensors(buf: Uint8Array, name = '<buffer>'): SafetensorsContent {
  if (buf.length < 8) throw new Error(`${name}: not a safetensors file (only ${buf.length} bytes)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, buf.length - 8))) {
    throw new Error(`${name}: header length ${n} exceeds the file (${buf.length} bytes) or the 100 MB limit; not a safetensors file or truncated`);
  }
  const hlen = Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + hlen)));
  } catch (e) {
    throw new Error(`${name}: header is not valid UTF-8 JSON (${(e as Error).message}); not a safetensors file or corrupted`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error(`${name}: header is not a JSON object`);
  const dataStart = 8 + hlen;
  const dataLen = buf.length - dataStart;
  const metadata: Record<string, string> = {};
  const raw = header.__metadata__;
  if (raw !== undefined) {
    if (typeof raw !== 'object' || raw === null) throw new Error(`${name}: __metadata__ must be an object of strings`);
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v !== 'string') throw new Error(`${name}: __metadata__['${k}'] is not a string`);
      metadata[k] = v;
    }
  }
  const list: { name: string; dtype: SafeDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [tn, info] of Object.entries(header)) {
    if (tn === '__metadata__') continue;
    const i = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = i?.dtype as SafeDType;
    if (!DTYPES[dtype]) throw new Error(`${name}: tensor '${tn}' has dtype ${JSON.stringify(i?.dtype)}; supported: ${Object.keys(DTYPES).join(', ')}`);
    const shape = i.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${name}: tensor '${tn}' has an invalid shape ${JSON.stringify(shape)}`);
    const off = i.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((v) => Number.isInteger(v) && v >= 0) || off[1] < off[0]) {
      throw new Error(`${name}: tensor '${tn}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (off[1] - off[0] !== numel * DTYPES[dtype].size) {
      throw new Error(`${name}: tensor '${tn}' spans ${off[1] - off[0]} bytes but shape [${shape}] of ${dtype} needs ${numel * DTYPES[dtype].size}`);
    }
    list.push({ name: tn, dtype, shape: shape as number[], begin: off[0], end: off[1] });
  }
  list.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of list) {
    if (e.begin !== pos) throw new Error(`${name}: tensor '${e.name}' starts at data byte ${e.begin} but the previous tensor ends at ${pos} (gap or overlap)`);
    pos = e.end;
  }
  if (pos !== dataLen) throw new Error(`${name}: tensors cover ${pos} data bytes but the file holds ${dataLen} (truncated or trailing bytes)`);
  const tensors = new Map<string, SafeTensor>();
  for (const e of list) {
    const copy = new Uint8Array(e.end - e.begin);
    copy.set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: new DTYPES[e.dtype].ctor(copy.buffer) });
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (temp file + fsync + rename). */
export function writeSafetensors(
  path: string,
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  metadata?: Record<string, string>,
): void {
  writeBytesAtomic(path, ...encodeSafetensorsChunks(tensors, metadata));
}

export function readSafetensors(path: string): SafetensorsContent {
  return decodeSafetensors(fs.readFileSync(path), path);
}
