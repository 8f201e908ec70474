// Voxel <-> world geometry for NIfTI-style 4x4 affines.
//
// An affine maps continuous voxel coordinates (i, j, k) = (x, y, z) to world
// millimetres in the NIfTI RAS+ frame: world = A · [i, j, k, 1]. Voxel centres
// sit at integer coordinates, so the voxel box [x1, x2) spans continuous
// coordinates x1 .. x2 (this is how MONAI's AffineBox treats StandardMode
// boxes: the corner coordinates go through the affine unchanged).
import type { Affine } from './volume.js';

export type Vec3 = [number, number, number];

function checkAffine(a: Affine, who: string): void {
  if (!Array.isArray(a) || a.length < 3 || a.slice(0, 3).some((r) => !Array.isArray(r) || r.length < 4)) {
    throw new Error(`${who}: affine must be a 4x4 nested array (row-major), got ${JSON.stringify(a)}`);
  }
}

/** world = A · [p, 1] for one voxel-space point (x, y, z). */
export function voxelToWorld(affine: Affine, p: readonly number[]): Vec3 {
  checkAffine(affine, 'voxelToWorld');
  const a = affine;
  return [
    a[0][0] * p[0] + a[0][1] * p[1] + a[0][2] * p[2] + a[0][3],
    a[1][0] * p[0] + a[1][1] * p[1] + a[1][2] * p[2] + a[1][3],
    a[2][0] * p[0] + a[2][1] * p[1] + a[2][2] * p[2] + a[2][3],
  ];
}

/** Inverse of a 4x4 affine whose last row is [0, 0, 0, 1]; throws when the 3x3 part is singular. */
export function invertAffine(affine: Affine): Affine {
  checkAffine(affine, 'invertAffine');
  const m = affine;
  const a = m[0][0], b = m[0][1], c = m[0][2];
  const d = m[1][0], e = m[1][1], f = m[1][2];
  const g = m[2][0], h = m[2][1], i = m[2][2];
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) {
    throw new Error(`invertAffine: the affine's 3x3 part is singular (det ${det}); affine ${JSON.stringify(affine)}`);
  }
  const inv = [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
  const t = [m[0][3], m[1][3], m[2][3]];
  const out: Affine = inv.map((row) => [...row, -(row[0] * t[0] + row[1] * t[1] + row[2] * t[2])]);
  out.push([0, 0, 0, 1]);
  return out;
}

/** voxel = A⁻¹ · [p, 1] for one world point (continuous voxel coordinates, not rounded). */
export function worldToVoxel(affine: Affine, p: readonly number[]): Vec3 {
  return voxelToWorld(invertAffine(affine), p);
}

/** 4x4 product a · b. */
export function multiplyAffines(a: Affine, b: Affine): Affine {
  const out: Affine = [];
  for (let r = 0; r < 4; r++) {
    const row: number[] = [];
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += (a[r]?.[k] ?? (r === k ? 1 : 0)) * (b[k]?.[c] ?? (k === c ? 1 : 0));
      row.push(s);
    }
    out.push(row);
  }
  return out;
}

/**
 * Maps flat [x1,y1,z1,x2,y2,z2] boxes through a 4x4 affine. Each box's 8
 * corners are transformed and the result is the axis-aligned box enclosing
 * them: exact for permutations, flips and scalings; for a rotation (oblique
 * affine) it is the enclosing box of the rotated box, so it grows.
 */
export function transformBoxes(affine: Affine, boxes: ArrayLike<number>): Float32Array {
  checkAffine(affine, 'transformBoxes');
  if (boxes.length % 6 !== 0) throw new Error(`transformBoxes: boxes length ${boxes.length} is not a multiple of 6`);
  const n = boxes.length / 6;
  const out = new Float32Array(boxes.length);
  const a = affine;
  for (let b = 0; b < n; b++) {
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    for (let c = 0; c < 8; c++) {
      const x = boxes[b * 6 + (c & 1 ? 3 : 0)];
      const y = boxes[b * 6 + (c & 2 ? 4 : 1)];
      const z = boxes[b * 6 + (c & 4 ? 5 : 2)];
      for (let r = 0; r < 3; r++) {
        const w = a[r][0] * x + a[r][1] * y + a[r][2] * z + a[r][3];
        if (w < lo[r]) lo[r] = w;
        if (w > hi[r]) hi[r] = w;
      }
    }
    out.set([lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]], b * 6);
  }
  return out;
}

/** Voxel boxes → world boxes (mm): the axis-aligned world box of the 8 transformed corners. */
export function boxesVoxelToWorld(affine: Affine, boxes: ArrayLike<number>): Float32Array {
  return transformBoxes(affine, boxes);
}

/** World boxes (mm, xyzxyz) → voxel boxes: the axis-aligned voxel box of the 8 corners mapped through A⁻¹. */
export function boxesWorldToVoxel(affine: Affine, boxes: ArrayLike<number>): Float32Array {
  return transformBoxes(invertAffine(affine), boxes);
}

/** Voxel size along x, y, z: the lengths of the affine's first three columns. */
export function spacingFromAffine(affine: Affine): Vec3 {
  checkAffine(affine, 'spacingFromAffine');
  const s = (c: number) => Math.hypot(affine[0][c], affine[1][c], affine[2][c]);
  return [s(0), s(1), s(2)];
}

/**
 * For each voxel axis, the world axis it runs along most closely and its sign:
 * `[worldAxis, sign]` per voxel axis. Assignment is greedy by largest
 * |direction cosine| so that every world axis is used once even for oblique
 * affines (the same answer as nibabel's io_orientation for rotations < 45°).
 */
export function axisOrientation(affine: Affine): Array<[number, 1 | -1]> {
  checkAffine(affine, 'axisOrientation');
  const sp = spacingFromAffine(affine);
  if (sp.some((s) => !(s > 0))) throw new Error(`axisOrientation: affine has a zero-length axis (spacing ${sp.join(', ')})`);
  const cos = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c] / sp[c]));
  const out: Array<[number, 1 | -1]> = [[-1, 1], [-1, 1], [-1, 1]];
  const usedRow = [false, false, false];
  const usedCol = [false, false, false];
  for (let step = 0; step < 3; step++) {
    let best = -1, br = 0, bc = 0;
    for (let r = 0; r < 3; r++) {
      if (usedRow[r]) continue;
      for (let c = 0; c < 3; c++) {
        if (usedCol[c]) continue;
        if (Math.abs(cos[r][c]) > best) { best = Math.abs(cos[r][c]); br = r; bc = c; }
      }
    }
    usedRow[br] = usedCol[bc] = true;
    out[bc] = [br, cos[br][bc] < 0 ? -1 : 1];
  }
  return out;
}

/** Three-letter orientation code (where each voxel axis points): 'RAS', 'LPS', 'LAS', ... (nibabel's aff2axcodes). */
export function orientationCode(affine: Affine): string {
  const pos = ['R', 'A', 'S'];
  const neg = ['L', 'P', 'I'];
  return axisOrientation(affine).map(([w, s]) => (s > 0 ? pos[w] : neg[w])).join('');
}

/** Parses an orientation code into [worldAxis, sign] per voxel axis; throws on an invalid code. */
export function parseOrientationCode(code: string): Array<[number, 1 | -1]> {
  const letters: Record<string, [number, 1 | -1]> = {
    R: [0, 1], L: [0, -1], A: [1, 1], P: [1, -1], S: [2, 1], I: [2, -1],
  };
  const up = code.toUpperCase();
  const out = [...up].map((ch) => letters[ch]);
  if (up.length !== 3 || out.some((o) => !o) || new Set(out.map((o) => o[0])).size !== 3) {
    throw new Error(`invalid orientation code '${code}': expected three letters, one from each of R/L, A/P, S/I (e.g. 'RAS', 'LPS')`);
  }
  return out;
}
