// Pictures of detections for a quick visual check (nnDetection-style):
// - one PNG per detection above a score threshold: axial, coronal and
//   sagittal slices through the box centre, side by side, the detection's box
//   outlined (and ground-truth boxes crossing the slice in another colour);
// - one overview PNG per volume: maximum-intensity projection along z with
//   every detection above the threshold (and the ground truth).
// Panels are drawn in voxel-index orientation: the first panel axis runs left
// to right, the second bottom to top (axial: x right, y up; coronal: x right,
// z up; sagittal: y right, z up), so a RAS-oriented volume appears with
// anterior and superior up and the patient's right on the right
// (neurological convention). Pixels are square in mm: each panel axis is
// scaled by its voxel spacing (column norms of the affine).
// Box outlines use the index sense of [x1, x2): voxel i occupies [i, i + 1)
// along its axis, so the box [2, 5) encloses exactly voxels 2, 3 and 4.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Volume } from '../io/volume.js';
import { COLORS, blit, createImage, drawRect, drawText, encodePng, textWidth, type Rgba, type RgbaImage } from './draw.js';
import { checkBoxes, checkDetections, spacingFromAffine, type Detections } from './export.js';

export interface PictureOptions {
  /** Window width; 'auto' = 0.5..99.5 percentile range (MRI). Default 1500 (CT lung window). */
  window?: number | 'auto';
  /** Window level (centre), default -600 (CT lung window); ignored with window 'auto'. */
  level?: number;
  /** Only detections with score >= this get pictures / appear in the overview (default 0.5). */
  scoreThreshold?: number;
  /** At most this many per-detection pictures, most confident first (default 20). */
  maxPictures?: number;
  /** Output pixels per mm; default 1 / (smallest voxel spacing), i.e. one pixel per finest voxel. */
  pixelsPerMm?: number;
  /** Ground-truth boxes in voxels, drawn in groundTruthColor. */
  groundTruth?: Float32Array | Float64Array;
  detectionColor?: Rgba;
  groundTruthColor?: Rgba;
  /** Draw "#rank score" / rank numbers with the bitmap font (default true). */
  labels?: boolean;
  /** Outline thickness in pixels (default 1). */
  thickness?: number;
}

export interface DetectionPicture {
  /** 1 = most confident. */
  rank: number;
  /** Index of the detection in the input arrays. */
  index: number;
  score: number;
  image: RgbaImage;
}

const GAP = 4;
const HEADER = 11;

interface Geometry {
  dims: [number, number, number];
  /** Pixels per voxel along x, y, z. */
  ppv: [number, number, number];
}

interface Windowing {
  lo: number;
  width: number;
}

function resolveWindow(vol: Volume, opts: PictureOptions): Windowing {
  const w = opts.window ?? 1500;
  if (w === 'auto') {
    const n = vol.data.length;
    const step = Math.max(1, Math.floor(n / 200_000));
    const sample: number[] = [];
    for (let i = 0; i < n; i += step) sample.push(vol.data[i]);
    sample.sort((a, b) => a - b);
    const lo = sample[Math.floor(0.005 * (sample.length - 1))];
    const hi = sample[Math.ceil(0.995 * (sample.length - 1))];
    return { lo, width: Math.max(hi - lo, 1e-6) };
  }
  if (!(Number.isFinite(w) && w > 0)) throw new Error(`pictures: window must be a positive number or 'auto', got ${w}`);
  const level = opts.level ?? -600;
  if (!Number.isFinite(level)) throw new Error(`pictures: level must be finite, got ${level}`);
  return { lo: level - w / 2, width: w };
}

function gray(v: number, win: Windowing): number {
  const g = ((v - win.lo) / win.width) * 255;
  return g <= 0 ? 0 : g >= 255 ? 255 : Math.round(g);
}

function geometry(vol: Volume, opts: PictureOptions): Geometry {
  const dims = vol.dims;
  if (!dims.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`pictures: volume dims must be positive integers, got ${dims.join('x')}`);
  if (vol.data.length !== dims[0] * dims[1] * dims[2]) {
    throw new Error(`pictures: volume has ${vol.data.length} voxels but dims ${dims.join('x')} need ${dims[0] * dims[1] * dims[2]}`);
  }
  const sp = spacingFromAffine(vol.affine);
  const ppm = opts.pixelsPerMm ?? 1 / Math.min(...sp);
  if (!(Number.isFinite(ppm) && ppm > 0)) throw new Error(`pictures: pixelsPerMm must be positive, got ${ppm}`);
  const ppv = sp.map((s) => s * ppm) as [number, number, number];
  const px = ppv.map((p, a) => Math.round(p * dims[a]));
  if (px.some((p) => p > 8192)) throw new Error(`pictures: a panel would be ${Math.max(...px)} pixels wide; lower pixelsPerMm`);
  return { dims: [dims[0], dims[1], dims[2]], ppv };
}

/**
 * One panel: horizontal voxel axis `a`, vertical axis `b` (pointing up),
 * `sample(ia, ib)` gives the voxel value shown at voxel indices (ia, ib).
 */
function renderPanel(g: Geometry, a: number, b: number, sample: (ia: number, ib: number) => number, win: Windowing): RgbaImage {
  const W = Math.max(1, Math.round(g.ppv[a] * g.dims[a]));
  const H = Math.max(1, Math.round(g.ppv[b] * g.dims[b]));
  const img = createImage(W, H);
  const colIdx = new Int32Array(W);
  for (let u = 0; u < W; u++) colIdx[u] = Math.min(g.dims[a] - 1, Math.floor((u + 0.5) / g.ppv[a]));
  for (let v = 0; v < H; v++) {
    const ib = Math.min(g.dims[b] - 1, Math.floor((H - 1 - v + 0.5) / g.ppv[b]));
    for (let u = 0; u < W; u++) {
      const c = gray(sample(colIdx[u], ib), win);
      const o = (v * W + u) * 4;
      img.data[o] = c;
      img.data[o + 1] = c;
      img.data[o + 2] = c;
    }
  }
  return img;
}

/** Outlines box i of `boxes` on a panel with axes (a, b); returns the outline's top-left pixel. */
function outlineBox(img: RgbaImage, g: Geometry, a: number, b: number, boxes: ArrayLike<number>, i: number, c: Rgba, thickness: number): [number, number] {
  const u0 = Math.round(boxes[6 * i + a] * g.ppv[a]);
  const u1 = Math.round(boxes[6 * i + 3 + a] * g.ppv[a]) - 1;
  const H = img.height;
  const v0 = H - Math.round(boxes[6 * i + 3 + b] * g.ppv[b]);
  const v1 = H - Math.round(boxes[6 * i + b] * g.ppv[b]) - 1;
  drawRect(img, u0, v0, Math.max(u0, u1), Math.max(v0, v1), c, thickness);
  return [u0, v0];
}

/** True when the slab [k, k + 1) along axis c intersects box i. */
function crossesSlice(boxes: ArrayLike<number>, i: number, c: number, k: number): boolean {
  return boxes[6 * i + c] < k + 1 && boxes[6 * i + 3 + c] > k;
}

function selectDetections(dets: Detections, thr: number): number[] {
  const n = checkDetections(dets);
  return Array.from({ length: n }, (_, i) => i)
    .filter((i) => dets.scores[i] >= thr)
    .sort((p, q) => dets.scores[q] - dets.scores[p] || p - q);
}

function scoreText(s: number): string {
  return s.toFixed(3);
}

/** Per-detection pictures (axial | coronal | sagittal through the box centre), most confident first. */
export function detectionPictures(vol: Volume, dets: Detections, opts: PictureOptions = {}): DetectionPicture[] {
  const g = geometry(vol, opts);
  const win = resolveWindow(vol, opts);
  const gt = opts.groundTruth;
  const nGt = gt ? checkBoxes(gt, 'groundTruth') : 0;
  const thickness = opts.thickness ?? 1;
  const detColor = opts.detectionColor ?? COLORS.red;
  const gtColor = opts.groundTruthColor ?? COLORS.green;
  const labels = opts.labels ?? true;
  const maxPictures = opts.maxPictures ?? 20;
  const order = selectDetections(dets, opts.scoreThreshold ?? 0.5).slice(0, maxPictures);
  const [X, Y] = g.dims;
  const d = vol.data;
  const out: DetectionPicture[] = [];
  order.forEach((i, r) => {
    const b = dets.boxes;
    const centre = [0, 1, 2].map((a) => Math.min(g.dims[a] - 1, Math.max(0, Math.floor((b[6 * i + a] + b[6 * i + 3 + a]) / 2))));
    const [cx, cy, cz] = centre;
    // (horizontal axis, vertical axis, fixed axis, sampler)
    const views: [number, number, number, (p: number, q: number) => number][] = [
      [0, 1, 2, (x, y) => d[x + X * (y + Y * cz)]],
      [0, 2, 1, (x, z) => d[x + X * (cy + Y * z)]],
      [1, 2, 0, (y, z) => d[cx + X * (y + Y * z)]],
    ];
    const panels = views.map(([a, bb, c, sample]) => {
      const p = renderPanel(g, a, bb, sample, win);
      for (let j = 0; j < nGt; j++) if (crossesSlice(gt!, j, c, centre[c])) outlineBox(p, g, a, bb, gt!, j, gtColor, thickness);
      outlineBox(p, g, a, bb, b, i, detColor, thickness);
      return p;
    });
    const header = labels ? HEADER : 0;
    const W = panels.reduce((s, p) => s + p.width, 0) + GAP * (panels.length - 1);
    const H = Math.max(...panels.map((p) => p.height)) + header;
    const img = createImage(W, H);
    let x = 0;
    for (const p of panels) {
      blit(img, p, x, header);
      x += p.width + GAP;
    }
    if (labels) {
      const text = `#${r + 1} ${scoreText(dets.scores[i])}`;
      if (textWidth(text) <= W) drawText(img, text, 1, 2, detColor);
    }
    out.push({ rank: r + 1, index: i, score: dets.scores[i], image: img });
  });
  return out;
}

/** Maximum-intensity projection along z with every detection above the threshold and the ground truth. */
export function overviewPicture(vol: Volume, dets: Detections, opts: PictureOptions = {}): RgbaImage {
  const g = geometry(vol, opts);
  const win = resolveWindow(vol, opts);
  const [X, Y, Z] = g.dims;
  const mip = new Float64Array(X * Y).fill(-Infinity);
  const d = vol.data;
  for (let z = 0; z < Z; z++) {
    const base = X * Y * z;
    for (let k = 0; k < X * Y; k++) {
      const v = d[base + k];
      if (v > mip[k]) mip[k] = v;
    }
  }
  const img = renderPanel(g, 0, 1, (x, y) => mip[x + X * y], win);
  const thickness = opts.thickness ?? 1;
  const gt = opts.groundTruth;
  if (gt) {
    const n = checkBoxes(gt, 'groundTruth');
    for (let j = 0; j < n; j++) outlineBox(img, g, 0, 1, gt, j, opts.groundTruthColor ?? COLORS.green, thickness);
  }
  const detColor = opts.detectionColor ?? COLORS.red;
  const order = selectDetections(dets, opts.scoreThreshold ?? 0.5);
  // Least confident first so the most confident outline ends on top.
  for (let r = order.length - 1; r >= 0; r--) {
    const [u, v] = outlineBox(img, g, 0, 1, dets.boxes, order[r], detColor, thickness);
    if (opts.labels ?? true) drawText(img, String(r + 1), u + 2, v + 2, detColor);
  }
  return img;
}

/**
 * Writes `<base>_det<rank>.png` for each picture and `<base>_overview.png`
 * into `dir` (created if needed); returns the written paths.
 */
export function writeDetectionPictures(vol: Volume, dets: Detections, dir: string, base: string, opts: PictureOptions = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const p of detectionPictures(vol, dets, opts)) {
    const path = join(dir, `${base}_det${p.rank}.png`);
    writeFileSync(path, encodePng(p.image));
    paths.push(path);
  }
  const ov = join(dir, `${base}_overview.png`);
  writeFileSync(ov, encodePng(overviewPicture(vol, dets, opts)));
  paths.push(ov);
  return paths;
}
