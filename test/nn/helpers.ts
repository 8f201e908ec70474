// Shared helpers for the network tests: a seeded RNG, float64 tensors and
// central finite differences.
import { Tensor } from '../../src/tensor.js';

/** Mulberry32: small seeded generator for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform values in [-1, 1) (or [lo, hi)). */
export function randArray(n: number, r: () => number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function randTensor(shape: number[], r: () => number, lo = -1, hi = 1): Tensor {
  return Tensor.from(randArray(numelOf(shape), r, lo, hi), shape);
}

export function f64(t: Tensor): Float64Array {
  return t.toArray() as Float64Array;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Central differences of a scalar function of `base` at the given indices:
 * (f(x + h e_i) - f(x - h e_i)) / 2h.
 */
export function finiteDiff(
  base: Float64Array,
  indices: number[],
  f: (x: Float64Array) => number,
  h = 1e-6,
): number[] {
  return indices.map((i) => {
    const x = Float64Array.from(base);
    x[i] = base[i] + h;
    const fp = f(x);
    x[i] = base[i] - h;
    const fm = f(x);
    return (fp - fm) / (2 * h);
  });
}

/** Asserts |a - n| <= atol + rtol * max(|a|, |n|) elementwise, with a readable message. */
export function expectClose(analytic: number[], numeric: number[], what: string, rtol = 1e-4, atol = 1e-7): void {
  for (let i = 0; i < analytic.length; i++) {
    const a = analytic[i];
    const n = numeric[i];
    const tol = atol + rtol * Math.max(Math.abs(a), Math.abs(n));
    if (!(Math.abs(a - n) <= tol))
      throw new Error(`${what}: entry ${i}: analytic ${a} vs finite difference ${n} (tolerance ${tol})`);
  }
}

/** Up to k distinct indices in [0, n), seeded. */
export function sampleIndices(n: number, k: number, r: () => number): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const s = new Set<number>();
  while (s.size < k) s.add(Math.floor(r() * n));
  return [...s].sort((a, b) => a - b);
}
