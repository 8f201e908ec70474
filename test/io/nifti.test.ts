import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import * as niftiLib from 'nifti-reader-js';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  readNifti, readNiftiBuffer, writeNifti, encodeNifti, qformToAffine, affineToQform, type NiftiDatatype,
} from '../../src/io/nifti.js';
import type { Affine, VoxelArray } from '../../src/io/volume.js';
import { handNifti1, handNifti2, bytesOf } from './nifti_helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'detseg3d-nifti-'));

// An oblique, flipped affine: rotation by 30° about z, x flipped, anisotropic
// spacing, non-zero origin. Entries are rounded to float32 because the header
// stores srow as float32.
function obliqueAffine(): Affine {
  const c = Math.cos(Math.PI / 6), s = Math.sin(Math.PI / 6);
  const a = [
    [-0.7 * c, -0.8 * s, 0, -12.5],
    [-0.7 * s, 0.8 * c, 0, 30.25],
    [0, 0, 2.5, -100],
  ].map((r) => r.map(Math.fround));
  return [...a, [0, 0, 0, 1]];
}

function makeData(type: NiftiDatatype, n: number): VoxelArray {
  const ctor = {
    uint8: Uint8Array, int8: Int8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array,
    uint32: Uint32Array, float32: Float32Array, float64: Float64Array,
  }[type as 'uint8'];
  const a = new ctor(n);
  for (let i = 0; i < n; i++) {
    const v = (i * 37) % 251;
    a[i] = type === 'float32' || type === 'float64' ? (v - 100) * 0.37 + 1e-3 * i : type.startsWith('u') ? v : v - 120;
  }
  return a;
}

describe('NIfTI write → read round trips', () => {
  const dims: [number, number, number] = [5, 4, 3];
  const types: NiftiDatatype[] = ['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64'];
  for (const type of types) {
    for (const ext of ['.nii', '.nii.gz']) {
      it(`${type} ${ext}`, async () => {
        const data = makeData(type, 60);
        const affine = obliqueAffine();
        const path = join(dir, `rt_${type}${ext}`);
        await writeNifti(path, { data, dims, affine });
        const raw = readFileSync(path);
        // .gz files must really be gzip, plain ones must not
        expect(raw[0] === 0x1f && raw[1] === 0x8b).toBe(ext === '.nii.gz');
        const vol = await readNifti(path);
        expect(vol.datatype).toBe(type);
        expect(vol.data.constructor).toBe(data.constructor);
        expect(Array.from(vol.data)).toEqual(Array.from(data));
        expect(vol.dims).toEqual(dims);
        expect(vol.affine).toEqual(affine);
        expect(vol.header.affineSource).toBe('sform');
        expect(vol.spacing[0]).toBeCloseTo(0.7, 6);
        expect(vol.spacing[1]).toBeCloseTo(0.8, 6);
        expect(vol.spacing[2]).toBeCloseTo(2.5, 6);
        // x points mostly along −world-x (L), y along +A, z along +S
        expect(vol.orientation).toBe('LAS');
        expect(vol.scaled).toBe(false);
      });
    }
  }

  it('converts to a requested datatype (rounding) and rejects values that do not fit', async () => {
    const data = new Float32Array([0.4, 1.6, -2.5, 300]);
    const path = join(dir, 'conv.nii');
    await writeNifti(path, { data, dims: [4, 1, 1], affine: obliqueAffine() }, { datatype: 'int16' });
    const vol = await readNifti(path);
    expect(vol.datatype).toBe('int16');
    // Math.round: 0.4 → 0, 1.6 → 2, −2.5 → −2, 300 → 300
    expect(Array.from(vol.data)).toEqual([0, 2, -2, 300]);
    await expect(writeNifti(path, { data, dims: [4, 1, 1], affine: obliqueAffine() }, { datatype: 'uint8' }))
      .rejects.toThrow(/does not fit datatype uint8/);
  });
});

describe('header written by writeNifti, field by field', () => {
  it('matches the NIfTI-1 layout', () => {
    const affine = obliqueAffine();
    const buf = encodeNifti({ data: new Int16Array(60), dims: [5, 4, 3], affine }, { description: 'hello' });
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    expect(buf.length).toBe(352 + 120);
    expect(v.getInt32(0, true)).toBe(348); // sizeof_hdr
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => v.getInt16(40 + 2 * i, true))).toEqual([3, 5, 4, 3, 1, 1, 1, 1]);
    expect(v.getInt16(70, true)).toBe(4); // DT_INT16
    expect(v.getInt16(72, true)).toBe(16); // bitpix
    // pixdim[0] = qfac: the affine has det < 0 (x flipped) → −1
    expect(v.getFloat32(76, true)).toBe(-1);
    expect(v.getFloat32(80, true)).toBeCloseTo(0.7, 6);
    expect(v.getFloat32(84, true)).toBeCloseTo(0.8, 6);
    expect(v.getFloat32(88, true)).toBeCloseTo(2.5, 6);
    expect(v.getFloat32(108, true)).toBe(352); // vox_offset
    expect(v.getFloat32(112, true)).toBe(1); // scl_slope
    expect(v.getFloat32(116, true)).toBe(0); // scl_inter
    expect(buf[123]).toBe(2); // xyzt_units = mm
    expect(buf.toString('latin1', 148, 153)).toBe('hello');
    expect(buf[153]).toBe(0);
    expect(v.getInt16(252, true)).toBe(1); // qform_code
    expect(v.getInt16(254, true)).toBe(1); // sform_code
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 4; c++) expect(v.getFloat32(280 + (r * 4 + c) * 4, true)).toBe(affine[r][c]);
    }
    expect(buf.toString('latin1', 344, 348)).toBe('n+1\0');
    expect(v.getInt32(348, true)).toBe(0); // no extensions
    // The quaternion + qfac + pixdim + qoffset reproduce the affine (qform = sform).
    const q = [256, 260, 264].map((o) => v.getFloat32(o, true));
    const off = [268, 272, 276].map((o) => v.getFloat32(o, true));
    const pix = [0, 1, 2, 3].map((i) => v.getFloat32(76 + 4 * i, true));
    const qa = qformToAffine(q, off, pix);
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) expect(qa[r][c]).toBeCloseTo(affine[r][c], 5);
  });

  it('affineToQform handles 180° rotations (trace −1) and permutations', () => {
    // LPS with a permutation: voxel x → −world y, y → −world x, z → +world z
    const cases: Affine[] = [
      [[-1, 0, 0, 1], [0, -1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]],
      [[0, -2, 0, 1], [-1, 0, 0, 2], [0, 0, 3, 3], [0, 0, 0, 1]],
      [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
      [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]],
    ];
    for (const a of cases) {
      const q = affineToQform(a);
      const back = qformToAffine(q.quatern, q.qoffset, q.pixdim);
      for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) expect(back[r][c]).toBeCloseTo(a[r][c], 10);
    }
  });
});

describe('reading hand-built files', () => {
  it('NIfTI-1 big endian int16 with scl_slope/scl_inter and a qform only', () => {
    const raw = new Int16Array([1, -2, 300, 4, 5, 6]);
    // quaternion (0, 0, sin 45°): 90° about z → R = [[0,−1,0],[1,0,0],[0,0,1]].
    // pixdim (qfac −1, 2, 3, 4): columns R·2, R·3, −R·4:
    //   x axis → (0, 2, 0), y axis → (−3, 0, 0), z axis → (0, 0, −4); orientation 'ALI'.
    const file = handNifti1({
      littleEndian: false, datatype: 4, bitpix: 16, dim: [3, 3, 2, 1], pixdim: [-1, 2, 3, 4],
      slope: 2, inter: -10, qformCode: 1, quatern: [0, 0, Math.SQRT1_2], qoffset: [7, 8, 9],
    }, bytesOf(raw, false));
    const vol = readNiftiBuffer(file, 'hand.nii');
    expect(vol.header.littleEndian).toBe(false);
    expect(vol.datatype).toBe('int16');
    expect(vol.scaled).toBe(true);
    expect(vol.data).toBeInstanceOf(Float32Array);
    expect(Array.from(vol.data)).toEqual([-8, -14, 590, -2, 0, 2]); // 2·v − 10
    const want = [[0, -3, 0, 7], [2, 0, 0, 8], [0, 0, -4, 9], [0, 0, 0, 1]];
    for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(vol.affine[r][c]).toBeCloseTo(want[r][c], 6);
    expect(vol.header.affineSource).toBe('qform');
    expect(vol.orientation).toBe('ALI');
    expect(vol.spacing.map((s) => +s.toFixed(6))).toEqual([2, 3, 4]);
  });

  it('prefers the sform over the qform when both are set (nibabel), gzip detected by content', () => {
    const srow = [[-1.5, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, 2, -5]];
    const file = handNifti1({
      datatype: 16, bitpix: 32, dim: [3, 2, 1, 1], pixdim: [1, 1, 1, 1], qformCode: 2, sformCode: 1, srow,
    }, bytesOf(new Float32Array([1.5, -2.25]), true));
    const vol = readNiftiBuffer(gzipSync(file), 'x.nii.gz');
    expect(vol.header.affineSource).toBe('sform');
    expect(vol.affine).toEqual([...srow, [0, 0, 0, 1]]);
    expect(vol.orientation).toBe('LPS');
    expect(Array.from(vol.data)).toEqual([1.5, -2.25]);
  });

  it('decodes from a view into a larger buffer (Node Buffer pools), at an odd offset', () => {
    const file = handNifti1({ datatype: 4, bitpix: 16, dim: [3, 2, 1, 1], pixdim: [1, 1, 1, 1] }, bytesOf(Int16Array.from([-5, 9]), true));
    const big = Buffer.alloc(file.length + 1001, 0xab);
    big.set(file, 1001);
    const vol = readNiftiBuffer(big.subarray(1001), 'view.nii');
    expect(Array.from(vol.data)).toEqual([-5, 9]);
    expect(vol.dims).toEqual([2, 1, 1]);
  });

  it('falls back to diag(pixdim) when neither transform is set', () => {
    const file = handNifti1({ datatype: 2, bitpix: 8, dim: [3, 1, 1, 2], pixdim: [0, 0.5, 0.6, 0.7] }, new Uint8Array([3, 4]));
    const vol = readNiftiBuffer(file);
    expect(vol.header.affineSource).toBe('pixdim');
    expect(vol.affine).toEqual([[Math.fround(0.5), 0, 0, 0], [0, Math.fround(0.6), 0, 0], [0, 0, Math.fround(0.7), 0], [0, 0, 0, 1]]);
    expect(vol.dims).toEqual([1, 1, 2]);
  });

  it('NIfTI-2 little and big endian float64 with sform', () => {
    const srow = [[0.5, 0, 0, -1], [0, 0.75, 0, -2], [0, 0, 1.25, -3]];
    const data = new Float64Array([0.1, 0.2, 0.3, -1e300]);
    for (const le of [true, false]) {
      const file = handNifti2({
        littleEndian: le, datatype: 64, bitpix: 64, dim: [3, 2, 2, 1], pixdim: [1, 0.5, 0.75, 1.25], sformCode: 2, srow,
      }, bytesOf(data, le));
      const vol = readNiftiBuffer(file, 'n2.nii');
      expect(vol.header.version).toBe(2);
      expect(vol.datatype).toBe('float64');
      expect(Array.from(vol.data)).toEqual(Array.from(data));
      expect(vol.affine).toEqual([...srow, [0, 0, 0, 1]]);
      expect(vol.spacing).toEqual([0.5, 0.75, 1.25]);
      expect(vol.orientation).toBe('RAS');
    }
  });

  it('NIfTI-2 qform (the library does not compute it; we do)', () => {
    const file = handNifti2({
      datatype: 8, bitpix: 32, dim: [3, 1, 1, 1], pixdim: [1, 2, 2, 2], qformCode: 1, quatern: [0, 0, 1], qoffset: [1, 2, 3],
    }, bytesOf(new Int32Array([-7]), true));
    const vol = readNiftiBuffer(file);
    // quaternion (0,0,1): 180° about z → diag(−1, −1, 1), times spacing 2.
    expect(vol.affine).toEqual([[-2, 0, 0, 1], [0, -2, 0, 2], [0, 0, 2, 3], [0, 0, 0, 1]]);
    expect(vol.orientation).toBe('LPS');
    expect(Array.from(vol.data)).toEqual([-7]);
  });
});

describe('bad files give clear errors', () => {
  const good = () => handNifti1({ datatype: 4, bitpix: 16, dim: [3, 2, 2, 2], pixdim: [1, 1, 1, 1] }, new Uint8Array(16));
  it('truncated data', () => {
    expect(() => readNiftiBuffer(good().subarray(0, 360), 'short.nii')).toThrow(/short\.nii: truncated.*need 368 bytes.*has 360/);
  });
  it('truncated header', () => {
    expect(() => readNiftiBuffer(good().subarray(0, 100), 'h.nii')).toThrow(/h\.nii: .*too short/);
  });
  it('truncated gzip stream', async () => {
    const gz = gzipSync(good());
    const path = join(dir, 'trunc.nii.gz');
    writeFileSync(path, gz.subarray(0, gz.length - 10));
    await expect(readNifti(path)).rejects.toThrow(/trunc\.nii\.gz: cannot decompress/);
  });
  it('wrong magic', () => {
    const f = good();
    f.set([0x58, 0x59, 0x5a, 0], 344);
    expect(() => readNiftiBuffer(f, 'm.nii')).toThrow(/m\.nii: not a NIfTI/);
  });
  it('unsupported datatype', () => {
    const f = handNifti1({ datatype: 32, bitpix: 64, dim: [3, 1, 1, 1], pixdim: [1, 1, 1, 1] }, new Uint8Array(8));
    expect(() => readNiftiBuffer(f, 'c.nii')).toThrow(/c\.nii: unsupported NIfTI datatype complex64/);
  });
  it('4D where 3D is needed', () => {
    const f = handNifti1({ datatype: 2, bitpix: 8, dim: [4, 2, 2, 2, 3], pixdim: [1, 1, 1, 1, 1] }, new Uint8Array(24));
    expect(() => readNiftiBuffer(f, 'four.nii')).toThrow(/four\.nii: a 4D image \(dim 2x2x2x3\) where a 3D volume is needed/);
  });
  it('4D with a single volume is accepted', () => {
    const f = handNifti1({ datatype: 2, bitpix: 8, dim: [4, 2, 1, 1, 1], pixdim: [1, 1, 1, 1, 1] }, new Uint8Array([1, 2]));
    expect(Array.from(readNiftiBuffer(f).data)).toEqual([1, 2]);
  });
  it('missing file', async () => {
    await expect(readNifti(join(dir, 'nope.nii'))).rejects.toThrow(/nope\.nii: cannot read file/);
  });
});

// Real volumes from Debian packages (insighttoolkit5-examples, mricron-data), when installed:
// the two smallest .nii/.nii.gz files of each package.
function debianNiftiFiles(): string[] {
  const out: string[] = [];
  for (const pkg of ['mricron-data', 'insighttoolkit5-examples']) {
    try {
      const list = execFileSync('dpkg', ['-L', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const files = list.split('\n').filter((p) => /\.nii(\.gz)?$/.test(p) && existsSync(p));
      files.sort((a, b) => statSync(a).size - statSync(b).size);
      out.push(...files.slice(0, 2));
    } catch {
      // package (or dpkg) not present
    }
  }
  return out;
}
const realFiles = debianNiftiFiles();

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

describe.skipIf(realFiles.length === 0)('real volumes from Debian packages', () => {
  for (const path of realFiles) {
    it(`reads ${path}, agrees with nifti-reader-js, round-trips`, async () => {
      const vol = await readNifti(path);
      const n = vol.dims[0] * vol.dims[1] * vol.dims[2];
      expect(vol.data.length).toBe(n);
      expect(vol.spacing.every((s) => s > 0 && Number.isFinite(s))).toBe(true);
      // Independent decode with nifti-reader-js's own readImage.
      let bytes: ArrayBuffer = new Uint8Array(readFileSync(path)).buffer;
      if (niftiLib.isCompressed(bytes)) bytes = niftiLib.decompress(bytes) as ArrayBuffer;
      const h = niftiLib.readHeader(bytes)!;
      const img = niftiLib.readImage(h, bytes);
      const ctor = { 2: Uint8Array, 4: Int16Array, 8: Int32Array, 16: Float32Array, 64: Float64Array, 512: Uint16Array }[
        h.datatypeCode as 2
      ];
      if (ctor && h.littleEndian && !vol.scaled) expect(sameArray(vol.data, new ctor(img))).toBe(true);
      if (h.sform_code > 0 && h.sform_code >= h.qform_code) {
        for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(vol.affine[r][c]).toBeCloseTo(h.affine[r][c], 5);
      }
      const out = join(dir, 'real_rt.nii.gz');
      await writeNifti(out, vol);
      const back = await readNifti(out);
      expect(sameArray(back.data, vol.data)).toBe(true);
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(back.affine[r][c]).toBeCloseTo(vol.affine[r][c], 4);
      expect(back.orientation).toBe(vol.orientation);
    });
  }
});
