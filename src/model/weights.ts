// Weight layout conversion between this library and MONAI/PyTorch.
// Conv weights: ours [Cout, k1, k2, k3, Cin] with (k1, k2, k3) = (kz, ky, kx);
// MONAI's [Cout, Cin, kx, ky, kz]. ours = monai.permute(0, 4, 3, 2, 1) and
// monai = ours.permute(0, 4, 3, 2, 1) (the permutation is its own inverse).
// Every other tensor (biases, norm weights, running statistics) is identical.

/**
 * Permutes a 5-d conv weight between the two layouts. `shape` is the shape of
 * `src` ([Cout, a, b, c, d] in either layout); the result has shape
 * [Cout, d, c, b, a].
 */
export function permuteConvWeight<T extends Float32Array | Float64Array>(src: T, shape: readonly number[]): T {
  if (shape.length !== 5) throw new Error(`permuteConvWeight: expected a 5-d shape, got [${shape.join(', ')}]`);
  const [o, a, b, c, d] = shape;
  if (src.length !== o * a * b * c * d)
    throw new Error(`permuteConvWeight: ${src.length} values do not fill shape [${shape.join(', ')}]`);
  const dst = new (src.constructor as { new (n: number): T })(src.length);
  for (let io = 0; io < o; io++)
    for (let ia = 0; ia < a; ia++)
      for (let ib = 0; ib < b; ib++)
        for (let ic = 0; ic < c; ic++)
          for (let id = 0; id < d; id++)
            dst[(((io * d + id) * c + ic) * b + ib) * a + ia] = src[(((io * a + ia) * b + ib) * c + ic) * d + id];
  return dst;
}
