// Hand-built NIfTI files for the reader tests, written from the NIfTI-1/2
// header layouts (byte offsets from nifti1.h / nifti2.h), independently of
// src/io/nifti.ts's writer.

export interface HandHeader {
  littleEndian?: boolean;
  datatype: number;
  bitpix: number;
  dim: number[]; // dim[0..7]
  pixdim: number[]; // pixdim[0..7]
  slope?: number;
  inter?: number;
  qformCode?: number;
  sformCode?: number;
  quatern?: number[];
  qoffset?: number[];
  srow?: number[][];
  magic?: string;
}

export function handNifti1(h: HandHeader, data: Uint8Array): Uint8Array {
  const le = h.littleEndian ?? true;
  const buf = new Uint8Array(352 + data.length);
  const v = new DataView(buf.buffer);
  v.setInt32(0, 348, le);
  for (let i = 0; i < 8; i++) v.setInt16(40 + 2 * i, h.dim[i] ?? 1, le);
  v.setInt16(70, h.datatype, le);
  v.setInt16(72, h.bitpix, le);
  for (let i = 0; i < 8; i++) v.setFloat32(76 + 4 * i, h.pixdim[i] ?? 1, le);
  v.setFloat32(108, 352, le);
  v.setFloat32(112, h.slope ?? 0, le);
  v.setFloat32(116, h.inter ?? 0, le);
  v.setInt16(252, h.qformCode ?? 0, le);
  v.setInt16(254, h.sformCode ?? 0, le);
  const q = h.quatern ?? [0, 0, 0];
  const o = h.qoffset ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    v.setFloat32(256 + 4 * i, q[i], le);
    v.setFloat32(268 + 4 * i, o[i], le);
  }
  const s = h.srow ?? [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat32(280 + (r * 4 + c) * 4, s[r][c], le);
  const magic = h.magic ?? 'n+1\0';
  for (let i = 0; i < 4; i++) buf[344 + i] = magic.charCodeAt(i);
  buf.set(data, 352);
  return buf;
}

export function handNifti2(h: HandHeader, data: Uint8Array): Uint8Array {
  const le = h.littleEndian ?? true;
  const buf = new Uint8Array(544 + data.length);
  const v = new DataView(buf.buffer);
  v.setInt32(0, 540, le);
  const magic = 'n+2\0\r\n\x1a\n';
  for (let i = 0; i < 8; i++) buf[4 + i] = magic.charCodeAt(i);
  v.setInt16(12, h.datatype, le);
  v.setInt16(14, h.bitpix, le);
  for (let i = 0; i < 8; i++) v.setBigInt64(16 + 8 * i, BigInt(h.dim[i] ?? 1), le);
  for (let i = 0; i < 8; i++) v.setFloat64(104 + 8 * i, h.pixdim[i] ?? 1, le);
  v.setBigInt64(168, 544n, le);
  v.setFloat64(176, h.slope ?? 0, le);
  v.setFloat64(184, h.inter ?? 0, le);
  v.setInt32(344, h.qformCode ?? 0, le);
  v.setInt32(348, h.sformCode ?? 0, le);
  const q = h.quatern ?? [0, 0, 0];
  const o = h.qoffset ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    v.setFloat64(352 + 8 * i, q[i], le);
    v.setFloat64(376 + 8 * i, o[i], le);
  }
  const s = h.srow ?? [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat64(400 + (r * 4 + c) * 8, s[r][c], le);
  v.setInt32(500, 2, le);
  buf.set(data, 544);
  return buf;
}

/** Bytes of a typed array in the requested byte order. */
export function bytesOf(a: Int16Array | Float32Array | Float64Array | Int32Array | Uint8Array, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(a.byteLength);
  const v = new DataView(out.buffer);
  const w = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < a.length; i++) {
    if (a instanceof Int16Array) v.setInt16(i * w, a[i], littleEndian);
    else if (a instanceof Int32Array) v.setInt32(i * w, a[i], littleEndian);
    else if (a instanceof Float32Array) v.setFloat32(i * w, a[i], littleEndian);
    else if (a instanceof Float64Array) v.setFloat64(i * w, a[i], littleEndian);
    else v.setUint8(i, a[i]);
  }
  return out;
}
