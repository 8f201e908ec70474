// Shared helpers of the detection tests: a seeded RNG, random boxes and
// float64 reference implementations written independently of the library.
export function rng(seed: number): () => number {
  // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n random boxes inside [0, extent]^3 with sizes in [minSize, maxSize]. */
export function randomBoxes(r: () => number, n: number, extent = 40, minSize = 1, maxSize = 12): Float32Array {
  const b = new Float32Array(6 * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < 3; k++) {
      const s = minSize + r() * (maxSize - minSize);
      const lo = r() * (extent - s);
      b[6 * i + k] = lo;
      b[6 * i + k + 3] = lo + s;
    }
  return b;
}

export function volume(b: ArrayLike<number>, i: number): number {
  let v = 1;
  for (let k = 0; k < 3; k++) v *= Math.max(0, b[6 * i + k + 3] - b[6 * i + k]);
  return v;
}

/** IoU in float64: inter / (union + 2^-23). */
export function refIou(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  let inter = 1;
  for (let k = 0; k < 3; k++) {
    const lo = Math.max(a[6 * i + k], b[6 * j + k]);
    const hi = Math.min(a[6 * i + k + 3], b[6 * j + k + 3]);
    inter *= Math.max(0, hi - lo);
  }
  return inter / (volume(a, i) + volume(b, j) - inter + 2 ** -23);
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Reference decode (MONAI BoxCoder.decode_single), float64. */
export function refDecode(anchor: ArrayLike<number>, i: number, d: ArrayLike<number>, j: number, w = [1, 1, 1, 1, 1, 1]): number[] {
  const out = new Array<number>(6);
  for (let k = 0; k < 3; k++) {
    const sa = anchor[6 * i + k + 3] - anchor[6 * i + k];
    const ca = anchor[6 * i + k] + 0.5 * sa;
    const c = (d[6 * j + k] / w[k]) * sa + ca;
    const s = Math.exp(Math.min(d[6 * j + k + 3] / w[k + 3], Math.log(1000 / 16))) * sa;
    out[k] = c - 0.5 * s;
    out[k + 3] = c + 0.5 * s;
  }
  return out;
}
