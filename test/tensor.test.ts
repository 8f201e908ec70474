import { describe, expect, it } from 'vitest';
import { Tensor, info, setSimdLevel, setNumThreads, xyzToDims, volumeTensorShape } from '../src/index.js';

describe('Tensor', () => {
  it('round-trips every dtype through a typed array', () => {
    const f32 = Tensor.from(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    expect(f32.shape).toEqual([2, 3]);
    expect(f32.dtype).toBe('float32');
    expect(f32.device).toBe('cpu');
    expect(Array.from(f32.toArray() as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);

    const f64 = Tensor.from(new Float64Array([0.1, -2.5]), [2]);
    expect(f64.dtype).toBe('float64');
    expect(Array.from(f64.toArray() as Float64Array)).toEqual([0.1, -2.5]);

    const i32 = Tensor.from(new Int32Array([-7, 9]), [1, 2]);
    expect(i32.dtype).toBe('int32');
    expect(Array.from(i32.toArray() as Int32Array)).toEqual([-7, 9]);

    const i64 = Tensor.from(new BigInt64Array([-3n, 2n ** 40n]), [2]);
    expect(i64.dtype).toBe('int64');
    expect(Array.from(i64.toArray() as BigInt64Array)).toEqual([-3n, 2n ** 40n]);

    const u8 = Tensor.from(new Uint8Array([0, 255]), [2]);
    expect(u8.dtype).toBe('uint8');
    expect(Array.from(u8.toArray() as Uint8Array)).toEqual([0, 255]);
  });

  it('converts to float16 with IEEE bit patterns and back', () => {
    // 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF (max), 1e6 overflows to +inf 0x7C00,
    // 2^-24 = 0x0001 (smallest subnormal), 0.1 = 0x2E66 (round to nearest even).
    const t = Tensor.from(new Float32Array([1, -2, 65504, 1e6, 2 ** -24, 0.1]), [6]).to('float16');
    expect(t.dtype).toBe('float16');
    expect(Array.from(t.toArray() as Uint16Array)).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x2e66]);
    const back = t.toFloat32();
    expect(back[0]).toBe(1);
    expect(back[3]).toBe(Infinity);
    expect(back[4]).toBe(2 ** -24);
    expect(back[5]).toBeCloseTo(0.0999755859375, 12);
  });

  it('converts to bfloat16 with round-to-nearest-even', () => {
    // 1.0 = 0x3F80; 1 + 2^-8 is a tie between 0x3F80 and 0x3F81 -> even 0x3F80;
    // 1 + 3*2^-8 is a tie -> even 0x3F82; 3.0 = 0x4040.
    const t = Tensor.from(new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3]), [4], 'bfloat16');
    expect(Array.from(t.toArray() as Uint16Array)).toEqual([0x3f80, 0x3f80, 0x3f82, 0x4040]);
    const bits = Tensor.from(new Uint16Array([0x3f80, 0xc040]), [2], 'bfloat16');
    expect(Array.from(bits.toFloat32())).toEqual([1, -3]);
  });

  it('reshapes and clones', () => {
    const t = Tensor.from(new Float32Array(24).map((_, i) => i), [2, 3, 4]);
    const r = t.reshape([4, 6]);
    expect(r.shape).toEqual([4, 6]);
    expect((r.toArray() as Float32Array)[23]).toBe(23);
    expect(t.clone().toArray()).toEqual(t.toArray());
  });

  it('rejects bad input with clear errors', () => {
    expect(() => Tensor.from(new Float32Array(5), [2, 3])).toThrow(/needs 6 elements but the array has 5/);
    expect(() => Tensor.from(new Float32Array(1), [1, 1, 1, 1, 1, 1])).toThrow(/at most 5 dimensions/);
    expect(() => Tensor.from(new Float32Array(0), [-1])).toThrow(/>= 0/);
    expect(() => Tensor.from(new Uint16Array(2), [2])).toThrow(/float16 or bfloat16/);
    expect(() => Tensor.from(new Float32Array(2), [2], 'float8' as never)).toThrow(/unknown dtype 'float8'/);
    expect(() => Tensor.from(new Float32Array(6), [2, 3]).reshape([4, 2])).toThrow(/element counts differ/);
  });

  it('maps (x, y, z) onto tensor dimensions (D1, D2, D3) = (z, y, x)', () => {
    expect(xyzToDims([10, 20, 30])).toEqual([30, 20, 10]);
    expect(volumeTensorShape([64, 48, 32], 2, 1)).toEqual([2, 32, 48, 64, 1]);
  });
});

describe('info', () => {
  it('reports version, build flags, SIMD, threads and CUDA', () => {
    const i = info();
    expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(i.buildFlags).toContain('build=');
    expect(['scalar', 'avx2', 'avx512']).toContain(i.simd);
    expect(i.threads).toBeGreaterThanOrEqual(1);
    expect(typeof i.cudaCompiled).toBe('boolean');
    expect(Array.isArray(i.gpus)).toBe(true);
    if (i.gpus.length === 0) expect(i.gpuNote.length).toBeGreaterThan(0);
  });

  it('validates thread counts and SIMD levels', () => {
    expect(() => setNumThreads(0)).toThrow(/between 1 and 1024/);
    expect(() => setSimdLevel('sse' as never)).toThrow(/unknown SIMD level/);
    setSimdLevel('scalar');
    expect(info().simd).toBe('scalar');
    setSimdLevel(info().simdSupported);
    setNumThreads(2);
    expect(info().threads).toBe(2);
  });
});
