// Synthetic CT-like volumes with ellipsoid lesions, for demos, tests and
// smoke-training without real data.
//
// Each case (int16, Hounsfield-like units) contains:
//   * air (≈ −1000 HU) around an elliptic body cylinder whose radius varies
//     slowly along z; a subcutaneous fat ring (≈ −90 HU);
//   * soft tissue (≈ 20–60 HU) modulated by smooth low-frequency noise fields;
//     a brighter "organ" region in the lower slices;
//   * a vertebra-like bright disc posterior to the centre (≈ 250/600 HU);
//   * two lung regions (≈ −850 HU with texture) in the upper ~70 % of the
//     slices, crossed by thin vessel-like tubes (≈ −50…40 HU: nodule-like
//     density but tubular, i.e. realistic false-positive bait, not labelled);
//   * lesions: ellipsoids with per-axis radii from a diameter range in mm,
//     placed in the lungs (solid nodules, absolute density) or in soft tissue
//     (hyperdense by a contrast range), with a one-voxel partial-volume edge;
//   * Gaussian noise.
// Geometry: plausible anisotropic spacing (x = y in-plane, thicker slices) and
// a DICOM/LPS-like affine (x and y axes flipped in RAS world, origin offset),
// or the identity when asked.
//
// The label mask is exactly the set of voxels inside the lesion ellipsoids
// (value 1), lesions never touch each other (dilated boxes are disjoint), so
// each lesion is one connected component and `boxes` are the tight voxel
// bounding boxes of those components: [x1, y1, z1, x2, y2, z2] covering
// [x1, x2) (MONAI StandardMode).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Affine, Volume } from '../io/volume.js';
import type { Triple } from '../tensor.js';
import { writeNifti } from '../io/nifti.js';

export interface SynthOptions {
  /** Volume size in voxels (x, y, z). Default [96, 96, 48]. */
  size?: Triple;
  /** Voxel spacing in mm (x, y, z). Default: random, x = y ∈ inPlaneSpacingMm, z ∈ sliceSpacingMm. */
  spacing?: Triple;
  /** In-plane spacing range in mm when `spacing` is not given. Default [2.0, 2.6]. */
  inPlaneSpacingMm?: [number, number];
  /** Slice spacing range in mm when `spacing` is not given. Default [3.0, 4.0]. */
  sliceSpacingMm?: [number, number];
  /** Lesions per non-empty case, inclusive range. Default [1, 3]. */
  lesionCount?: [number, number];
  /** Probability that a case has no lesion at all. Default 0.15. */
  emptyFraction?: number;
  /** Lesion diameter range in mm (each axis drawn around it, aspect 0.8–1.25). Default [12, 28]. */
  lesionDiameterMm?: [number, number];
  /** Soft-tissue lesions: HU above the surrounding tissue. Default [80, 200]. */
  lesionContrastHU?: [number, number];
  /** Lung lesions: absolute density in HU (lung is ≈ −850). Default [−80, 60]. */
  lungLesionHU?: [number, number];
  /** Fraction of lesions placed in the lungs (rest in soft tissue). Default 0.5. */
  lungLesionFraction?: number;
  /** Gaussian noise σ range in HU. Default [6, 18]. */
  noiseHU?: [number, number];
  /** Vessel-like tubes per lung. Default 4. */
  vesselsPerLung?: number;
  /** 'lps' (x, y flipped, origin offset; default), 'ras' (diagonal, origin offset) or 'identity' (spacing only). */
  orientation?: 'lps' | 'ras' | 'identity';
}

export interface SynthLesion {
  /** Centre in voxel coordinates (x, y, z). */
  center: Triple;
  /** Ellipsoid semi-axes in voxels (x, y, z). */
  radii: Triple;
  site: 'lung' | 'tissue';
  /** Lesion core density in HU (before noise). */
  hu: number;
  /** Mask voxel count. */
  voxels: number;
}

export interface SynthCase {
  /** int16 HU volume. */
  image: Volume;
  /** uint8 mask, lesion voxels = 1. */
  label: Volume;
  /** Tight voxel boxes of the lesions, 6 per lesion, [x1,y1,z1,x2,y2,z2), same order as `lesions`. */
  boxes: Float32Array;
  /** Class per box (all 0: "lesion"). */
  labels: Int32Array;
  lesions: SynthLesion[];
  spacing: Triple;
}

// --- random numbers -----------------------------------------------------------

/** Small seeded generator (mulberry32) with uniform/normal helpers. */
export class SynthRng {
  private s: number;
  private spare: number | null = null;
  constructor(seed: number) {
    // splitmix-style scrambling so that nearby seeds give unrelated streams
    let z = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    this.s = (z ^ (z >>> 16)) >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(a: number, b: number): number {
    return a + (b - a) * this.next();
  }
  int(a: number, b: number): number {
    return a + Math.floor(this.next() * (b - a + 1));
  }
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const th = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
}

// --- smooth noise ---------------------------------------------------------------

/**
 * Smooth random field in [-1, 1]: values on a coarse lattice (cells of about
 * `cell` voxels) trilinearly interpolated, returned as a function of voxel
 * index with precomputed per-axis weights (fast inner loops).
 */
function smoothField(rng: SynthRng, dims: Triple, cell: number) {
  const g = dims.map((d) => Math.max(2, Math.ceil(d / cell) + 1)) as Triple;
  const lat = new Float32Array(g[0] * g[1] * g[2]);
  for (let i = 0; i < lat.length; i++) lat[i] = rng.uniform(-1, 1);
  const axis = (d: number, n: number) => {
    const i0 = new Int32Array(d);
    const w = new Float32Array(d);
    for (let k = 0; k < d; k++) {
      const p = (k / Math.max(1, d - 1)) * (n - 1);
      const i = Math.min(n - 2, Math.floor(p));
      i0[k] = i;
      w[k] = p - i;
    }
    return { i0, w };
  };
  const [ax, ay, az] = [axis(dims[0], g[0]), axis(dims[1], g[1]), axis(dims[2], g[2])];
  return (x: number, y: number, z: number): number => {
    const i = ax.i0[x], j = ay.i0[y], k = az.i0[z];
    const fx = ax.w[x], fy = ay.w[y], fz = az.w[z];
    const o = i + g[0] * (j + g[1] * k);
    const sx = 1, sy = g[0], sz = g[0] * g[1];
    const c00 = lat[o] * (1 - fx) + lat[o + sx] * fx;
    const c10 = lat[o + sy] * (1 - fx) + lat[o + sy + sx] * fx;
    const c01 = lat[o + sz] * (1 - fx) + lat[o + sz + sx] * fx;
    const c11 = lat[o + sz + sy] * (1 - fx) + lat[o + sz + sy + sx] * fx;
    return (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz;
  };
}

// --- case generation ------------------------------------------------------------

/** Smallest lesion (mask voxels) generated; the training default min_size is 10. */
export const MIN_LESION_VOXELS = 12;

function checkRange(name: string, r: readonly number[] | undefined, lo = -Infinity): void {
  if (r === undefined) return;
  if (!Array.isArray(r) || r.length !== 2 || !(r[0] <= r[1]) || !(r[0] >= lo)) {
    throw new Error(`synth: ${name} must be [min, max] with ${lo === -Infinity ? '' : `${lo} ≤ `}min ≤ max; got ${JSON.stringify(r)}`);
  }
}

function makeAffine(orientation: SynthOptions['orientation'], spacing: Triple, dims: Triple, rng: SynthRng): Affine {
  const [sx, sy, sz] = spacing;
  if (orientation === 'identity') return [[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]];
  // Origin so that the volume is roughly centred in world space, plus a table/scanner offset.
  const off = [rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(-400, -100)];
  if (orientation === 'ras') {
    return [[sx, 0, 0, -sx * dims[0] / 2 + off[0]], [0, sy, 0, -sy * dims[1] / 2 + off[1]], [0, 0, sz, off[2]], [0, 0, 0, 1]];
  }
  // DICOM (LPS) converted to NIfTI RAS: i runs to patient left = −x_RAS, j to posterior = −y_RAS.
  return [[-sx, 0, 0, sx * dims[0] / 2 + off[0]], [0, -sy, 0, sy * dims[1] / 2 + off[1]], [0, 0, sz, off[2]], [0, 0, 0, 1]];
}

/**
 * Generates one case from a seed (or a SynthRng to continue a stream).
 * Deterministic: the same seed and options give the same case.
 */
export function generateCase(seedOrRng: number | SynthRng, opts: SynthOptions = {}): SynthCase {
  const rng = typeof seedOrRng === 'number' ? new SynthRng(seedOrRng) : seedOrRng;
  const dims = (opts.size ?? [96, 96, 48]).slice() as Triple;
  if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 16)) {
    throw new Error(`synth: size must be three integers ≥ 16 (x, y, z); got ${JSON.stringify(opts.size)}`);
  }
  for (const [n, r, lo] of [
    ['inPlaneSpacingMm', opts.inPlaneSpacingMm, 1e-3], ['sliceSpacingMm', opts.sliceSpacingMm, 1e-3], ['lesionCount', opts.lesionCount, 0],
    ['lesionDiameterMm', opts.lesionDiameterMm, 1e-3], ['lesionContrastHU', opts.lesionContrastHU, -Infinity],
    ['lungLesionHU', opts.lungLesionHU, -Infinity], ['noiseHU', opts.noiseHU, 0],
  ] as const) checkRange(n, r as number[] | undefined, lo);
  const inPlane = opts.inPlaneSpacingMm ?? [2.0, 2.6];
  const slice = opts.sliceSpacingMm ?? [3.0, 4.0];
  const s0 = rng.uniform(inPlane[0], inPlane[1]);
  const spacing: Triple = opts.spacing ? (opts.spacing.slice() as Triple) : [s0, s0, rng.uniform(slice[0], slice[1])];
  if (spacing.some((s) => !(s > 0))) throw new Error(`synth: spacing must be positive; got ${JSON.stringify(opts.spacing)}`);
  const affine = makeAffine(opts.orientation ?? 'lps', spacing, dims, rng);
  const [X, Y, Z] = dims;
  const N = X * Y * Z;
  const hu = new Float32Array(N);
  const tissue = new Uint8Array(N); // 0 air, 1 soft tissue, 2 lung, 3 fat, 4 bone

  // Body ellipse (voxel units), radius modulated along z.
  const cx = X / 2 + rng.uniform(-0.03, 0.03) * X;
  const cy = Y / 2 + rng.uniform(-0.03, 0.03) * Y;
  const ax = X * rng.uniform(0.4, 0.46);
  const ay = Y * rng.uniform(0.3, 0.38);
  const fat = rng.uniform(0.05, 0.09);
  const lungTop = Math.floor(Z * rng.uniform(0.2, 0.35)); // lungs occupy z ≥ lungTop
  const lungs = [-1, 1].map((side) => ({
    cx: cx + side * ax * rng.uniform(0.42, 0.5),
    cy: cy - ay * rng.uniform(0.02, 0.12),
    rx: ax * rng.uniform(0.3, 0.36),
    ry: ay * rng.uniform(0.55, 0.65),
  }));
  const spine = { cx: cx + rng.uniform(-0.03, 0.03) * X, cy: cy + ay * rng.uniform(0.62, 0.72), r: ay * rng.uniform(0.14, 0.18) };
  const organ = { cx: cx - ax * rng.uniform(0.1, 0.3), cy: cy - ay * 0.1, rx: ax * 0.45, ry: ay * 0.5, top: Math.floor(lungTop * 1.2) + 2 };
  const fieldA = smoothField(rng, dims, 12);
  const fieldB = smoothField(rng, dims, 5);
  const tissueBase = rng.uniform(25, 45);
  const lungBase = rng.uniform(-880, -820);

  for (let z = 0; z < Z; z++) {
    const zt = z / Math.max(1, Z - 1);
    const scale = 1 - 0.1 * (zt - 0.5) * (zt - 0.5) * 4;
    const lungScale = z < lungTop ? 0 : Math.sqrt(Math.max(0, 1 - ((z - lungTop) / Math.max(1, Z - lungTop) - 0.55) ** 2 / 0.55 ** 2));
    for (let y = 0; y < Y; y++) {
      for (let x = 0; x < X; x++) {
        const i = x + X * (y + Y * z);
        const ex = (x - cx) / (ax * scale);
        const ey = (y - cy) / (ay * scale);
        const r2 = ex * ex + ey * ey;
        if (r2 > 1) {
          hu[i] = -1000 + 8 * fieldB(x, y, z);
          continue;
        }
        const a = fieldA(x, y, z);
        const b = fieldB(x, y, z);
        let v: number;
        let t = 1;
        if (r2 > (1 - fat) * (1 - fat)) {
          v = -90 + 15 * a;
          t = 3;
        } else {
          v = tissueBase + 15 * a + 6 * b;
          const dsx = x - spine.cx, dsy = y - spine.cy;
          const ds = Math.sqrt(dsx * dsx + dsy * dsy) / spine.r;
          if (ds <= 1) {
            v = ds > 0.75 ? 650 + 60 * b : 260 + 40 * a;
            t = 4;
          } else if (z < organ.top && ((x - organ.cx) / organ.rx) ** 2 + ((y - organ.cy) / organ.ry) ** 2 <= 1) {
            v += 25; // liver-like brighter organ
          } else if (lungScale > 0) {
            for (const l of lungs) {
              const lx = (x - l.cx) / (l.rx * lungScale), ly = (y - l.cy) / (l.ry * lungScale);
              if (lx * lx + ly * ly <= 1) {
                v = lungBase + 35 * a + 20 * b;
                t = 2;
                break;
              }
            }
          }
        }
        hu[i] = v;
        tissue[i] = t;
      }
    }
  }

  // Vessel-like tubes inside the lungs (not labelled).
  const nVessels = opts.vesselsPerLung ?? 4;
  const inLung = (p: number[]) => {
    const [x, y, z] = p.map(Math.round);
    return x >= 0 && y >= 0 && z >= 0 && x < X && y < Y && z < Z && tissue[x + X * (y + Y * z)] === 2;
  };
  for (let v = 0; v < nVessels * 2; v++) {
    let p = [rng.uniform(0, X), rng.uniform(0, Y), rng.uniform(lungTop, Z)];
    for (let tries = 0; tries < 20 && !inLung(p); tries++) p = [rng.uniform(0, X), rng.uniform(0, Y), rng.uniform(lungTop, Z)];
    if (!inLung(p)) continue;
    const dir = [rng.normal(), rng.normal(), rng.normal() * 0.5];
    const dn = Math.hypot(dir[0], dir[1], dir[2]) || 1;
    const radius = rng.uniform(0.6, 1.1);
    const density = rng.uniform(-60, 30);
    for (let s = 0; s < 40 && inLung(p); s++) {
      const [px, py, pz] = p;
      for (let z = Math.floor(pz - radius - 1); z <= Math.ceil(pz + radius + 1); z++)
        for (let y = Math.floor(py - radius - 1); y <= Math.ceil(py + radius + 1); y++)
          for (let x = Math.floor(px - radius - 1); x <= Math.ceil(px + radius + 1); x++) {
            if (x < 0 || y < 0 || z < 0 || x >= X || y >= Y || z >= Z) continue;
            const i = x + X * (y + Y * z);
            if (tissue[i] !== 2) continue;
            const d = Math.hypot(x - px, y - py, (z - pz) * (spacing[2] / spacing[0]));
            const w = Math.min(1, Math.max(0, radius + 0.5 - d));
            if (w > 0) hu[i] = Math.max(hu[i], hu[i] * (1 - w) + density * w);
          }
      p = [px + (0.7 * dir[0]) / dn, py + (0.7 * dir[1]) / dn, pz + (0.7 * dir[2]) / dn / (spacing[2] / spacing[0])];
    }
  }

  // Lesions.
  const mask = new Uint8Array(N);
  const lesions: SynthLesion[] = [];
  const boxes: number[] = [];
  const countRange = opts.lesionCount ?? [1, 3];
  const nLesions = rng.next() < (opts.emptyFraction ?? 0.15) ? 0 : rng.int(countRange[0], countRange[1]);
  const diam = opts.lesionDiameterMm ?? [12, 28];
  const contrast = opts.lesionContrastHU ?? [80, 200];
  const lungHU = opts.lungLesionHU ?? [-80, 60];
  const lungFrac = opts.lungLesionFraction ?? 0.5;
  const taken: number[][] = []; // dilated boxes of placed lesions
  for (let n = 0; n < nLesions; n++) {
    // The site is drawn once per lesion (lungs are smaller than soft tissue, so drawing it per
    // attempt would bias towards tissue); after 40 failed attempts the other site is tried.
    const firstSite = rng.next() < lungFrac ? 2 : 1;
    for (let attempt = 0; attempt < 80; attempt++) {
      const d = rng.uniform(diam[0], diam[1]);
      const radii = [0, 1, 2].map((k) => Math.max(1.2, (d / 2 / spacing[k]) * rng.uniform(0.8, 1.25))) as Triple;
      const c: Triple = [0, 1, 2].map((k) => rng.uniform(radii[k] + 2, dims[k] - radii[k] - 3)) as Triple;
      const want = attempt < 40 ? firstSite : 3 - firstSite;
      // The centre and the six axis extremes must lie in the wanted tissue, so the lesion sits inside it.
      const probes = [c, ...[0, 1, 2].flatMap((k) => [-1, 1].map((s) => c.map((v, j) => (j === k ? v + s * radii[k] * 0.9 : v))))];
      if (!probes.every((p) => {
        const [x, y, z] = p.map(Math.round);
        return x >= 0 && y >= 0 && z >= 0 && x < X && y < Y && z < Z && tissue[x + X * (y + Y * z)] === want;
      })) continue;
      const lo = c.map((v, k) => Math.max(0, Math.floor(v - radii[k]) - 1));
      const hi = c.map((v, k) => Math.min(dims[k] - 1, Math.ceil(v + radii[k]) + 1));
      if (taken.some((t) => lo.every((l, k) => l - 2 <= t[k + 3]) && hi.every((h, k) => h + 2 >= t[k]))) continue;
      // Count the mask voxels first: lesions below MIN_LESION_VOXELS (after voxelisation of a thin
      // ellipsoid) would be dropped by min-size filters downstream, so they are redrawn instead.
      let pre = 0;
      for (let z = lo[2]; z <= hi[2]; z++)
        for (let y = lo[1]; y <= hi[1]; y++)
          for (let x = lo[0]; x <= hi[0]; x++) {
            if (((x - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((z - c[2]) / radii[2]) ** 2 <= 1) pre++;
          }
      if (pre < MIN_LESION_VOXELS) continue;
      const core = want === 2 ? rng.uniform(lungHU[0], lungHU[1]) : 0;
      const plus = want === 1 ? rng.uniform(contrast[0], contrast[1]) : 0;
      const rmin = Math.min(...radii);
      let count = 0;
      const bb = [Infinity, Infinity, Infinity, -Infinity, -Infinity, -Infinity];
      for (let z = lo[2]; z <= hi[2]; z++)
        for (let y = lo[1]; y <= hi[1]; y++)
          for (let x = lo[0]; x <= hi[0]; x++) {
            const q = ((x - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((z - c[2]) / radii[2]) ** 2;
            // partial-volume edge about one voxel wide around the surface (w = 0.5 on it)
            const w = Math.min(1, Math.max(0, (1 - Math.sqrt(q)) * rmin + 0.5));
            if (w <= 0) continue;
            const i = x + X * (y + Y * z);
            const target = want === 2 ? core : hu[i] + plus;
            hu[i] = hu[i] * (1 - w) + target * w;
            if (q <= 1) {
              mask[i] = 1;
              count++;
              bb[0] = Math.min(bb[0], x); bb[1] = Math.min(bb[1], y); bb[2] = Math.min(bb[2], z);
              bb[3] = Math.max(bb[3], x); bb[4] = Math.max(bb[4], y); bb[5] = Math.max(bb[5], z);
            }
          }
      taken.push([...lo, ...hi]);
      boxes.push(bb[0], bb[1], bb[2], bb[3] + 1, bb[4] + 1, bb[5] + 1);
      lesions.push({ center: c, radii, site: want === 2 ? 'lung' : 'tissue', hu: want === 2 ? core : tissueBase + plus, voxels: count });
      break;
    }
  }

  // Noise and quantisation to int16 HU (CT range −1024 … 3071).
  const sigma = rng.uniform(...(opts.noiseHU ?? [6, 18]));
  const img = new Int16Array(N);
  for (let i = 0; i < N; i++) {
    const v = Math.round(hu[i] + sigma * rng.normal());
    img[i] = v < -1024 ? -1024 : v > 3071 ? 3071 : v;
  }
  const copyAffine = () => affine.map((r) => r.slice());
  return {
    image: { data: img, dims: [X, Y, Z], affine: copyAffine() },
    label: { data: mask, dims: [X, Y, Z], affine: copyAffine() },
    boxes: new Float32Array(boxes),
    labels: new Int32Array(lesions.length),
    lesions,
    spacing,
  };
}

// --- data set on disk ---------------------------------------------------------------

export interface SynthDatasetOptions extends SynthOptions {
  /** Number of cases. */
  cases: number;
  /** Base seed; case i uses a seed derived from (seed, i), independent of `cases`. Default 0. */
  seed?: number;
}

export interface SynthDatasetResult {
  images: string[];
  labels: string[];
  /** Path of synth.json (options, spacing, voxel boxes of every case). */
  manifest: string;
}

/** Seed of case `index` for base seed `seed`. */
export function caseSeed(seed: number, index: number): number {
  return (Math.imul((seed >>> 0) ^ 0x5bd1e995, 0x27d4eb2d) + Math.imul(index + 1, 0x165667b1)) >>> 0;
}

/**
 * Writes `images/case_000.nii.gz` (int16) and `labels/case_000.nii.gz`
 * (uint8) for every case, plus `synth.json` with the generation options and
 * the voxel boxes of each case.
 */
export async function writeSynthDataset(outDir: string, options: SynthDatasetOptions): Promise<SynthDatasetResult> {
  const { cases, seed = 0, ...gen } = options;
  if (!Number.isInteger(cases) || cases < 1) throw new Error(`writeSynthDataset: cases must be a positive integer, got ${cases}`);
  const imgDir = path.join(outDir, 'images');
  const lblDir = path.join(outDir, 'labels');
  fs.mkdirSync(imgDir, { recursive: true });
  fs.mkdirSync(lblDir, { recursive: true });
  const width = Math.max(3, String(cases - 1).length);
  const result: SynthDatasetResult = { images: [], labels: [], manifest: path.join(outDir, 'synth.json') };
  const manifest: Record<string, unknown>[] = [];
  for (let i = 0; i < cases; i++) {
    const c = generateCase(caseSeed(seed, i), gen);
    const name = `case_${String(i).padStart(width, '0')}.nii.gz`;
    const ip = path.join(imgDir, name);
    const lp = path.join(lblDir, name);
    await writeNifti(ip, c.image, { datatype: 'int16' });
    await writeNifti(lp, c.label, { datatype: 'uint8' });
    result.images.push(ip);
    result.labels.push(lp);
    manifest.push({ name, spacing: c.spacing, boxes_voxel: Array.from(c.boxes), lesions: c.lesions.map((l) => ({ site: l.site, hu: Math.round(l.hu), voxels: l.voxels })) });
  }
  fs.writeFileSync(result.manifest, JSON.stringify({ generator: 'detseg3d synth', seed, options: gen, cases: manifest }, null, 1) + '\n');
  return result;
}
