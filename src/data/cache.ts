// The cache of pre-processed volumes: each case is decoded once, then kept
// uncompressed either in shared memory (a SharedArrayBuffer every worker
// thread reads without copying) or as a raw file in a cache folder (reused
// across runs while the sources and options are unchanged).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Affine, VoxelArray } from '../io/volume.js';
import type { CaseSource } from './dataset.js';
import type { PreparedCase, PrepareOptions } from './prepare.js';
import type { CachedCase } from './pipeline.js';

export type VoxelTypeName = 'Float32Array' | 'Float64Array' | 'Int8Array' | 'Uint8Array' | 'Int16Array' | 'Uint16Array' | 'Int32Array' | 'Uint32Array';

const CTORS: Record<VoxelTypeName, { new (b: ArrayBufferLike, o?: number, n?: number): VoxelArray; BYTES_PER_ELEMENT: number }> = {
  Float32Array, Float64Array, Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array,
};

/** A cached case as plain data that can be posted to worker threads (the voxels stay shared or on disk). */
export interface SharedCase {
  id: string;
  imagePath: string;
  dims: [number, number, number];
  affine: Affine;
  spacing: [number, number, number];
  orientation: string;
  boxes: number[];
  labels: number[];
  negative: boolean;
  droppedSmall: number;
  stats?: { mean: number; std: number };
  dtype: VoxelTypeName;
  /** Voxels in shared memory (memory cache) ... */
  shared?: SharedArrayBuffer;
  /** ... or in this raw little-endian file (disk cache). */
  file?: string;
}

function typeName(a: VoxelArray): VoxelTypeName {
  return a.constructor.name as VoxelTypeName;
}

/** Moves a prepared case into shared memory (one copy) or writes it to `file`. */
export function shareCase(p: PreparedCase, file?: string): SharedCase {
  const meta: SharedCase = {
    id: p.id, imagePath: p.imagePath, dims: p.dims, affine: p.affine, spacing: p.spacing, orientation: p.orientation,
    boxes: Array.from(p.boxes), labels: Array.from(p.labels), negative: p.negative, droppedSmall: p.droppedSmall,
    stats: p.stats, dtype: typeName(p.data),
  };
  const bytes = new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength);
  if (file) {
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
    writeFileSync(`${file}.json`, JSON.stringify({ ...meta, file }));
    meta.file = file;
  } else {
    const sab = new SharedArrayBuffer(bytes.byteLength);
    new Uint8Array(sab).set(bytes);
    meta.shared = sab;
  }
  return meta;
}

/** The pipeline's view of a shared case: a typed array over the shared memory, or the cache file read into memory. */
export function openCase(s: SharedCase): CachedCase {
  const Ctor = CTORS[s.dtype];
  if (!Ctor) throw new Error(`cache: unknown voxel type ${s.dtype} for case ${s.id}`);
  let data: VoxelArray;
  if (s.shared) {
    data = new Ctor(s.shared);
  } else if (s.file) {
    let buf: Buffer;
    try {
      buf = readFileSync(s.file);
    } catch (e) {
      throw new Error(`${s.file}: cannot read the cached volume of ${s.imagePath} (${(e as Error).message}); delete the cache folder to rebuild it`);
    }
    const n = s.dims[0] * s.dims[1] * s.dims[2];
    if (buf.byteLength !== n * Ctor.BYTES_PER_ELEMENT) {
      throw new Error(`${s.file}: cached volume of ${s.imagePath} has ${buf.byteLength} bytes, expected ${n * Ctor.BYTES_PER_ELEMENT}; delete the cache folder`);
    }
    const ab = new ArrayBuffer(buf.byteLength);
    new Uint8Array(ab).set(buf);
    data = new Ctor(ab);
  } else {
    throw new Error(`cache: case ${s.id} has neither shared memory nor a cache file`);
  }
  return {
    id: s.id, imagePath: s.imagePath, data, dims: s.dims, affine: s.affine,
    boxes: Float32Array.from(s.boxes), labels: Int32Array.from(s.labels), stats: s.stats,
  };
}

/**
 * A disk-cached case that reads only the z-slabs patches need (a patch of
 * 80 slices out of 256 reads under a third of the file), instead of the
 * whole volume for every batch.
 */
export function openCaseLazy(s: SharedCase): CachedCase {
  if (s.shared || !s.file) return openCase(s);
  const Ctor = CTORS[s.dtype];
  if (!Ctor) throw new Error(`cache: unknown voxel type ${s.dtype} for case ${s.id}`);
  const file = s.file;
  const slice = s.dims[0] * s.dims[1] * Ctor.BYTES_PER_ELEMENT;
  const readSlab = (z0: number, z1: number): VoxelArray => {
    const ab = new ArrayBuffer((z1 - z0) * slice);
    const bytes = new Uint8Array(ab);
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (e) {
      throw new Error(`${file}: cannot open the cached volume of ${s.imagePath} (${(e as Error).message}); delete the cache folder to rebuild it`);
    }
    try {
      let got = 0;
      while (got < bytes.length) {
        const n = readSync(fd, bytes, got, bytes.length - got, z0 * slice + got);
        if (n === 0) throw new Error(`${file}: cached volume of ${s.imagePath} is truncated; delete the cache folder to rebuild it`);
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    return new Ctor(ab);
  };
  return {
    id: s.id, imagePath: s.imagePath, data: null, readSlab, dims: s.dims, affine: s.affine,
    boxes: Float32Array.from(s.boxes), labels: Int32Array.from(s.labels), stats: s.stats,
  };
}

/**
 * Cache file path for a case: a hash of the source files (path, size, mtime),
 * the annotation and the pre-processing options, so stale entries are never reused.
 */
export function cacheFileFor(dir: string, src: CaseSource, opts: PrepareOptions): string {
  const h = createHash('sha256');
  for (const f of [src.image, src.label]) {
    if (!f) continue;
    const st = statSync(f);
    h.update(`${f}|${st.size}|${st.mtimeMs}|`);
  }
  h.update(JSON.stringify({ b: src.worldBoxes ? Array.from(src.worldBoxes) : null, l: src.boxLabels ? Array.from(src.boxLabels) : null, opts }));
  const safe = src.id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  mkdirSync(dir, { recursive: true });
  return join(dir, `${safe}.${h.digest('hex').slice(0, 16)}.raw`);
}

/** A previously written cache entry for `file`, when complete. */
export function readCacheEntry(file: string): SharedCase | null {
  if (!existsSync(file) || !existsSync(`${file}.json`)) return null;
  try {
    return JSON.parse(readFileSync(`${file}.json`, 'utf8')) as SharedCase;
  } catch {
    return null;
  }
}
