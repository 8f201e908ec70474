// 3D connected-component labelling and segmentation → box conversion.
//
// One raster pass (x fastest) with union-find over provisional labels: each
// foreground voxel looks at its already-visited neighbours (13 of the 26, or
// 3 of the 6) that carry the SAME mask value, so a multi-class mask is labelled
// per value in a single pass. Provisional labels grow in raster order and every
// union keeps the smaller label as root, so a component's root is the label of
// its first voxel in raster order; components are numbered in that order.
//
// boxesFromSegmentation only needs per-component statistics, so it keeps just
// two slices of provisional labels (the neighbours of slice z lie in z and
// z − 1) instead of a full label volume: memory O(X·Y) + O(#labels).

export type Connectivity = 6 | 26;

export interface ConnectedComponentsOptions {
  /** 26 (faces, edges and corners; default) or 6 (faces only). */
  connectivity?: Connectivity;
}

export interface ConnectedComponents {
  /** Component id per voxel (0 = background, 1..count in raster order of each component's first voxel). */
  labels: Int32Array;
  count: number;
  /** Voxel count of component c at index c − 1. */
  sizes: Int32Array;
}

type Dims = readonly [number, number, number];

interface PassResult {
  /** Union-find parents over provisional labels 1..n (index 0 unused). */
  parent: Int32Array;
  n: number;
  /** Per provisional label: voxel count and bounding box (inclusive), and the mask value. */
  cnt: Int32Array;
  box: Int32Array; // 6 per label: minx, miny, minz, maxx, maxy, maxz
  value: Float64Array;
}

function find(parent: Int32Array, a: number): number {
  while (parent[a] !== a) {
    parent[a] = parent[parent[a]];
    a = parent[a];
  }
  return a;
}

function checkInput(mask: ArrayLike<number>, dims: Dims, who: string, conn: number): void {
  if (!Array.isArray(dims) || dims.length !== 3 || dims.some((d) => !(Number.isInteger(d) && d >= 1))) {
    throw new Error(`${who}: dims must be three positive integers (x, y, z), got ${JSON.stringify(dims)}`);
  }
  const n = dims[0] * dims[1] * dims[2];
  if (!mask || mask.length !== n) throw new Error(`${who}: mask has ${mask?.length} voxels, dims ${dims.join('x')} need ${n}`);
  if (conn !== 6 && conn !== 26) throw new Error(`${who}: connectivity must be 6 or 26, got ${conn}`);
}

/** Backward neighbour offsets (dx, dy, dz) visited before the current voxel in raster order. */
function backwardNeighbours(conn: Connectivity): number[][] {
  if (conn === 6) return [[-1, 0, 0], [0, -1, 0], [0, 0, -1]];
  const out: number[][] = [[-1, 0, 0], [-1, -1, 0], [0, -1, 0], [1, -1, 0]];
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) out.push([dx, dy, -1]);
  return out;
}

function labelPass(mask: ArrayLike<number>, dims: Dims, conn: Connectivity, full: Int32Array | null): PassResult {
  const [X, Y, Z] = dims;
  const XY = X * Y;
  const lab = full ?? new Int32Array(2 * XY);
  const nb = backwardNeighbours(conn);
  let cap = 1024;
  let parent = new Int32Array(cap);
  let cnt = new Int32Array(cap);
  let box = new Int32Array(cap * 6);
  let value = new Float64Array(cap);
  let n = 0;
  const grow = () => {
    cap *= 2;
    const p = new Int32Array(cap); p.set(parent); parent = p;
    const c = new Int32Array(cap); c.set(cnt); cnt = c;
    const b = new Int32Array(cap * 6); b.set(box); box = b;
    const v = new Float64Array(cap); v.set(value); value = v;
  };
  const nbCount = nb.length;
  const ndx = new Int32Array(nb.map((o) => o[0]));
  const ndy = new Int32Array(nb.map((o) => o[1]));
  const ndz = new Int32Array(nb.map((o) => o[2]));
  // Offsets in the mask and in the label buffer.
  const mOff = new Int32Array(nb.map((o) => o[0] + X * (o[1] + Y * o[2])));
  for (let z = 0; z < Z; z++) {
    const cur = full ? z * XY : (z & 1) * XY;
    const prev = full ? (z - 1) * XY : ((z + 1) & 1) * XY;
    for (let y = 0; y < Y; y++) {
      const rowM = X * (y + Y * z);
      const rowL = cur + X * y;
      for (let x = 0; x < X; x++) {
        const i = rowM + x;
        const v = mask[i];
        if (v === 0) {
          lab[rowL + x] = 0;
          continue;
        }
        let L = 0;
        for (let k = 0; k < nbCount; k++) {
          const xx = x + ndx[k], yy = y + ndy[k], dz = ndz[k];
          if (xx < 0 || xx >= X || yy < 0 || yy >= Y || z + dz < 0) continue;
          if (mask[i + mOff[k]] !== v) continue;
          const nl = lab[(dz ? prev : cur) + X * yy + xx];
          if (L === 0) {
            L = find(parent, nl);
          } else if (nl !== L) {
            const r = find(parent, nl);
            if (r !== L) {
              if (r < L) { parent[L] = r; L = r; } else parent[r] = L;
            }
          }
        }
        if (L === 0) {
          if (++n >= cap) grow();
          L = n;
          parent[L] = L;
          value[L] = v;
          box[6 * L] = box[6 * L + 3] = x;
          box[6 * L + 1] = box[6 * L + 4] = y;
          box[6 * L + 2] = box[6 * L + 5] = z;
        }
        lab[rowL + x] = L;
        cnt[L]++;
        const b = 6 * L;
        if (x < box[b]) box[b] = x; else if (x > box[b + 3]) box[b + 3] = x;
        if (y < box[b + 1]) box[b + 1] = y; else if (y > box[b + 4]) box[b + 4] = y;
        if (z > box[b + 5]) box[b + 5] = z; // z never decreases in raster order
      }
    }
  }
  return { parent, n, cnt, box, value };
}

/**
 * Merges provisional-label statistics into their roots; returns, for each
 * provisional label, its component id (1..count) and the per-component stats.
 */
function resolve(r: PassResult): { comp: Int32Array; count: number; cnt: Int32Array; box: Int32Array; value: Float64Array } {
  const { parent, n } = r;
  const comp = new Int32Array(n + 1);
  let count = 0;
  // Roots are the smallest label of their set, so visiting labels in order
  // numbers components by their first voxel in raster order.
  for (let l = 1; l <= n; l++) {
    const root = find(parent, l);
    if (root === l) comp[l] = ++count;
    else comp[l] = comp[root];
  }
  const cnt = new Int32Array(count);
  const box = new Int32Array(count * 6);
  const value = new Float64Array(count);
  for (let c = 0; c < count; c++) {
    box[6 * c] = box[6 * c + 1] = box[6 * c + 2] = 2147483647;
    box[6 * c + 3] = box[6 * c + 4] = box[6 * c + 5] = -1;
  }
  for (let l = 1; l <= n; l++) {
    const c = comp[l] - 1;
    cnt[c] += r.cnt[l];
    value[c] = r.value[l];
    for (let a = 0; a < 3; a++) {
      box[6 * c + a] = Math.min(box[6 * c + a], r.box[6 * l + a]);
      box[6 * c + 3 + a] = Math.max(box[6 * c + 3 + a], r.box[6 * l + 3 + a]);
    }
  }
  return { comp, count, cnt, box, value };
}

/**
 * Labels the connected components of the non-zero voxels of `mask` (x fastest,
 * dims (x, y, z)). Two neighbouring voxels are connected when both are non-zero
 * and hold the same value, so for a multi-label mask each value is labelled
 * separately; a binary mask gives the usual components.
 */
export function connectedComponents(
  mask: ArrayLike<number>, dims: Dims, opts: ConnectedComponentsOptions = {},
): ConnectedComponents {
  const conn = opts.connectivity ?? 26;
  checkInput(mask, dims, 'connectedComponents', conn);
  const labels = new Int32Array(dims[0] * dims[1] * dims[2]);
  const pass = labelPass(mask, dims, conn, labels);
  const res = resolve(pass);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l) labels[i] = res.comp[l];
  }
  return { labels, count: res.count, sizes: res.cnt };
}

export type ClassMap = Record<number, number> | Map<number, number> | ((value: number) => number | null | undefined);

export interface BoxesFromSegmentationOptions {
  /** Components with fewer voxels are dropped (default 10). */
  minSize?: number;
  connectivity?: Connectivity;
  /**
   * Label value → class index. Default: value v → class v − 1 (values must be
   * positive integers). With a map, values it does not list (or maps to
   * null/undefined/negative) are ignored.
   */
  classMap?: ClassMap;
}

export interface SegmentationBoxes {
  /** [x1, y1, z1, x2, y2, z2] per component, voxel units, [min, max + 1) per axis. */
  boxes: Float32Array;
  /** Class index per box. */
  labels: Int32Array;
  /** Voxel count per box. */
  sizes: Int32Array;
  /** Mask value each box came from. */
  values: Float64Array;
  /** Number of components dropped for being smaller than minSize. */
  dropped: number;
}

function classOf(map: ClassMap | undefined, v: number): number | null {
  if (map === undefined) {
    if (!(Number.isInteger(v) && v >= 1)) {
      throw new Error(`boxesFromSegmentation: label value ${v} is not a positive integer; pass classMap to say which class it is`);
    }
    return v - 1;
  }
  const c = typeof map === 'function' ? map(v) : map instanceof Map ? map.get(v) : map[v];
  return c === undefined || c === null || c < 0 ? null : c;
}

/**
 * Boxes of the connected components of each foreground label value of a
 * segmentation (0 = background). Components are reported in raster order of
 * their first voxel; those smaller than `minSize` voxels are dropped.
 */
export function boxesFromSegmentation(
  labelVolume: { data: ArrayLike<number>; dims: Dims },
  opts: BoxesFromSegmentationOptions = {},
): SegmentationBoxes {
  const conn = opts.connectivity ?? 26;
  const minSize = opts.minSize ?? 10;
  if (!(minSize >= 0)) throw new Error(`boxesFromSegmentation: minSize must be >= 0, got ${minSize}`);
  checkInput(labelVolume.data, labelVolume.dims, 'boxesFromSegmentation', conn);
  const res = resolve(labelPass(labelVolume.data, labelVolume.dims, conn, null));
  const keep: number[] = [];
  const cls: number[] = [];
  let dropped = 0;
  for (let c = 0; c < res.count; c++) {
    const k = classOf(opts.classMap, res.value[c]);
    if (k === null) continue;
    if (res.cnt[c] < minSize) { dropped++; continue; }
    keep.push(c);
    cls.push(k);
  }
  const boxes = new Float32Array(keep.length * 6);
  const sizes = new Int32Array(keep.length);
  const values = new Float64Array(keep.length);
  keep.forEach((c, j) => {
    for (let a = 0; a < 3; a++) {
      boxes[6 * j + a] = res.box[6 * c + a];
      boxes[6 * j + 3 + a] = res.box[6 * c + 3 + a] + 1;
    }
    sizes[j] = res.cnt[c];
    values[j] = res.value[c];
  });
  return { boxes, labels: Int32Array.from(cls), sizes, values, dropped };
}
