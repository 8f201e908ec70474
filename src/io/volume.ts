// The in-memory volume every part of detseg3d passes around.
//
// Axes: x, y, z are the volume's first, second and third spatial axes
// (NIfTI i, j, k). Voxels are stored with x fastest, exactly as NIfTI stores
// them: index(x, y, z) = x + X * (y + Y * z). As a tensor this is
// [1, Z, Y, X, 1] (see src/tensor.ts).
//
// Boxes everywhere are flat Float32Arrays of [x1, y1, z1, x2, y2, z2] per box
// in voxel units, covering [x1, x2) x [y1, y2) x [z1, z2) (MONAI StandardMode).
export type VoxelArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array;

/** 4x4 matrix, row-major nested arrays: m[row][col]. */
export type Affine = number[][];

export interface Volume {
  /** Voxel values, x fastest. */
  data: VoxelArray;
  /** Size in voxels (x, y, z). */
  dims: [number, number, number];
  /** Voxel-to-world affine (NIfTI convention: RAS+ millimetres): world = affine · [i, j, k, 1]. */
  affine: Affine;
}

export function voxelCount(dims: readonly [number, number, number]): number {
  return dims[0] * dims[1] * dims[2];
}

export function identityAffine(spacing: readonly [number, number, number] = [1, 1, 1]): Affine {
  return [
    [spacing[0], 0, 0, 0],
    [0, spacing[1], 0, 0],
    [0, 0, spacing[2], 0],
    [0, 0, 0, 1],
  ];
}
