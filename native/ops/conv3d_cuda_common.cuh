// Shared pieces of the CUDA conv3d kernels (include from .cu files only):
// the problem geometry as kernels see it, the implicit-GEMM row/tap gathers,
// the fused epilogue, PTX wrappers (cp.async, ldmatrix, mma.sync) and the
// launch entry points each kernel file provides to conv3d_cuda.cu.
//
// GEMM views (positions are flattened (n, d1, d2, d3) indices):
//   forward      Y[m, co]  = sum_k X(m, k) W[co, k]        m: output position, k = tap*Cin + c
//   grad input   dX[m, c]  = sum_k G(m, k) WT[c, k]        m: input position,  k = tap*Cout + co,
//                WT[c, tap, co] = w[co, tap, c], G(m, k) = dy at the output position o with
//                o*s - p + tap*d = m's coordinates (0 when there is none: stride phases)
//   grad weight  dW[co, k] = sum_r dY[r, co] X(r, k)       r: output position (split over r)
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_kernels.cuh"
#include "ops/conv3d.h"

namespace ds::convcuda {

// Geometry in int (every extent < 2^31; element offsets are int64).
struct Geo {
  int N, Ci, Co;
  int D[3], O[3], K[3], s[3], p[3], d[3];
  int taps;
  __host__ __device__ int64_t in_pos() const { return int64_t(N) * D[0] * D[1] * D[2]; }
  __host__ __device__ int64_t out_pos() const { return int64_t(N) * O[0] * O[1] * O[2]; }
  __host__ __device__ bool pointwise() const {
    for (int i = 0; i < 3; ++i)
      if (K[i] != 1 || s[i] != 1 || p[i] != 0) return false;
    return true;
  }
};

// Fused epilogue of forward / grad input: out = relu?((acc ? out : 0) + v + bias[col]).
struct Epilogue {
  const float* bias_f = nullptr;  // float32 bias, or
  const void* bias_t = nullptr;   // bias in the output dtype
  bool accumulate = false;
  bool relu = false;
};

template <class T>
__device__ __forceinline__ void epilogue_store(T* out, int64_t idx, int col, float v, const Epilogue& e) {
  using N = cuda::Num<T>;
  if (e.bias_f) v += e.bias_f[col];
  if (e.bias_t) v += float(N::load(static_cast<const T*>(e.bias_t)[col]));
  if (e.accumulate) v += float(N::load(out[idx]));
  if (e.relu) v = v > 0.f ? v : 0.f;
  out[idx] = N::store(v);
}
__device__ __forceinline__ void epilogue_store(double* out, int64_t idx, int col, double v, const Epilogue& e) {
  if (e.bias_f) v += e.bias_f[col];
  if (e.bias_t) v += static_cast<const double*>(e.bias_t)[col];
  if (e.accumulate) v += out[idx];
  if (e.relu) v = v > 0.0 ? v : 0.0;
  out[idx] = v;
}

// A gathered GEMM row. Forward (and grad weight): row = output position,
// c[j] = o_j*s_j - p_j, base = n * D1*D2*D3 (input positions). Grad input:
// row = input position, c[j] = i_j + p_j, base = n * O1*O2*O3 (output positions).
// base < 0 marks a row past the end. Positions fit in int (checked on the host).
struct Row {
  int base;
  int c[3];
};

template <bool kDgrad>
__device__ __forceinline__ Row make_row(const Geo& g, int64_t m, int64_t rows) {
  Row r;
  if (m >= rows) {
    r.base = -1;
    r.c[0] = r.c[1] = r.c[2] = 0;
    return r;
  }
  const int* E = kDgrad ? g.D : g.O;  // extents of the row's own positions
  int t = int(m);
  const int e2 = t % E[2];
  t /= E[2];
  const int e1 = t % E[1];
  t /= E[1];
  const int e0 = t % E[0];
  const int n = t / E[0];
  if (kDgrad) {
    r.base = n * g.O[0] * g.O[1] * g.O[2];
    r.c[0] = e0 + g.p[0];
    r.c[1] = e1 + g.p[1];
    r.c[2] = e2 + g.p[2];
  } else {
    r.base = n * g.D[0] * g.D[1] * g.D[2];
    r.c[0] = e0 * g.s[0] - g.p[0];
    r.c[1] = e1 * g.s[1] - g.p[1];
    r.c[2] = e2 * g.s[2] - g.p[2];
  }
  return r;
}

__device__ __forceinline__ void split_tap(const Geo& g, int tap, int& a, int& b, int& c) {
  const int k12 = g.K[1] * g.K[2];
  a = tap / k12;
  const int rem = tap - a * k12;
  b = rem / g.K[2];
  c = rem - b * g.K[2];
}

// Position the row reads for kernel tap (a, b, c), or -1 (padding / no such output).
template <bool kDgrad>
__device__ __forceinline__ int64_t tap_pos(const Geo& g, const Row& r, int a, int b, int c) {
  if (r.base < 0) return -1;
  const int k[3] = {a, b, c};
  int q[3];
  if (kDgrad) {
#pragma unroll
    for (int j = 0; j < 3; ++j) {
      const int num = r.c[j] - k[j] * g.d[j];
      if (num < 0) return -1;
      if (g.s[j] == 1) {
        q[j] = num;
      } else {
        q[j] = num / g.s[j];
        if (q[j] * g.s[j] != num) return -1;
      }
      if (q[j] >= g.O[j]) return -1;
    }
    return int64_t(r.base + (q[0] * g.O[1] + q[1]) * g.O[2] + q[2]);
  } else {
#pragma unroll
    for (int j = 0; j < 3; ++j) {
      q[j] = r.c[j] + k[j] * g.d[j];
      if (q[j] < 0 || q[j] >= g.D[j]) return -1;
    }
    return int64_t(r.base + (q[0] * g.D[1] + q[1]) * g.D[2] + q[2]);
  }
}

// ---- PTX wrappers (sm_80+) ------------------------------------------------------
// DS_CUDA_TC_CODE: the tensor-core kernels have a body (device code for sm_80+,
// and the CPU emulator of native/emu, which implements these wrappers).
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800) || defined(DETSEG3D_CUDA_EMU)
#define DS_CUDA_TC_CODE 1
#else
#define DS_CUDA_TC_CODE 0
#endif
__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// 16-byte async copy global -> shared; zero-fills the destination when !valid
// (src-size 0: nothing is read, src only has to be a valid pointer value).
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
#elif defined(DETSEG3D_CUDA_EMU)
  ::detseg3d_emu::cp_async16(dst, src, valid);
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#elif defined(DETSEG3D_CUDA_EMU)
  ::detseg3d_emu::cp_async_commit();
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#elif defined(DETSEG3D_CUDA_EMU)
  ::detseg3d_emu::cp_async_wait(N);
#endif
}
// Prologue of a STAGES-deep cp.async ring: issues tiles 0 .. STAGES-2 (those
// below KT) via load_tile(stage, tile), one commit group per stage even when
// empty, so the main loop's cp_async_wait<STAGES - 2> counts stay uniform.
template <int STAGES, class Load>
__device__ __forceinline__ void cp_async_prologue(int KT, Load& load_tile) {
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) load_tile(s, s);
    cp_async_commit();
  }
}
__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], unsigned addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#elif defined(DETSEG3D_CUDA_EMU)
  ::detseg3d_emu::ldmatrix(r, 4, addr, false);
#endif
}
__device__ __forceinline__ void ldsm_x4_t(unsigned (&r)[4], unsigned addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#elif defined(DETSEG3D_CUDA_EMU)
  ::detseg3d_emu::ldmatrix(r, 4, addr, true);
#endif
}
__device__ __forceinline__ void ldsm_x2_t(unsigned& r0, unsigned& r1, unsigned addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(addr));
#elif defined(DETSEG3D_CUDA_EMU)
  unsigned r[2];
  ::detseg3d_emu::ldmatrix(r, 2, addr, true);
  r0 = r[0];
  r1 = r[1];
#endif
}

// Zeroes MI x NI mma16816 accumulator fragments.
template <int MI, int NI>
__device__ __forceinline__ void zero_frags(float (&acc)[MI][NI][4]) {
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.f;
}
// D += A(16x16, row) * B(16x8, col), float32 accumulation.
template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1);
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#elif defined(DETSEG3D_CUDA_EMU)
  ::detseg3d_emu::mma16816(d, a, b0, b1, false);
#endif
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                                        unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#elif defined(DETSEG3D_CUDA_EMU)
  ::detseg3d_emu::mma16816(d, a, b0, b1, true);
#endif
}

// A warp's MI x NI tile of mma16816: acc[i][j] += af[i] * bfr[j].
template <class T, int MI, int NI>
__device__ __forceinline__ void mma_tile(float (&acc)[MI][NI][4], const unsigned (&af)[MI][4],
                                         const unsigned (&bfr)[NI][2]) {
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j) mma16816<T>(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
}
// Splits an ldmatrix x4 result into the B fragments of columns 2*j2 and 2*j2+1.
template <int NI>
__device__ __forceinline__ void split_b_x4(unsigned (&bfr)[NI][2], int j2, const unsigned (&t4)[4]) {
  bfr[2 * j2][0] = t4[0];
  bfr[2 * j2][1] = t4[1];
  bfr[2 * j2 + 1][0] = t4[2];
  bfr[2 * j2 + 1][1] = t4[3];
}

// Stores one 16x8 accumulator fragment (rows row0 + lane/4 and +8, columns
// col0 + 2*(lane%4) and +1) of a [rows x cols] row-major output through the epilogue.
template <class T>
__device__ __forceinline__ void store_frag(T* out, const float (&acc)[4], int64_t row0, int col0, int64_t rows,
                                           int cols, const Epilogue& e) {
  const int lane = threadIdx.x & 31;
  const int col = col0 + 2 * (lane & 3);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t row = row0 + (lane >> 2) + 8 * h;
    if (row >= rows) continue;
    if (col < cols) epilogue_store(out, row * cols + col, col, acc[2 * h], e);
    if (col + 1 < cols) epilogue_store(out, row * cols + col + 1, col + 1, acc[2 * h + 1], e);
  }
}

// One stride phase of grad input (strides > 1): the input positions whose
// coordinates satisfy (i_j + p_j) mod s_j == phi_j, i.e. i_j = i0[j] + s_j t_j
// for t_j < E[j], and the only kernel taps that reach them, tk[j][0..nt[j]),
// those with k d_j == phi_j (mod s_j). Computing each phase as its own GEMM
// (K = nt0 nt1 nt2 Cout) skips the taps that would only add zeros.
constexpr int kPhaseMaxK = 8;  // kernel extent per axis the phase path supports
struct Phase {
  int i0[3], E[3], nt[3];
  int tk[3][kPhaseMaxK];
};

// Row m of a stride-phase GEMM: the input position (n, i0 + s*t) as a grad-input row.
__device__ __forceinline__ Row make_row_phase(const Geo& g, const Phase& ph, int64_t m, int64_t rows) {
  Row r;
  if (m >= rows) {
    r.base = -1;
    r.c[0] = r.c[1] = r.c[2] = 0;
    return r;
  }
  int t = int(m);
  const int t2 = t % ph.E[2];
  t /= ph.E[2];
  const int t1 = t % ph.E[1];
  t /= ph.E[1];
  const int t0 = t % ph.E[0];
  const int n = t / ph.E[0];
  r.base = n * g.O[0] * g.O[1] * g.O[2];
  r.c[0] = ph.i0[0] + g.s[0] * t0 + g.p[0];
  r.c[1] = ph.i0[1] + g.s[1] * t1 + g.p[1];
  r.c[2] = ph.i0[2] + g.s[2] * t2 + g.p[2];
  return r;
}
// Input position (flattened n, i1, i2, i3) of row m of a stride-phase GEMM.
__device__ __forceinline__ int64_t phase_row_to_input(const Geo& g, const Phase& ph, int m) {
  const int t2 = m % ph.E[2];
  m /= ph.E[2];
  const int t1 = m % ph.E[1];
  m /= ph.E[1];
  const int t0 = m % ph.E[0];
  const int n = m / ph.E[0];
  return ((int64_t(n) * g.D[0] + ph.i0[0] + g.s[0] * t0) * g.D[1] + ph.i0[1] + g.s[1] * t1) * g.D[2] + ph.i0[2] +
         g.s[2] * t2;
}

// ---- launch entry points (each returns false when the config is not eligible) ----
// Tensor-core implicit GEMM, forward (kDgrad false: A = x, B = w) or grad
// input (A = dy, B = WT). cfg indexes kTcConfigs. T: __half / __nv_bfloat16.
struct TcConfig {
  const char* name;
  int bm, bn;
};
constexpr int kNumTcConfigs = 4;
extern const TcConfig kTcConfigs[kNumTcConfigs];

// phase (grad input only, not pointwise): compute that stride phase's rows only.
template <class T>
void launch_tc_fwd_dgrad(int cfg, bool dgrad, bool pointwise, const Geo& g, const T* a, const T* b, T* out,
                         const Epilogue& e, cudaStream_t st, const Phase* phase = nullptr);
// Tensor-core grad weight into float32 partials part[split][Cout][K]; returns the split count used.
template <class T>
int launch_tc_wgrad(int cfg, bool pointwise, const Geo& g, const T* x, const T* dy, float* part, int splits,
                    cudaStream_t st);
// Stem (Cin == 1, taps <= kStemMaxK, 16-bit).
constexpr int kStemMaxK = 352;
// Dynamic shared memory of the stem forward kernel (128 + 64 rows of 360
// 16-bit elements + the tap table): above sm_86 / sm_89's 99 KiB opt-in limit,
// so the stem forward is only a candidate where the device allows it.
constexpr int kStemFwdSmem = (128 + 64) * (kStemMaxK + 8) * 2 + kStemMaxK * 3 * 4;
template <class T>
void launch_stem_fwd(const Geo& g, const T* x, const T* w, T* y, const Epilogue& e, cudaStream_t st);
template <class T>
void launch_stem_wgrad(const Geo& g, const T* x, const T* dy, float* part, int splits, cudaStream_t st);

// Faster SIMT implicit GEMM (128x128 tiles, 8x8 per thread; conv3d_cuda_simt.cu),
// any dtype and geometry: float32 / float64 and unaligned 16-bit shapes.
template <class T>
void launch_simt_fwd_dgrad(bool dgrad, const Geo& g, const T* a, const T* b, T* out, const Epilogue& e,
                           cudaStream_t st);
template <class T, class A>
void launch_simt_wgrad(const Geo& g, const T* x, const T* dy, A* part, int splits, cudaStream_t st);
// Generic SIMT implicit GEMM (any dtype, any geometry; 64x64 tiles, the simplest
// kernels, kept as the reference fallback). A = acc type (float or double).
template <class T>
void launch_generic_fwd_dgrad(bool dgrad, const Geo& g, const T* a, const T* b, T* out, const Epilogue& e,
                              cudaStream_t st);
template <class T, class A>
void launch_generic_wgrad(const Geo& g, const T* x, const T* dy, A* part, int splits, cudaStream_t st);
// WT[c, tap, co] = w[co, tap, c].
template <class T>
void launch_transpose_weight(const Geo& g, const T* w, T* wt, cudaStream_t st);
// part[split][co] = sums of dy over position chunks.
template <class T, class A>
void launch_bias_partials(const Geo& g, const T* dy, A* part, int splits, cudaStream_t st);
// out[i] = (accumulate ? out[i] : 0) + sum_s part[s * n + i], converted to O.
template <class A, class O>
void launch_finalize(const A* part, int splits, int64_t n, O* out, bool accumulate, cudaStream_t st);

// Split counts (deterministic, from the problem and the device's SM count).
int wgrad_splits(int64_t tiles_mn, int64_t reduction_steps, int64_t part_elems_per_split, int sms);

}  // namespace ds::convcuda
