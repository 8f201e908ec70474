// Tensor: the array type shared by TypeScript and the native core.
//
// Layout conventions (the one place they are defined):
//   activations  [N, D1, D2, D3, C]   channels last
//   conv weights [Cout, k1, k2, k3, Cin]
// A volume's spatial axes (x, y, z) = NIfTI (i, j, k) map onto
// (D3, D2, D1): x is the fastest-varying axis in memory, exactly as NIfTI
// stores voxels, so a NIfTI volume of dims (X, Y, Z) is a tensor of shape
// [1, Z, Y, X, 1] without reordering a single voxel. Per-axis options are
// always given to the public API in (x, y, z) order; `xyzToDims` and
// `dimsToXyz` convert them.
import { native } from './native.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'uint8';
export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;
export type Triple = [number, number, number];

/** Reverses an (x, y, z) triple into (D1, D2, D3) order, and back (the map is its own inverse). */
export function xyzToDims<T>(v: readonly [T, T, T]): [T, T, T] {
  return [v[2], v[1], v[0]];
}
export const dimsToXyz = xyzToDims;

/** Shape [N, D1, D2, D3, C] of a batch of n volumes of size (x, y, z) with c channels. */
export function volumeTensorShape(sizeXyz: readonly [number, number, number], n = 1, c = 1): number[] {
  return [n, sizeXyz[2], sizeXyz[1], sizeXyz[0], c];
}

interface NativeTensorHandle {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  toArray(): TypedArray;
  to(dtypeOrDevice: string): NativeTensorHandle;
  reshape(shape: number[]): NativeTensorHandle;
  clone(): NativeTensorHandle;
}

export class Tensor {
  /** @internal */
  readonly handle: NativeTensorHandle;

  /** @internal Wraps a native handle; use Tensor.from / zeros to create tensors. */
  constructor(handle: NativeTensorHandle) {
    this.handle = handle;
  }

  /**
   * Copies a typed array into a new tensor. The dtype follows the array
   * (Float32Array → float32, Float64Array → float64, Int32Array → int32,
   * BigInt64Array → int64, Uint8Array → uint8); passing `dtype` converts.
   * A Uint16Array holds float16 or bfloat16 bits and needs `dtype`.
   */
  static from(data: TypedArray, shape: readonly number[], dtype?: DType): Tensor {
    if (!ArrayBuffer.isView(data)) throw new Error('Tensor.from: data must be a typed array');
    return new Tensor(new native.NativeTensor(data, [...shape], dtype));
  }

  static zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return Tensor.from(new Float64Array(n), shape, dtype);
  }

  /** @internal */
  static wrap(h: NativeTensorHandle): Tensor {
    return new Tensor(h);
  }

  get shape(): number[] {
    return this.handle.shape;
  }
  get dtype(): DType {
    return this.handle.dtype;
  }
  get device(): string {
    return this.handle.device;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** A copy of the data (float16/bfloat16 as Uint16Array bits). */
  toArray(): TypedArray {
    return this.handle.toArray();
  }

  /** The data as float32 values whatever the dtype (16-bit floats decoded). */
  toFloat32(): Float32Array {
    return (this.dtype === 'float32' ? this.handle : this.handle.to('float32')).toArray() as Float32Array;
  }

  /** Converted copy (dtype) or a copy on another device ('cpu', 'cuda', 'cuda:1'); the same tensor when nothing changes. */
  to(dtype: DType | 'cpu' | 'cuda' | `cuda:${number}`): Tensor {
    return new Tensor(this.handle.to(dtype));
  }

  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.handle.reshape([...shape]));
  }

  clone(): Tensor {
    return new Tensor(this.handle.clone());
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}] on ${this.device})`;
  }
}
