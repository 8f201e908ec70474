// Export of detections: voxel boxes -> world boxes, the MONAI-style results
// JSON, the LUNA16 submission CSV, and readers for both.
//
// Coordinates. Voxel coordinates are continuous, with integer values at voxel
// centres (NIfTI / MONAI convention), and a box [x1, y1, z1, x2, y2, z2)
// (MONAI StandardMode) is mapped through the volume's voxel-to-world affine
// as is, the same as MONAI's AffineBoxToWorldCoordinate: the world centre is
// affine * ((x1+x2)/2, (y1+y2)/2, (z1+z2)/2). The world box is the
// axis-aligned box of the 8 transformed corners; its size (w, h, d) in mm is
// that box's extent. For affines whose 3x3 part is a signed permutation times
// a diagonal (every volume after MONAI's Orientationd, and LUNA16) this is
// exactly MONAI's result; for an oblique affine MONAI transforms only the two
// corners (min, max), which can understate the extent, while the 8-corner box
// always contains the transformed voxel box.
//
// World frame. The affine gives RAS+ mm (NIfTI). coords = 'lps' negates the
// first two world axes. The default is 'lps': LUNA16's annotations.csv is in
// ITK physical coordinates (LPS), and MONAI's LUNA16 pipeline writes its
// results with AffineBoxToWorldCoordinated(affine_lps_to_ras=True), i.e. in
// LPS, so the JSON/CSV written here compare directly with LUNA16's ground
// truth and MONAI's own result files.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Detections } from '../detection/postprocess.js';
import type { Affine } from '../io/volume.js';

/** Detections of one volume (the detector's output type): voxel boxes [x1,y1,z1,x2,y2,z2), scores, labels. */
export type { Detections };

export type WorldFrame = 'ras' | 'lps';

/**
 * Validates a flat box array (length a multiple of 6, finite, x2 >= x1 etc.)
 * and returns the number of boxes. `what` names the array in the error.
 */
export function checkBoxes(boxes: ArrayLike<number>, what = 'boxes'): number {
  if (boxes.length % 6 !== 0) {
    throw new Error(`${what}: length ${boxes.length} is not a multiple of 6 (expected [x1,y1,z1,x2,y2,z2] per box)`);
  }
  const n = boxes.length / 6;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 6; k++) {
      const v = boxes[6 * i + k];
      if (!Number.isFinite(v)) throw new Error(`${what}: box ${i} has a non-finite coordinate (${v}) at position ${k}`);
    }
    for (let a = 0; a < 3; a++) {
      if (boxes[6 * i + 3 + a] < boxes[6 * i + a]) {
        throw new Error(
          `${what}: box ${i} has max < min on axis ${'xyz'[a]} (${boxes[6 * i + a]} > ${boxes[6 * i + 3 + a]}); boxes are [x1,y1,z1,x2,y2,z2)`,
        );
      }
    }
  }
  return n;
}

/** Validates detections (box/score/label counts agree, finite values) and returns the count. */
export function checkDetections(d: Detections, what = 'detections'): number {
  const n = checkBoxes(d.boxes, `${what}.boxes`);
  if (d.scores.length !== n) throw new Error(`${what}: ${n} boxes but ${d.scores.length} scores`);
  if (d.labels.length !== n) throw new Error(`${what}: ${n} boxes but ${d.labels.length} labels`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(d.scores[i])) throw new Error(`${what}: score ${i} is not finite (${d.scores[i]})`);
  }
  return n;
}

function checkAffine(affine: Affine): void {
  if (!Array.isArray(affine) || affine.length < 3 || affine.slice(0, 3).some((r) => !Array.isArray(r) || r.length < 4)) {
    throw new Error('affine must be a 4x4 nested row-major array (rows of 4 numbers)');
  }
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      if (!Number.isFinite(affine[r][c])) throw new Error(`affine[${r}][${c}] is not finite (${affine[r][c]})`);
    }
  }
}

/** Maps a continuous voxel coordinate to world mm in the requested frame. */
export function voxelToWorld(affine: Affine, p: readonly [number, number, number], frame: WorldFrame = 'ras'): [number, number, number] {
  const w: [number, number, number] = [0, 0, 0];
  for (let r = 0; r < 3; r++) w[r] = affine[r][0] * p[0] + affine[r][1] * p[1] + affine[r][2] * p[2] + affine[r][3];
  if (frame === 'lps') {
    w[0] = -w[0];
    w[1] = -w[1];
  }
  return w;
}

/** Voxel spacing in mm along x, y, z: the norms of the affine's first three columns. */
export function spacingFromAffine(affine: Affine): [number, number, number] {
  checkAffine(affine);
  const s: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) s[c] = Math.hypot(affine[0][c], affine[1][c], affine[2][c]);
  if (s.some((v) => !(v > 0))) throw new Error(`affine has a zero column (spacing ${s.join(', ')}); it is not invertible`);
  return s;
}

export interface WorldBoxes {
  /** Number of boxes. */
  n: number;
  /** World centre (cx, cy, cz) per box, mm: the transformed voxel centre. */
  center: Float64Array;
  /** World extent (w, h, d) per box, mm: of the axis-aligned box of the 8 transformed corners. */
  size: Float64Array;
  /** Axis-aligned world box [x1,y1,z1,x2,y2,z2] per box, mm. */
  corners: Float64Array;
}

/** Converts voxel boxes to world boxes (see the file comment for the exact definition). */
export function boxesToWorld(affine: Affine, boxes: Float32Array | Float64Array, frame: WorldFrame = 'lps'): WorldBoxes {
  checkAffine(affine);
  if (frame !== 'ras' && frame !== 'lps') throw new Error(`coords must be 'ras' or 'lps', got '${frame}'`);
  const n = checkBoxes(boxes);
  const center = new Float64Array(3 * n);
  const size = new Float64Array(3 * n);
  const corners = new Float64Array(6 * n);
  for (let i = 0; i < n; i++) {
    const b = boxes.subarray(6 * i, 6 * i + 6);
    const c = voxelToWorld(affine, [(b[0] + b[3]) / 2, (b[1] + b[4]) / 2, (b[2] + b[5]) / 2], frame);
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    for (let corner = 0; corner < 8; corner++) {
      const p: [number, number, number] = [b[corner & 1 ? 3 : 0], b[corner & 2 ? 4 : 1], b[corner & 4 ? 5 : 2]];
      const w = voxelToWorld(affine, p, frame);
      for (let a = 0; a < 3; a++) {
        lo[a] = Math.min(lo[a], w[a]);
        hi[a] = Math.max(hi[a], w[a]);
      }
    }
    for (let a = 0; a < 3; a++) {
      center[3 * i + a] = c[a];
      size[3 * i + a] = hi[a] - lo[a];
      corners[6 * i + a] = lo[a];
      corners[6 * i + 3 + a] = hi[a];
    }
  }
  return { n, center, size, corners };
}

/** One image's entry of the results JSON (MONAI `{"validation": [...]}` layout, world cccwhd boxes). */
export interface ResultEntry {
  image: string;
  /** [cx, cy, cz, w, h, d] per box, world mm. */
  box: number[][];
  label: number[];
  label_scores: number[];
}

export interface ResultsFile {
  /** World frame of the boxes; an extra key that MONAI's readers ignore. */
  coords: WorldFrame;
  validation: ResultEntry[];
}

export interface ExportOptions {
  /** World frame, default 'lps' (LUNA16 / MONAI LUNA16 results). */
  coords?: WorldFrame;
  /** Keep detections with score >= this (default: all). */
  scoreThreshold?: number;
}

/** Builds the results-JSON entry for one image; boxes are sorted by descending score. */
export function toResultEntry(image: string, affine: Affine, dets: Detections, opts: ExportOptions = {}): ResultEntry {
  const n = checkDetections(dets);
  const thr = opts.scoreThreshold ?? -Infinity;
  const world = boxesToWorld(affine, dets.boxes, opts.coords ?? 'lps');
  const order = Array.from({ length: n }, (_, i) => i)
    .filter((i) => dets.scores[i] >= thr)
    .sort((a, b) => dets.scores[b] - dets.scores[a] || a - b);
  return {
    image,
    box: order.map((i) => [...world.center.subarray(3 * i, 3 * i + 3), ...world.size.subarray(3 * i, 3 * i + 3)]),
    label: order.map((i) => dets.labels[i]),
    label_scores: order.map((i) => dets.scores[i]),
  };
}

export function resultsJsonText(entries: ResultEntry[], coords: WorldFrame = 'lps'): string {
  const file: ResultsFile = { coords, validation: entries };
  return JSON.stringify(file, null, 2) + '\n';
}

export function writeResultsJson(path: string, entries: ResultEntry[], coords: WorldFrame = 'lps'): void {
  writeFileSync(path, resultsJsonText(entries, coords));
}

/**
 * Reads a results JSON: this package's, MONAI's tutorial (`{"validation": [...]}`)
 * or MONAI bundle's DetectionSaver (a bare list). `coords` is 'lps' when absent
 * (MONAI's LUNA16 files are LPS). Accepts a path or the JSON text itself
 * (text starting with '{' or '[').
 */
export function readResultsJson(pathOrText: string): ResultsFile {
  const t = pathOrText.trimStart();
  const text = t.startsWith('{') || t.startsWith('[') ? pathOrText : readFileSync(pathOrText, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`results JSON: cannot parse (${(e as Error).message})`);
  }
  let list: unknown;
  let coords: WorldFrame = 'lps';
  if (Array.isArray(raw)) list = raw;
  else if (raw && typeof raw === 'object') {
    const o = raw as Record<string, unknown>;
    list = o.validation ?? o.test ?? o.testing;
    if (o.coords !== undefined) {
      if (o.coords !== 'ras' && o.coords !== 'lps') throw new Error(`results JSON: "coords" must be "ras" or "lps", got ${JSON.stringify(o.coords)}`);
      coords = o.coords;
    }
  }
  if (!Array.isArray(list)) throw new Error('results JSON: expected {"validation": [...]} or a list of {image, box, label, label_scores}');
  const entries = list.map((e, idx) => {
    const where = `results JSON entry ${idx}`;
    if (!e || typeof e !== 'object') throw new Error(`${where}: not an object`);
    const r = e as Record<string, unknown>;
    const image = r.image;
    if (typeof image !== 'string') throw new Error(`${where}: "image" must be a string`);
    const box = r.box;
    if (!Array.isArray(box)) throw new Error(`${where} (${image}): "box" must be a list of [cx,cy,cz,w,h,d]`);
    box.forEach((b, j) => {
      if (!Array.isArray(b) || b.length !== 6 || b.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
        throw new Error(`${where} (${image}): box ${j} is not 6 finite numbers`);
      }
    });
    const labels = (r.label ?? box.map(() => 0)) as unknown;
    const scores = r.label_scores ?? r.scores;
    const checkList = (v: unknown, name: string): number[] => {
      if (!Array.isArray(v) || v.length !== box.length || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
        throw new Error(`${where} (${image}): "${name}" must be ${box.length} finite numbers (one per box)`);
      }
      return v as number[];
    };
    return {
      image,
      box: box as number[][],
      label: checkList(labels, 'label'),
      label_scores: checkList(scores, 'label_scores'),
    };
  });
  return { coords, validation: entries };
}

/** LUNA16 seriesuid of an image path: the file name without .nii / .nii.gz / .mhd / .nrrd. */
export function seriesUidFromPath(path: string): string {
  return basename(path).replace(/\.(nii\.gz|nii|mhd|mha|nrrd|nhdr)$/i, '');
}

/** One CSV row: LUNA16 submission columns plus label and box size. */
export interface CsvRow {
  seriesuid: string;
  coordX: number;
  coordY: number;
  coordZ: number;
  probability: number;
  label: number;
  diameterX_mm: number;
  diameterY_mm: number;
  diameterZ_mm: number;
}

export const CSV_COLUMNS = [
  'seriesuid',
  'coordX',
  'coordY',
  'coordZ',
  'probability',
  'label',
  'diameterX_mm',
  'diameterY_mm',
  'diameterZ_mm',
] as const;

/** Flattens results entries into CSV rows (seriesuid from each image path). */
export function entriesToCsvRows(entries: ResultEntry[]): CsvRow[] {
  const rows: CsvRow[] = [];
  for (const e of entries) {
    const uid = seriesUidFromPath(e.image);
    e.box.forEach((b, j) => {
      rows.push({
        seriesuid: uid,
        coordX: b[0],
        coordY: b[1],
        coordZ: b[2],
        probability: e.label_scores[j],
        label: e.label[j],
        diameterX_mm: b[3],
        diameterY_mm: b[4],
        diameterZ_mm: b[5],
      });
    });
  }
  return rows;
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * CSV text with the LUNA16 submission columns first
 * (seriesuid,coordX,coordY,coordZ,probability), then label and the world box
 * size in mm. Numbers are written with full float64 round-trip precision.
 */
export function resultsCsvText(entries: ResultEntry[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of entriesToCsvRows(entries)) {
    lines.push(CSV_COLUMNS.map((c) => (c === 'seriesuid' ? csvField(r.seriesuid) : String(r[c]))).join(','));
  }
  return lines.join('\n') + '\n';
}

export function writeResultsCsv(path: string, entries: ResultEntry[]): void {
  writeFileSync(path, resultsCsvText(entries));
}

function splitCsvLine(line: string, lineNo: number): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new Error(`CSV line ${lineNo}: unterminated quote`);
  out.push(cur);
  return out.map((s) => s.trim());
}

/** Parsed CSV: header fields and data rows (with their 1-based line numbers); blank lines skipped. */
export interface CsvTable {
  header: string[];
  rows: { line: number; fields: string[] }[];
}

/** Minimal RFC-4180-style CSV parsing (quoted fields, "" escapes; no newlines inside fields). */
export function parseCsvText(text: string): CsvTable {
  const lines = text.split(/\r?\n/);
  const header = splitCsvLine(lines[0] ?? '', 1);
  const rows: CsvTable['rows'] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const fields = splitCsvLine(lines[i], i + 1);
    if (fields.length !== header.length) throw new Error(`CSV line ${i + 1}: ${fields.length} fields, header has ${header.length}`);
    rows.push({ line: i + 1, fields });
  }
  return { header, rows };
}

/**
 * Numeric field `name` of a parsed CSV row; `fallback` when the column is
 * absent, an error naming the line when the value is not a finite number.
 */
export function csvNumber(table: CsvTable, row: CsvTable['rows'][number], name: string, fallback?: number): number {
  const c = table.header.indexOf(name);
  if (c < 0) {
    if (fallback === undefined) throw new Error(`CSV: missing column '${name}' (header: ${table.header.join(',')})`);
    return fallback;
  }
  const f = row.fields[c];
  const v = Number(f);
  if (f === '' || !Number.isFinite(v)) throw new Error(`CSV line ${row.line}: ${name} '${f}' is not a finite number`);
  return v;
}

/**
 * Reads a results CSV (ours, or any LUNA16 submission with at least
 * seriesuid,coordX,coordY,coordZ,probability in any column order). Missing
 * label / diameter columns read as 0 / NaN. Accepts a path or the CSV text
 * (text containing a newline).
 */
export function readResultsCsv(pathOrText: string): CsvRow[] {
  const text = pathOrText.includes('\n') ? pathOrText : readFileSync(pathOrText, 'utf8');
  const t = parseCsvText(text);
  for (const required of ['seriesuid', 'coordX', 'coordY', 'coordZ', 'probability']) {
    if (t.header.indexOf(required) < 0) throw new Error(`results CSV: missing column '${required}' (header: ${t.header.join(',')})`);
  }
  const uid = t.header.indexOf('seriesuid');
  return t.rows.map((r) => ({
    seriesuid: r.fields[uid],
    coordX: csvNumber(t, r, 'coordX'),
    coordY: csvNumber(t, r, 'coordY'),
    coordZ: csvNumber(t, r, 'coordZ'),
    probability: csvNumber(t, r, 'probability'),
    label: csvNumber(t, r, 'label', 0),
    diameterX_mm: csvNumber(t, r, 'diameterX_mm', NaN),
    diameterY_mm: csvNumber(t, r, 'diameterY_mm', NaN),
    diameterZ_mm: csvNumber(t, r, 'diameterZ_mm', NaN),
  }));
}

/** Converts world cccwhd boxes (flat or nested) to flat [x1,y1,z1,x2,y2,z2] corner boxes (still world mm). */
export function cccwhdToCorners(boxes: ArrayLike<number> | number[][]): Float64Array {
  const flat: ArrayLike<number> = Array.isArray(boxes) && Array.isArray(boxes[0]) ? (boxes as number[][]).flat() : (boxes as ArrayLike<number>);
  if (flat.length % 6 !== 0) throw new Error(`cccwhd boxes: length ${flat.length} is not a multiple of 6`);
  const out = new Float64Array(flat.length);
  for (let i = 0; i < flat.length; i += 6) {
    for (let a = 0; a < 3; a++) {
      const c = flat[i + a];
      const s = flat[i + 3 + a];
      if (!Number.isFinite(c) || !Number.isFinite(s) || s < 0) throw new Error(`cccwhd box ${i / 6}: centre ${c}, size ${s} on axis ${'xyz'[a]} is invalid`);
      out[i + a] = c - s / 2;
      out[i + 3 + a] = c + s / 2;
    }
  }
  return out;
}
