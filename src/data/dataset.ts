// Dataset sources: the seed folder layout (images/ + labels/ paired by file
// name) and MONAI's Decathlon-style datalist JSON; deterministic splits.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Rng } from './rng.js';

/** One case before loading: where its image is and where its annotation comes from. */
export interface CaseSource {
  id: string;
  image: string;
  /** Segmentation mask (folder layout): boxes come from its connected components. */
  label?: string;
  /** World-coordinate boxes [x1,y1,z1,x2,y2,z2] in mm (datalist layout). */
  worldBoxes?: Float32Array;
  /** Class per world box. */
  boxLabels?: Int32Array;
}

const NIFTI_RE = /\.nii(\.gz)?$/i;

/** File name without .nii / .nii.gz. */
export function niftiStem(name: string): string {
  return name.replace(NIFTI_RE, '');
}

function listNifti(dir: string): Map<string, string> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new Error(`cannot list ${dir} (${(e as Error).message})`);
  }
  const out = new Map<string, string>();
  for (const n of names.sort()) {
    if (!NIFTI_RE.test(n) || n.startsWith('.')) continue;
    const stem = niftiStem(n);
    if (out.has(stem)) throw new Error(`${dir}: two files share the name '${stem}' (${out.get(stem)} and ${n}); keep one`);
    out.set(stem, n);
  }
  return out;
}

export interface FolderDatasetOptions {
  imagesDir?: string;
  labelsDir?: string;
}

/**
 * Lists `root/images/*.nii[.gz]` and `root/labels/*.nii[.gz]`, paired by file
 * name (without the .nii/.nii.gz extension). Throws, naming every file without
 * a partner, when the two folders do not match.
 */
export function listFolderDataset(root: string, opts: FolderDatasetOptions = {}): CaseSource[] {
  const imgDir = join(root, opts.imagesDir ?? 'images');
  const labDir = join(root, opts.labelsDir ?? 'labels');
  const images = listNifti(imgDir);
  const labels = listNifti(labDir);
  const noLabel = [...images.keys()].filter((k) => !labels.has(k)).map((k) => join(imgDir, images.get(k)!));
  const noImage = [...labels.keys()].filter((k) => !images.has(k)).map((k) => join(labDir, labels.get(k)!));
  if (noLabel.length || noImage.length) {
    const parts: string[] = [];
    if (noLabel.length) parts.push(`images without a label: ${noLabel.join(', ')}`);
    if (noImage.length) parts.push(`labels without an image: ${noImage.join(', ')}`);
    throw new Error(`${root}: images/ and labels/ do not pair up by file name; ${parts.join('; ')}`);
  }
  if (images.size === 0) throw new Error(`${imgDir}: no .nii or .nii.gz files`);
  return [...images.keys()].map((id) => ({ id, image: join(imgDir, images.get(id)!), label: join(labDir, labels.get(id)!) }));
}

export type GtBoxMode = 'cccwhd' | 'xyzxyz';

export interface DatalistOptions {
  /** Which list to read: 'training' (default), 'validation', 'test', ... */
  key?: string;
  /** Box format in the file: 'cccwhd' (centre + size, the LUNA16 datalists) or 'xyzxyz'. Default 'cccwhd'. */
  gtBoxMode?: GtBoxMode;
  /** Base for relative image paths; default the JSON file's folder. */
  dataRoot?: string;
}

/** Converts boxes in `mode` to xyzxyz (flat). */
export function toXyzxyz(boxes: ArrayLike<number>, mode: GtBoxMode): Float32Array {
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 6) {
    if (mode === 'xyzxyz') {
      for (let a = 0; a < 6; a++) out[i + a] = boxes[i + a];
    } else {
      for (let a = 0; a < 3; a++) {
        out[i + a] = boxes[i + a] - boxes[i + 3 + a] / 2;
        out[i + 3 + a] = boxes[i + a] + boxes[i + 3 + a] / 2;
      }
    }
  }
  return out;
}

/**
 * Reads a Decathlon-style datalist:
 * `{"training": [{"image": "a.nii.gz", "box": [[cx,cy,cz,w,h,d], ...], "label": [0, ...]}], "validation": [...]}`.
 * Boxes are in world coordinates (mm); `label` defaults to class 0 for every box.
 */
export function loadDatalist(path: string, opts: DatalistOptions = {}): CaseSource[] {
  const key = opts.key ?? 'training';
  const mode = opts.gtBoxMode ?? 'cccwhd';
  if (mode !== 'cccwhd' && mode !== 'xyzxyz') throw new Error(`${path}: gtBoxMode must be 'cccwhd' or 'xyzxyz', got '${mode}'`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read the datalist JSON (${(e as Error).message})`);
  }
  const list = json[key];
  if (!Array.isArray(list)) {
    throw new Error(`${path}: no "${key}" list; keys present: ${Object.keys(json).join(', ') || '(none)'}`);
  }
  const root = opts.dataRoot ?? dirname(path);
  const seen = new Set<string>();
  return list.map((item: Record<string, unknown>, i: number) => {
    const where = `${path}: ${key}[${i}]`;
    if (!item || typeof item.image !== 'string') throw new Error(`${where}: "image" must be a file path string`);
    const image = isAbsolute(item.image) ? item.image : resolve(root, item.image);
    const rawBoxes = item.box ?? [];
    if (!Array.isArray(rawBoxes) || rawBoxes.some((b) => !Array.isArray(b) || b.length !== 6 || b.some((v) => typeof v !== 'number'))) {
      throw new Error(`${where}: "box" must be a list of 6-number boxes (${mode})`);
    }
    const flat = (rawBoxes as number[][]).flat();
    const labels = item.label ?? new Array(rawBoxes.length).fill(0);
    if (!Array.isArray(labels) || labels.length !== rawBoxes.length || labels.some((l) => !Number.isInteger(l) || l < 0)) {
      throw new Error(`${where}: "label" must list one non-negative integer class per box (${rawBoxes.length} boxes)`);
    }
    let id = niftiStem(image.split(/[\\/]/).pop()!);
    if (seen.has(id)) id = `${id}#${i}`;
    seen.add(id);
    return { id, image, worldBoxes: toXyzxyz(flat, mode), boxLabels: Int32Array.from(labels as number[]) };
  });
}

export interface SplitOptions {
  /** Fraction of cases for validation (default 0.2), used when validationIds is not given. */
  validationFraction?: number;
  /** Explicit validation case ids; every id must exist. */
  validationIds?: readonly string[];
  seed?: number;
}

/** Deterministic train/validation split (seeded shuffle of ids, sorted first so listing order does not matter). */
export function splitCases<T extends { id: string }>(cases: readonly T[], opts: SplitOptions = {}): { train: T[]; validation: T[] } {
  if (opts.validationIds) {
    const want = new Set(opts.validationIds);
    const ids = new Set(cases.map((c) => c.id));
    const missing = [...want].filter((id) => !ids.has(id));
    if (missing.length) throw new Error(`splitCases: validation ids not in the dataset: ${missing.join(', ')}`);
    return { train: cases.filter((c) => !want.has(c.id)), validation: cases.filter((c) => want.has(c.id)) };
  }
  const f = opts.validationFraction ?? 0.2;
  if (!(f >= 0 && f <= 1)) throw new Error(`splitCases: validationFraction must be in [0, 1], got ${f}`);
  const ids = cases.map((c) => c.id).sort();
  new Rng(opts.seed ?? 0, 0x5711).shuffle(ids);
  const nVal = Math.round(f * ids.length);
  const val = new Set(ids.slice(0, nVal));
  return { train: cases.filter((c) => !val.has(c.id)), validation: cases.filter((c) => val.has(c.id)) };
}

/** True when `path` is an existing directory. */
export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
