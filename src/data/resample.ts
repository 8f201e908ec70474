// Spatial maps and resampling shared by pre-processing and augmentation.
//
// Spatial transforms are 4x4 maps on EDGE coordinates: voxel k covers the
// continuous interval [k, k + 1) along each axis, which is the coordinate
// system of StandardMode boxes ([x1, x2) with size x2 − x1). A map M sends a
// source point to a destination point: dst = M · src. Boxes go through M
// directly (transformBoxes); voxel data is pulled: destination voxel centre
// n + 0.5 comes from source centre M⁻¹(n + 0.5) − 0.5. This single convention
// keeps boxes and voxels consistent under flips (x → D − x), 90° rotations,
// crops, zooms and rotations.
import type { Affine, VoxelArray } from '../io/volume.js';
import { invertAffine, multiplyAffines } from '../io/affine.js';

export type Dims3 = [number, number, number];

export function identity4(): Affine {
  return [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
}

export function translation(t: readonly number[]): Affine {
  return [[1, 0, 0, t[0]], [0, 1, 0, t[1]], [0, 0, 1, t[2]], [0, 0, 0, 1]];
}

/** Scaling by s about the point c (edge coordinates). */
export function scalingAbout(s: readonly number[], c: readonly number[] = [0, 0, 0]): Affine {
  return [
    [s[0], 0, 0, c[0] * (1 - s[0])],
    [0, s[1], 0, c[1] * (1 - s[1])],
    [0, 0, s[2], c[2] * (1 - s[2])],
    [0, 0, 0, 1],
  ];
}

/** Flip of one axis within an extent of `size` voxels: x → size − x. */
export function flipAxis(axis: number, size: number): Affine {
  const m = identity4();
  m[axis][axis] = -1;
  m[axis][3] = size;
  return m;
}

/**
 * k quarter turns in the x–y plane of a region of size (sx, sy), turning the
 * x axis towards y (numpy's rot90 on axes (0, 1), as MONAI's RotateBox90 with
 * spatial_axes (0, 1)): one turn maps (x, y) → (sy − y, x); the region becomes
 * (sy, sx).
 */
export function rot90xy(k: number, sx: number, sy: number): Affine {
  let m = identity4();
  let w = sx, h = sy;
  for (let i = 0; i < ((k % 4) + 4) % 4; i++) {
    const turn: Affine = [[0, -1, 0, h], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
    m = multiplyAffines(turn, m);
    [w, h] = [h, w];
  }
  return m;
}

/** Rotation by angles (radians) about x, then y, then z, around the point c. */
export function rotationAbout(angles: readonly number[], c: readonly number[]): Affine {
  const [ax, ay, az] = angles;
  const rx: Affine = [[1, 0, 0, 0], [0, Math.cos(ax), -Math.sin(ax), 0], [0, Math.sin(ax), Math.cos(ax), 0], [0, 0, 0, 1]];
  const ry: Affine = [[Math.cos(ay), 0, Math.sin(ay), 0], [0, 1, 0, 0], [-Math.sin(ay), 0, Math.cos(ay), 0], [0, 0, 0, 1]];
  const rz: Affine = [[Math.cos(az), -Math.sin(az), 0, 0], [Math.sin(az), Math.cos(az), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  const r = multiplyAffines(rz, multiplyAffines(ry, rx));
  return multiplyAffines(translation(c), multiplyAffines(r, translation([-c[0], -c[1], -c[2]])));
}

/** Composes maps applied in order: compose(A, B, C) = C · B · A (A first). */
export function compose(...maps: Affine[]): Affine {
  let m = identity4();
  for (const a of maps) m = multiplyAffines(a, m);
  return m;
}

/** The same map expressed on voxel-centre (index) coordinates: T(−½) · M · T(+½). */
export function edgeToCenterMap(m: Affine): Affine {
  return multiplyAffines(translation([-0.5, -0.5, -0.5]), multiplyAffines(m, translation([0.5, 0.5, 0.5])));
}

/** The voxel-to-world affine of a volume obtained from one with affine `a` through the edge map `m`. */
export function affineAfterMap(a: Affine, m: Affine): Affine {
  return multiplyAffines(a, invertAffine(edgeToCenterMap(m)));
}

/** Point-wise intensity map applied to every source sample: clamp(v · scale + offset, lo, hi). */
export interface ValueMap {
  scale: number;
  offset: number;
  lo: number;
  hi: number;
}
export const IDENTITY_VALUE_MAP: ValueMap = { scale: 1, offset: 0, lo: -Infinity, hi: Infinity };

export interface ResampleOptions {
  /** 'linear' (trilinear, default) or 'nearest'. Signed-permutation maps with integer shifts are copied exactly either way. */
  mode?: 'linear' | 'nearest';
  /** Output value for samples outside the source (after the value map). Default 0. */
  pad?: number;
  valueMap?: ValueMap;
  /** Destination array to fill (length = product of outDims). */
  out?: Float32Array;
}

function isSignedPermutation(m: Affine): boolean {
  for (let r = 0; r < 3; r++) {
    let nz = 0;
    for (let c = 0; c < 3; c++) {
      const v = m[r][c];
      if (v === 1 || v === -1) nz++;
      else if (Math.abs(v) > 1e-9) return false;
    }
    if (nz !== 1 || Math.abs(m[r][3] - Math.round(m[r][3])) > 1e-6) return false;
  }
  return true;
}

function snap(m: Affine): Affine {
  return m.map((row) => row.map((v) => (Math.abs(v - Math.round(v)) < 1e-9 ? Math.round(v) : v)));
}

/**
 * Resamples `src` (dims (X, Y, Z), x fastest) through the edge map `m`
 * (dst = m · src) into a Float32Array of `outDims`.
 */
export function resample(
  src: ArrayLike<number>, srcDims: readonly number[], m: Affine, outDims: readonly number[], opts: ResampleOptions = {},
): Float32Array {
  const [X, Y, Z] = srcDims;
  const [OX, OY, OZ] = outDims;
  if (src.length !== X * Y * Z) throw new Error(`resample: source has ${src.length} voxels, dims ${srcDims.join('x')} need ${X * Y * Z}`);
  const out = opts.out ?? new Float32Array(OX * OY * OZ);
  if (out.length !== OX * OY * OZ) throw new Error(`resample: out has ${out.length} voxels, needs ${OX * OY * OZ}`);
  const pad = opts.pad ?? 0;
  const vm = opts.valueMap ?? IDENTITY_VALUE_MAP;
  const { scale, offset, lo, hi } = vm;
  const inv = snap(invertAffine(edgeToCenterMap(m))); // dst centre → src centre
  const XY = X * Y;

  if (isSignedPermutation(inv)) {
    // Exact gather: output x walks one source axis with a constant index step.
    const strideOf = [1, X, XY];
    const dimOf = [X, Y, Z];
    const axisOf = [0, 0, 0];
    const signOf = [0, 0, 0];
    for (let c = 0; c < 3; c++) {
      for (let r = 0; r < 3; r++) if (inv[r][c] !== 0) { axisOf[c] = r; signOf[c] = inv[r][c]; }
    }
    const base = [Math.round(inv[0][3]), Math.round(inv[1][3]), Math.round(inv[2][3])];
    // Valid output range along output axis c: source coordinate base[s] + sign·o in [0, dim[s]).
    const range = [0, 1, 2].map((c) => {
      const s = axisOf[c], b = base[s], sg = signOf[c], d = dimOf[s];
      const lo0 = sg > 0 ? -b : b - (d - 1);
      const hi0 = sg > 0 ? d - 1 - b : b;
      return [Math.max(0, lo0), Math.min(outDims[c] - 1, hi0)];
    });
    const step = signOf[0] * strideOf[axisOf[0]];
    for (let z = 0; z < OZ; z++) {
      for (let y = 0; y < OY; y++) {
        const row = OX * (y + OY * z);
        const inYZ = z >= range[2][0] && z <= range[2][1] && y >= range[1][0] && y <= range[1][1];
        if (!inYZ || range[0][0] > range[0][1]) {
          out.fill(pad, row, row + OX);
          continue;
        }
        const x0 = range[0][0], x1 = range[0][1];
        out.fill(pad, row, row + x0);
        out.fill(pad, row + x1 + 1, row + OX);
        const s = [base[0], base[1], base[2]];
        s[axisOf[0]] += signOf[0] * x0;
        s[axisOf[1]] += signOf[1] * y;
        s[axisOf[2]] += signOf[2] * z;
        gatherRow(src, s[0] + X * s[1] + XY * s[2], step, out, row + x0, x1 - x0 + 1, scale, offset, lo, hi);
      }
    }
    return out;
  }

  const nearest = opts.mode === 'nearest';
  for (let z = 0; z < OZ; z++) {
    for (let y = 0; y < OY; y++) {
      const row = OX * (y + OY * z);
      const sx = inv[0][1] * y + inv[0][2] * z + inv[0][3];
      const sy = inv[1][1] * y + inv[1][2] * z + inv[1][3];
      const sz = inv[2][1] * y + inv[2][2] * z + inv[2][3];
      if (nearest) nearestRow(src, X, Y, Z, sx, sy, sz, inv[0][0], inv[1][0], inv[2][0], out, row, OX, scale, offset, lo, hi, pad);
      else linearRow(src, X, Y, Z, sx, sy, sz, inv[0][0], inv[1][0], inv[2][0], out, row, OX, scale, offset, lo, hi, pad);
    }
  }
  return out;
}

// Row kernels: small monomorphic-friendly functions that V8 optimises well
// (one per typed-array kind seen), with the value map written inline.

function gatherRow(
  src: ArrayLike<number>, si: number, step: number, out: Float32Array, o: number, n: number,
  scale: number, offset: number, lo: number, hi: number,
): void {
  if (scale === 1 && offset === 0 && lo === -Infinity && hi === Infinity) {
    for (let k = 0; k < n; k++, si += step) out[o + k] = src[si];
    return;
  }
  for (let k = 0; k < n; k++, si += step) {
    let v = src[si] * scale + offset;
    v = v < lo ? lo : v > hi ? hi : v;
    out[o + k] = v;
  }
}

function nearestRow(
  src: ArrayLike<number>, X: number, Y: number, Z: number, sx: number, sy: number, sz: number,
  dx: number, dy: number, dz: number, out: Float32Array, o: number, n: number,
  scale: number, offset: number, lo: number, hi: number, pad: number,
): void {
  for (let k = 0; k < n; k++, sx += dx, sy += dy, sz += dz) {
    const ix = Math.floor(sx + 0.5), iy = Math.floor(sy + 0.5), iz = Math.floor(sz + 0.5);
    if (ix >= 0 && ix < X && iy >= 0 && iy < Y && iz >= 0 && iz < Z) {
      let v = src[ix + X * (iy + Y * iz)] * scale + offset;
      v = v < lo ? lo : v > hi ? hi : v;
      out[o + k] = v;
    } else {
      out[o + k] = pad;
    }
  }
}

function linearRow(
  src: ArrayLike<number>, X: number, Y: number, Z: number, sx: number, sy: number, sz: number,
  dx: number, dy: number, dz: number, out: Float32Array, o: number, n: number,
  scale: number, offset: number, lo: number, hi: number, pad: number,
): void {
  const XY = X * Y;
  for (let k = 0; k < n; k++, sx += dx, sy += dy, sz += dz) {
    const x0 = Math.floor(sx), y0 = Math.floor(sy), z0 = Math.floor(sz);
    const fx = sx - x0, fy = sy - y0, fz = sz - z0;
    if (x0 >= 0 && x0 + 1 < X && y0 >= 0 && y0 + 1 < Y && z0 >= 0 && z0 + 1 < Z) {
      const i = x0 + X * y0 + XY * z0;
      let a = src[i] * scale + offset; a = a < lo ? lo : a > hi ? hi : a;
      let b = src[i + 1] * scale + offset; b = b < lo ? lo : b > hi ? hi : b;
      let c = src[i + X] * scale + offset; c = c < lo ? lo : c > hi ? hi : c;
      let d = src[i + X + 1] * scale + offset; d = d < lo ? lo : d > hi ? hi : d;
      let e = src[i + XY] * scale + offset; e = e < lo ? lo : e > hi ? hi : e;
      let f = src[i + XY + 1] * scale + offset; f = f < lo ? lo : f > hi ? hi : f;
      let g = src[i + XY + X] * scale + offset; g = g < lo ? lo : g > hi ? hi : g;
      let h = src[i + XY + X + 1] * scale + offset; h = h < lo ? lo : h > hi ? hi : h;
      const ab = a + (b - a) * fx, cd = c + (d - c) * fx, ef = e + (f - e) * fx, gh = g + (h - g) * fx;
      const abcd = ab + (cd - ab) * fy, efgh = ef + (gh - ef) * fy;
      out[o + k] = abcd + (efgh - abcd) * fz;
      continue;
    }
    if (x0 < -1 || x0 >= X || y0 < -1 || y0 >= Y || z0 < -1 || z0 >= Z) {
      out[o + k] = pad;
      continue;
    }
    // Border: corners outside the source contribute the pad value; zero-weight corners are skipped.
    let acc = 0;
    for (let c = 0; c < 8; c++) {
      const cx = c & 1, cy = (c >> 1) & 1, cz = c >> 2;
      const w = (cx ? fx : 1 - fx) * (cy ? fy : 1 - fy) * (cz ? fz : 1 - fz);
      if (w === 0) continue;
      const ix = x0 + cx, iy = y0 + cy, iz = z0 + cz;
      let v = pad;
      if (ix >= 0 && ix < X && iy >= 0 && iy < Y && iz >= 0 && iz < Z) {
        v = src[ix + X * iy + XY * iz] * scale + offset;
        v = v < lo ? lo : v > hi ? hi : v;
      }
      acc += w * v;
    }
    out[o + k] = acc;
  }
}

/** Resamples into the same typed-array type as the source (rounding for integer types); used for masks and caches. */
export function resampleLike<T extends VoxelArray>(
  src: T, srcDims: readonly number[], m: Affine, outDims: readonly number[], opts: ResampleOptions = {},
): T {
  const f = resample(src, srcDims, m, outDims, opts);
  if (src instanceof Float32Array) return f as T;
  const Ctor = src.constructor as { new (n: number): T };
  const out = new Ctor(f.length);
  const isFloat = src instanceof Float64Array;
  for (let i = 0; i < f.length; i++) out[i] = isFloat ? f[i] : Math.round(f[i]);
  return out;
}
