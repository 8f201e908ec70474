// AVX-512 pieces of the GEMM (compiled with -mavx512f/bw/vl/dq -mfma; called
// only when simd_level() == AVX512).
//
// Micro-kernel 8 x 32 (MR x NR): 16 zmm accumulators; per k two 16-float
// loads of the packed B panel and 8 broadcasts from the 8 row streams of the A
// panel (row-major, so packing A is a copy) feed 16 FMAs. 16 independent
// accumulator chains cover the FMA latency (4 cycles) on two FMA ports; loads
// (10 per 16 FMAs) stay below the load ports' limit. NR = 32 matches the channel counts of the detector (64, 256) in the
// forward pass, MR = 8 divides them in the weight gradient. With KC = 256 the
// B micro-panel (32 KiB) lives in L1 while A panels stream from L2.
// Measured on the development machine (2-core Sapphire Rapids VM, 2 FMA units
// per core, ~215 GFLOP/s per core from the FMA loop): the kernel alone on
// cache-resident panels runs at 82-86% of the FMA loop; whole GEMMs at
// 60-75% single-threaded (see `detseg3d_bench gemm_kernel` / `gemm`). A
// 12 x 32 variant and a hand-written assembly k loop (fixed registers, no
// register copies) measured the same; FMAs with embedded broadcasts from
// memory (18 loads per 16 FMAs instead of 10) were slower (74%).
// micro_avx512_f32_rows is the same kernel reading the 8 A rows through
// pointers, so that A panels can be used where they lie (gemm.h).
#if defined(DETSEG3D_HAVE_X86_SIMD)
#include <immintrin.h>

// GCC 12 reports false "may be used uninitialized" inside its own AVX-512 headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "ops/gemm_kernels.h"

namespace ds::gemm::detail {

namespace {

// C tile (m x n of 8 x 32, row stride ldc) = / += the accumulators.
__attribute__((always_inline)) inline void store_tile(const __m512* c0, const __m512* c1, float* c, int64_t ldc, int m,
                                                      int n, bool acc) {
  if (m == 8 && n == 32) {
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      float* ci = c + i * ldc;
      __m512 v0 = c0[i], v1 = c1[i];
      if (acc) {
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(ci));
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(ci + 16));
      }
      _mm512_storeu_ps(ci, v0);
      _mm512_storeu_ps(ci + 16, v1);
    }
    return;
  }
  const __mmask16 k0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __mmask16 k1 = n >= 32 ? __mmask16(0xFFFF) : n > 16 ? __mmask16((1u << (n - 16)) - 1) : __mmask16(0);
  for (int i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    __m512 v0 = c0[i], v1 = c1[i];
    if (acc) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, ci));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, k0, v0);
    _mm512_mask_storeu_ps(ci + 16, k1, v1);
  }
}

}  // namespace

void micro_avx512_f32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool acc) {
  // Fetch the C tile while the k loop runs (it is usually far from L1).
  for (int i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + n - 1), _MM_HINT_T0);
  }
  // The k loop is written in assembly: GCC's register allocation of the
  // intrinsic version adds a register move for every other FMA. Rows of the A
  // panel are addressed as a + {0,1,2,4}*s, a3 + {0,2}*s, a6 + {0,1}*s (s = kc*4 bytes).
  __m512 c0[8], c1[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
  const float* a0 = a;
  const int64_t s1 = kc, s3 = 3 * kc, s5 = 5 * kc;
  const float *a1 = a0 + s1, *a3 = a0 + s3, *a5 = a0 + s5, *a7 = a0 + 7 * kc;
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      const __m512 b0 = _mm512_load_ps(b + 32 * u), b1 = _mm512_load_ps(b + 32 * u + 16);
      const float* ap[8] = {a0, a1, a1 + s1, a3, a3 + s1, a5, a5 + s1, a7};
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m512 av = _mm512_set1_ps(ap[i][k + u]);
        c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
      }
    }
    b += 128;
  }
  for (; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    const float* ap[8] = {a0, a1, a1 + s1, a3, a3 + s1, a5, a5 + s1, a7};
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i][k]);
      c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
    }
    b += 32;
  }
  store_tile(c0, c1, c, ldc, m, n, acc);
}

void micro_avx512_f32_rows(int64_t kc, const float* const* rows, const float* b, float* c, int64_t ldc, int m, int n,
                           bool acc) {
  // Same schedule as micro_avx512_f32, but row i of A is read at rows[i]
  // (e.g. straight from a convolution's input, skipping the A packing).
  for (int i = 0; i < m; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + n - 1), _MM_HINT_T0);
  }
  __m512 c0[8], c1[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
  const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3], *r4 = rows[4], *r5 = rows[5],
              *r6 = rows[6], *r7 = rows[7];
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      const __m512 b0 = _mm512_load_ps(b + 32 * u), b1 = _mm512_load_ps(b + 32 * u + 16);
      const float* ap[8] = {r0, r1, r2, r3, r4, r5, r6, r7};
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m512 av = _mm512_set1_ps(ap[i][k + u]);
        c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
      }
    }
    b += 128;
  }
  for (; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    const float* ap[8] = {r0, r1, r2, r3, r4, r5, r6, r7};
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i][k]);
      c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
    }
    b += 32;
  }
  store_tile(c0, c1, c, ldc, m, n, acc);
}

namespace {

// 8 rows x 16 columns -> 16 groups of 8 (column-major within the block).
inline void transpose_8x16(const float* const* r, int64_t k, float* dst) {
  // Load rows as 8 zmm, work in 256-bit halves: standard 8x8 transpose on each.
  __m512 x[8];
  for (int i = 0; i < 8; ++i) x[i] = _mm512_loadu_ps(r[i] + k);
  // Stage 1: interleave pairs.
  __m512 t0 = _mm512_unpacklo_ps(x[0], x[1]), t1 = _mm512_unpackhi_ps(x[0], x[1]);
  __m512 t2 = _mm512_unpacklo_ps(x[2], x[3]), t3 = _mm512_unpackhi_ps(x[2], x[3]);
  __m512 t4 = _mm512_unpacklo_ps(x[4], x[5]), t5 = _mm512_unpackhi_ps(x[4], x[5]);
  __m512 t6 = _mm512_unpacklo_ps(x[6], x[7]), t7 = _mm512_unpackhi_ps(x[6], x[7]);
  // Stage 2: 64-bit interleave.
  __m512 u0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  __m512 u1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  __m512 u2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
  __m512 u3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
  __m512 u4 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t4), _mm512_castps_pd(t6)));
  __m512 u5 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t4), _mm512_castps_pd(t6)));
  __m512 u6 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t5), _mm512_castps_pd(t7)));
  __m512 u7 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t5), _mm512_castps_pd(t7)));
  // Now in each 128-bit lane L (columns 4L..4L+3): u0 holds column 4L+0 for rows 0-3 (low
  // 128 of the pair) ... Stage 3: combine rows 0-3 (u0..u3) with rows 4-7 (u4..u7) per lane.
  // u0: lanes [c0 r0-3 | c4 r0-3 | c8 r0-3 | c12 r0-3], u4 the same for rows 4-7.
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i hi = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  auto comb = [&](__m512 a, __m512 b, __m512i idx) {
    return _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(a), idx, _mm512_castps_pd(b)));
  };
  // v = [col c rows 0-7 | col c+4 rows 0-7] etc.
  __m512 v0 = comb(u0, u4, lo), v1 = comb(u0, u4, hi);  // cols 0,4 | 8,12
  __m512 v2 = comb(u1, u5, lo), v3 = comb(u1, u5, hi);  // cols 1,5 | 9,13
  __m512 v3b = comb(u2, u6, lo), v4 = comb(u2, u6, hi);  // cols 2,6 | 10,14
  __m512 v5 = comb(u3, u7, lo), v6 = comb(u3, u7, hi);  // cols 3,7 | 11,15
  // Write 8-float groups for columns 0..15 in order.
  auto put = [&](int col, __m512 v, int half) {
    __m256 h = half ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v);
    _mm256_storeu_ps(dst + 8 * col, h);
  };
  put(0, v0, 0); put(4, v0, 1); put(8, v1, 0); put(12, v1, 1);
  put(1, v2, 0); put(5, v2, 1); put(9, v3, 0); put(13, v3, 1);
  put(2, v3b, 0); put(6, v3b, 1); put(10, v4, 0); put(14, v4, 1);
  put(3, v5, 0); put(7, v5, 1); put(11, v6, 0); put(15, v6, 1);
}

}  // namespace

void pack_rows_transposed_avx512(float* dst, const float* const* rows, int64_t kc, int w) {
  // Blocks of 8 rows; for w = 16/32 the blocks interleave inside each k group.
  int64_t k = 0;
  if (w == 8) {
    for (; k + 16 <= kc; k += 16) transpose_8x16(rows, k, dst + k * 8);
  } else {
    alignas(64) float tmp[16 * 8];
    for (; k + 16 <= kc; k += 16) {
      for (int g = 0; g < w; g += 8) {
        transpose_8x16(rows + g, k, tmp);
        for (int kk = 0; kk < 16; ++kk)
          _mm256_storeu_ps(dst + (k + kk) * w + g, _mm256_load_ps(tmp + 8 * kk));
      }
    }
  }
  for (; k < kc; ++k)
    for (int i = 0; i < w; ++i) dst[k * w + i] = rows[i][k];
}

void pack_a_trans8_avx512(float* dst, const float* src, int64_t lda, int64_t kc) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    const float* s = src + k * lda;
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lda), r2 = _mm256_loadu_ps(s + 2 * lda),
           r3 = _mm256_loadu_ps(s + 3 * lda), r4 = _mm256_loadu_ps(s + 4 * lda), r5 = _mm256_loadu_ps(s + 5 * lda),
           r6 = _mm256_loadu_ps(s + 6 * lda), r7 = _mm256_loadu_ps(s + 7 * lda);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(dst + 0 * kc + k, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + 1 * kc + k, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * kc + k, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * kc + k, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * kc + k, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * kc + k, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * kc + k, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * kc + k, _mm256_permute2f128_ps(s3, s7, 0x31));
  }
  for (; k < kc; ++k)
    for (int r = 0; r < 8; ++r) dst[r * kc + k] = src[k * lda + r];
}

void spread32_avx512(float* dst, int64_t dst_stride, const float* src, int64_t pieces) {
  for (int64_t q = 0; q < pieces; ++q, dst += dst_stride, src += 32) {
    _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
    _mm512_storeu_ps(dst + 16, _mm512_loadu_ps(src + 16));
  }
}

double fma_loop_avx512(int64_t iters) {
  // 16 named accumulators (an array would be kept on the stack by GCC).
  const __m512 m = _mm512_set1_ps(0.999999f), s = _mm512_set1_ps(1e-7f);
#define DS_ACC(i) __m512 a##i = _mm512_set1_ps(float(i) * 1e-3f);
#define DS_FMA(i) a##i = _mm512_fmadd_ps(a##i, m, s);
#define DS_ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
  DS_ALL(DS_ACC)
  for (int64_t it = 0; it < iters; ++it) {
    DS_ALL(DS_FMA)
  }
  __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  t = _mm512_add_ps(t, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                     _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
#undef DS_ACC
#undef DS_FMA
#undef DS_ALL
  volatile float sink = _mm512_reduce_add_ps(t);
  (void)sink;
  return double(iters) * 16 * 16 * 2;
}

}  // namespace ds::gemm::detail
#endif
