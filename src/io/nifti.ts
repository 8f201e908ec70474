// NIfTI-1 / NIfTI-2 reading (header parsing by nifti-reader-js, voxel decoding
// and geometry here) and NIfTI-1 writing (our own small writer).
//
// Geometry follows nibabel: the voxel-to-world affine is the sform when
// sform_code > 0, else the qform when qform_code > 0, else diag(pixdim)
// (NIfTI "method 1"; nibabel would centre that fallback, real files almost
// never use it). Scaling: when scl_slope is set (non-zero, finite) and is not
// the identity (1, 0), values become slope·v + inter in floating point.
import { readFile, writeFile } from 'node:fs/promises';
import { gunzip, gunzipSync, gzip } from 'node:zlib';
import { promisify } from 'node:util';
import * as nifti from 'nifti-reader-js';
import type { Affine, Volume, VoxelArray } from './volume.js';
import { orientationCode, spacingFromAffine } from './affine.js';

export {
  voxelToWorld, worldToVoxel, invertAffine, multiplyAffines, transformBoxes, boxesVoxelToWorld, boxesWorldToVoxel,
  spacingFromAffine, orientationCode, axisOrientation, parseOrientationCode,
} from './affine.js';
export type { Vec3 } from './affine.js';

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

export type NiftiDatatype =
  | 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64';

/** NIfTI datatype codes we read (and, except the 64-bit integers, write). */
const DATATYPES: Record<number, { name: NiftiDatatype; bytes: number }> = {
  2: { name: 'uint8', bytes: 1 },
  4: { name: 'int16', bytes: 2 },
  8: { name: 'int32', bytes: 4 },
  16: { name: 'float32', bytes: 4 },
  64: { name: 'float64', bytes: 8 },
  256: { name: 'int8', bytes: 1 },
  512: { name: 'uint16', bytes: 2 },
  768: { name: 'uint32', bytes: 4 },
  1024: { name: 'int64', bytes: 8 },
  1280: { name: 'uint64', bytes: 8 },
};
const UNSUPPORTED: Record<number, string> = {
  1: 'binary', 32: 'complex64', 128: 'rgb24', 1536: 'float128', 1792: 'complex128', 2048: 'complex256', 2304: 'rgba32',
};
const CODE_OF: Record<string, number> = Object.fromEntries(Object.entries(DATATYPES).map(([c, d]) => [d.name, +c]));

/** The header fields detseg3d uses, normalised across NIfTI-1 and NIfTI-2. */
export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  /** The raw dim[0..7] array. */
  dim: number[];
  /** The raw pixdim[0..7] array (pixdim[0] holds qfac). */
  pixdim: number[];
  datatypeCode: number;
  bitpix: number;
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  /** srow_x, srow_y, srow_z (3 rows of 4). */
  srow: number[][];
  xyztUnits: number;
  intentCode: number;
  calMin: number;
  calMax: number;
  description: string;
  magic: string;
  /** Which transform produced `affine`. */
  affineSource: 'sform' | 'qform' | 'pixdim';
}

export interface NiftiVolume extends Volume {
  /** Voxel size (x, y, z) in mm: the column lengths of the affine. */
  spacing: [number, number, number];
  /** Orientation code of the affine, e.g. 'RAS', 'LPS'. */
  orientation: string;
  /** Datatype stored in the file (before scl_slope/scl_inter). */
  datatype: NiftiDatatype;
  /** True when scl_slope/scl_inter were applied (data is then float). */
  scaled: boolean;
  header: NiftiHeader;
}

function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Quaternion (b, c, d) + qfac + pixdim + offsets → affine (NIfTI method 2). */
export function qformToAffine(
  quatern: readonly number[], qoffset: readonly number[], pixdim: readonly number[],
): Affine {
  let [b, c, d] = quatern;
  let a2 = 1 - (b * b + c * c + d * d);
  if (a2 < 1e-7) {
    // A 180° rotation stored in float32: 1 − (b² + c² + d²) is rounding noise.
    // As nifti1_io does, take a = 0 and renormalise (b, c, d).
    const norm = Math.sqrt(b * b + c * c + d * d);
    b /= norm; c /= norm; d /= norm;
    a2 = 0;
  }
  const a = Math.sqrt(a2);
  const R = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c],
  ];
  const qfac = pixdim[0] < 0 ? -1 : 1;
  // Non-positive voxel sizes are invalid; nifti1_io treats them as 1.
  const sz = [1, 2, 3].map((i) => (pixdim[i] > 0 ? pixdim[i] : 1));
  sz[2] *= qfac;
  const out: Affine = R.map((row, r) => [row[0] * sz[0], row[1] * sz[1], row[2] * sz[2], qoffset[r]]);
  out.push([0, 0, 0, 1]);
  return out;
}

function parseHeader(ab: ArrayBuffer, name: string): NiftiHeader {
  if (ab.byteLength < 348) {
    throw new Error(`${name}: file is ${ab.byteLength} bytes, too short for a NIfTI header (348 bytes); it is truncated or not NIfTI`);
  }
  const v2 = nifti.isNIFTI2(ab);
  if (!v2 && !nifti.isNIFTI1(ab, true)) {
    const magic = new TextDecoder('latin1').decode(new Uint8Array(ab, 344, 4)).replace(/\0/g, '\\0');
    throw new Error(`${name}: not a NIfTI-1/NIfTI-2 file (sizeof_hdr must be 348 or 540 and magic 'n+1'/'n+2'; found magic '${magic}')`);
  }
  let h: nifti.NIFTI1 | nifti.NIFTI2;
  try {
    h = nifti.readHeader(ab, true) as nifti.NIFTI1 | nifti.NIFTI2;
  } catch (e) {
    throw new Error(`${name}: cannot parse the NIfTI header (${(e as Error).message})`);
  }
  if (!h) throw new Error(`${name}: cannot parse the NIfTI header`);
  if (!v2 && h.magic.startsWith('ni1')) {
    throw new Error(`${name}: this is the header of a .hdr/.img pair (magic 'ni1'); convert it to a single .nii file`);
  }
  const le = h.littleEndian;
  const view = new DataView(ab);
  const srow: number[][] = [];
  for (let r = 0; r < 3; r++) {
    const row: number[] = [];
    for (let c = 0; c < 4; c++) {
      row.push(v2 ? view.getFloat64(400 + (r * 4 + c) * 8, le) : view.getFloat32(280 + (r * 4 + c) * 4, le));
    }
    srow.push(row);
  }
  const hh = h as unknown as Record<string, number>;
  return {
    version: v2 ? 2 : 1,
    littleEndian: le,
    dim: [...h.dims].map(Number),
    pixdim: [...h.pixDims].map(Number),
    datatypeCode: h.datatypeCode,
    bitpix: h.numBitsPerVoxel,
    voxOffset: Number(h.vox_offset),
    sclSlope: h.scl_slope,
    sclInter: h.scl_inter,
    qformCode: h.qform_code,
    sformCode: h.sform_code,
    quatern: [hh.quatern_b, hh.quatern_c, hh.quatern_d],
    qoffset: [hh.qoffset_x, hh.qoffset_y, hh.qoffset_z],
    srow,
    xyztUnits: h.xyzt_units,
    intentCode: h.intent_code,
    calMin: h.cal_min,
    calMax: h.cal_max,
    description: h.description.replace(/\0+$/, ''),
    magic: h.magic.replace(/\0+$/, ''),
    affineSource: 'pixdim',
  };
}

function headerAffine(h: NiftiHeader): Affine {
  if (h.sformCode > 0) {
    h.affineSource = 'sform';
    return [...h.srow.map((r) => [...r]), [0, 0, 0, 1]];
  }
  if (h.qformCode > 0) {
    h.affineSource = 'qform';
    return qformToAffine(h.quatern, h.qoffset, h.pixdim);
  }
  h.affineSource = 'pixdim';
  const p = [1, 2, 3].map((i) => (h.pixdim[i] > 0 ? h.pixdim[i] : 1));
  return [[p[0], 0, 0, 0], [0, p[1], 0, 0], [0, 0, p[2], 0], [0, 0, 0, 1]];
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i < bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

function typedView(name: NiftiDatatype, ab: ArrayBuffer): VoxelArray | BigInt64Array | BigUint64Array {
  switch (name) {
    case 'uint8': return new Uint8Array(ab);
    case 'int8': return new Int8Array(ab);
    case 'int16': return new Int16Array(ab);
    case 'uint16': return new Uint16Array(ab);
    case 'int32': return new Int32Array(ab);
    case 'uint32': return new Uint32Array(ab);
    case 'int64': return new BigInt64Array(ab);
    case 'uint64': return new BigUint64Array(ab);
    case 'float32': return new Float32Array(ab);
    case 'float64': return new Float64Array(ab);
  }
}

/** Decodes an uncompressed or gzipped NIfTI file held in memory. `name` is used in error messages. */
export function readNiftiBuffer(buf: ArrayBuffer | Uint8Array, name = '<buffer>'): NiftiVolume {
  let bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new Error(`${name}: cannot decompress the gzip stream (${(e as Error).message}); the file is truncated or corrupt`);
    }
  }
  return decodeNifti(bytes, name);
}

function decodeNifti(bytes: Uint8Array, name: string): NiftiVolume {
  // Copy the header into its own ArrayBuffer: a Node Buffer may be a view into a larger (pooled) buffer.
  const headerBytes = new Uint8Array(Math.min(bytes.length, 540));
  headerBytes.set(bytes.subarray(0, headerBytes.length));
  const h = parseHeader(headerBytes.buffer, name);
  const dt = DATATYPES[h.datatypeCode];
  if (!dt) {
    const what = UNSUPPORTED[h.datatypeCode] ?? `code ${h.datatypeCode}`;
    throw new Error(
      `${name}: unsupported NIfTI datatype ${what}; supported: ${Object.values(DATATYPES).map((d) => d.name).join(', ')}`,
    );
  }
  const ndim = h.dim[0];
  if (!(ndim >= 1 && ndim <= 7)) throw new Error(`${name}: invalid dim[0] = ${ndim} (must be 1..7)`);
  const dims = [1, 2, 3].map((i) => (i <= ndim ? h.dim[i] : 1)) as [number, number, number];
  if (dims.some((d) => !(Number.isInteger(d) && d >= 1))) throw new Error(`${name}: invalid dimensions ${dims.join('x')}`);
  let extra = 1;
  for (let i = 4; i <= ndim; i++) extra *= Math.max(1, h.dim[i]);
  if (extra > 1) {
    throw new Error(
      `${name}: a ${ndim}D image (dim ${h.dim.slice(1, ndim + 1).join('x')}) where a 3D volume is needed; ` +
        'extract one 3D volume first (e.g. fslroi or nibabel slicing)',
    );
  }
  const n = dims[0] * dims[1] * dims[2];
  const nbytes = n * dt.bytes;
  if (!(h.voxOffset >= (h.version === 2 ? 540 : 348))) throw new Error(`${name}: invalid vox_offset ${h.voxOffset}`);
  if (bytes.length < h.voxOffset + nbytes) {
    throw new Error(
      `${name}: truncated: ${dims.join('x')} ${dt.name} voxels need ${h.voxOffset + nbytes} bytes, the file has ${bytes.length}`,
    );
  }
  // Copy into a fresh, aligned buffer (vox_offset need not be a multiple of the element size).
  const raw = new Uint8Array(nbytes);
  raw.set(bytes.subarray(h.voxOffset, h.voxOffset + nbytes));
  if (!h.littleEndian && dt.bytes > 1) swapBytes(raw, dt.bytes);
  let arr = typedView(dt.name, raw.buffer);
  if (arr instanceof BigInt64Array || arr instanceof BigUint64Array) {
    // 64-bit integers have no JS voxel type: convert to float64 (exact up to 2^53).
    const f = new Float64Array(n);
    for (let i = 0; i < n; i++) f[i] = Number(arr[i]);
    arr = f;
  }
  let data = arr as VoxelArray;
  const slope = h.sclSlope;
  const inter = Number.isFinite(h.sclInter) ? h.sclInter : 0;
  const scaled = Number.isFinite(slope) && slope !== 0 && !(slope === 1 && inter === 0);
  if (scaled) {
    // Small integer types fit float32 exactly; wider ones keep float64 precision.
    const wide = dt.bytes >= 4 && dt.name !== 'float32';
    const out = wide ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = data[i] * slope + inter;
    data = out;
  }
  const affine = headerAffine(h);
  return {
    data,
    dims,
    affine,
    spacing: spacingFromAffine(affine),
    orientation: orientationCode(affine),
    datatype: dt.name,
    scaled,
    header: h,
  };
}

/** Reads a .nii or .nii.gz file (NIfTI-1 or NIfTI-2, gzip detected from the content). */
export async function readNifti(path: string): Promise<NiftiVolume> {
  let buf: Uint8Array;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read file (${(e as Error).message})`);
  }
  if (isGzip(buf)) {
    try {
      buf = await gunzipAsync(buf);
    } catch (e) {
      throw new Error(`${path}: cannot decompress the gzip stream (${(e as Error).message}); the file is truncated or corrupt`);
    }
  }
  return decodeNifti(buf, path);
}

export interface WriteNiftiOptions {
  /** Stored datatype; defaults to the data's own type. Integer targets round and must hold every value. */
  datatype?: NiftiDatatype;
  /** Header description (up to 79 ASCII characters). */
  description?: string;
  /** qform_code and sform_code written (default 1 = scanner anatomical). */
  xformCode?: number;
  /** gzip level 1..9 for .gz paths (default 6). */
  compressionLevel?: number;
}

function datatypeOfArray(a: VoxelArray): NiftiDatatype {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint16Array) return 'uint16';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint32Array) return 'uint32';
  throw new Error('writeNifti: volume.data must be a typed array (Float32Array, Int16Array, ...)');
}

const INT_RANGE: Partial<Record<NiftiDatatype, [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-2147483648, 2147483647], uint32: [0, 4294967295],
};

function convertData(src: VoxelArray, target: NiftiDatatype): VoxelArray {
  if (target === 'int64' || target === 'uint64') {
    throw new Error(`writeNifti: writing ${target} is not supported; use int32 or float64`);
  }
  if (datatypeOfArray(src) === target) return src;
  const out = typedView(target, new ArrayBuffer(src.length * DATATYPES[CODE_OF[target]].bytes)) as VoxelArray;
  const range = INT_RANGE[target];
  for (let i = 0; i < src.length; i++) {
    let v = src[i];
    if (range) {
      v = Math.round(v);
      if (!(v >= range[0] && v <= range[1])) {
        throw new Error(`writeNifti: value ${src[i]} at voxel ${i} does not fit datatype ${target} [${range[0]}, ${range[1]}]`);
      }
    }
    out[i] = v;
  }
  return out;
}

/** Nearest orthonormal matrix by polar-decomposition iteration (R ← (R + R⁻ᵀ)/2). */
function orthonormalise(m: number[][]): number[][] {
  let r = m.map((row) => [...row]);
  for (let it = 0; it < 30; it++) {
    const [a, b, c] = r[0], [d, e, f] = r[1], [g, h, i] = r[2];
    const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
    // inverse-transpose = cofactor matrix / det
    const cof = [
      [e * i - f * h, -(d * i - f * g), d * h - e * g],
      [-(b * i - c * h), a * i - c * g, -(a * h - b * g)],
      [b * f - c * e, -(a * f - c * d), a * e - b * d],
    ];
    let diff = 0;
    const next = r.map((row, ri) => row.map((v, ci) => {
      const nv = 0.5 * (v + cof[ri][ci] / det);
      diff = Math.max(diff, Math.abs(nv - v));
      return nv;
    }));
    r = next;
    if (diff < 1e-12) break;
  }
  return r;
}

/** Affine → qform parameters (quaternion b, c, d; offsets; pixdim with qfac). Shear is dropped. */
export function affineToQform(affine: Affine): { quatern: [number, number, number]; qoffset: [number, number, number]; pixdim: [number, number, number, number] } {
  const sp = spacingFromAffine(affine);
  if (sp.some((s) => !(s > 0))) throw new Error(`writeNifti: affine has a zero-length axis: ${JSON.stringify(affine)}`);
  let m = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c] / sp[c]));
  const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (let r = 0; r < 3; r++) m[r][2] = -m[r][2];
  m = orthonormalise(m);
  const R = m;
  const tr = R[0][0] + R[1][1] + R[2][2];
  let a: number, b: number, c: number, d: number;
  if (tr > 0) {
    a = 0.5 * Math.sqrt(1 + tr);
    b = (R[2][1] - R[1][2]) / (4 * a);
    c = (R[0][2] - R[2][0]) / (4 * a);
    d = (R[1][0] - R[0][1]) / (4 * a);
  } else if (R[0][0] >= R[1][1] && R[0][0] >= R[2][2]) {
    b = 0.5 * Math.sqrt(Math.max(0, 1 + R[0][0] - R[1][1] - R[2][2]));
    c = (R[0][1] + R[1][0]) / (4 * b);
    d = (R[0][2] + R[2][0]) / (4 * b);
    a = (R[2][1] - R[1][2]) / (4 * b);
  } else if (R[1][1] >= R[2][2]) {
    c = 0.5 * Math.sqrt(Math.max(0, 1 - R[0][0] + R[1][1] - R[2][2]));
    b = (R[0][1] + R[1][0]) / (4 * c);
    d = (R[1][2] + R[2][1]) / (4 * c);
    a = (R[0][2] - R[2][0]) / (4 * c);
  } else {
    d = 0.5 * Math.sqrt(Math.max(0, 1 - R[0][0] - R[1][1] + R[2][2]));
    b = (R[0][2] + R[2][0]) / (4 * d);
    c = (R[1][2] + R[2][1]) / (4 * d);
    a = (R[1][0] - R[0][1]) / (4 * d);
  }
  if (a < 0) { b = -b; c = -c; d = -d; }
  return {
    quatern: [b, c, d],
    qoffset: [affine[0][3], affine[1][3], affine[2][3]],
    pixdim: [qfac, sp[0], sp[1], sp[2]],
  };
}

/** Encodes a volume as an uncompressed single-file NIfTI-1 (.nii) byte array (little endian, vox_offset 352). */
export function encodeNifti(volume: Volume, opts: WriteNiftiOptions = {}): Buffer {
  const { dims, affine } = volume;
  if (!Array.isArray(dims) || dims.length !== 3 || dims.some((d) => !(Number.isInteger(d) && d >= 1 && d <= 32767))) {
    throw new Error(`writeNifti: dims must be three integers in 1..32767 (NIfTI-1), got ${JSON.stringify(dims)}`);
  }
  const n = dims[0] * dims[1] * dims[2];
  if (volume.data.length !== n) throw new Error(`writeNifti: data has ${volume.data.length} voxels, dims ${dims.join('x')} need ${n}`);
  const target = opts.datatype ?? datatypeOfArray(volume.data);
  const code = CODE_OF[target];
  if (!code) throw new Error(`writeNifti: unknown datatype '${target}'`);
  const data = convertData(volume.data, target);
  const q = affineToQform(affine);
  const xform = opts.xformCode ?? 1;

  const hdr = Buffer.alloc(352);
  const v = new DataView(hdr.buffer, hdr.byteOffset, 352);
  v.setInt32(0, 348, true);
  hdr[38] = 'r'.charCodeAt(0);
  const dimArr = [3, dims[0], dims[1], dims[2], 1, 1, 1, 1];
  dimArr.forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  v.setInt16(70, code, true);
  v.setInt16(72, DATATYPES[code].bytes * 8, true);
  const pixdim = [q.pixdim[0], q.pixdim[1], q.pixdim[2], q.pixdim[3], 1, 1, 1, 1];
  pixdim.forEach((p, i) => v.setFloat32(76 + 4 * i, p, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true); // scl_slope
  v.setFloat32(116, 0, true); // scl_inter
  hdr[123] = 2; // xyzt_units: millimetres
  const desc = (opts.description ?? 'detseg3d').replace(/[^\x20-\x7e]/g, '?').slice(0, 79);
  hdr.write(desc, 148, 'latin1');
  v.setInt16(252, xform, true);
  v.setInt16(254, xform, true);
  q.quatern.forEach((x, i) => v.setFloat32(256 + 4 * i, x, true));
  q.qoffset.forEach((x, i) => v.setFloat32(268 + 4 * i, x, true));
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat32(280 + (r * 4 + c) * 4, affine[r][c], true);
  hdr.write('n+1\0', 344, 'latin1');
  // bytes 348..351: extension flag = 0 (no extensions)

  // NIfTI data is little endian here; every platform Node runs on is little endian too.
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([hdr, body]);
}

/** Writes a .nii file, or a gzipped .nii.gz when the path ends in .gz. */
export async function writeNifti(path: string, volume: Volume, opts: WriteNiftiOptions = {}): Promise<void> {
  let out = encodeNifti(volume, opts);
  if (path.toLowerCase().endsWith('.gz')) out = await gzipAsync(out, { level: opts.compressionLevel ?? 6 });
  try {
    await writeFile(path, out);
  } catch (e) {
    throw new Error(`${path}: cannot write file (${(e as Error).message})`);
  }
}
