// AVX2 + FMA pieces of the GEMM (compiled with -mavx2 -mfma; called only when
// simd_level() >= AVX2).
//
// Micro-kernel 6 x 16 (MR x NR): 12 ymm accumulators + 2 B vectors + 1
// broadcast = 15 of the 16 ymm registers. Per k: 2 loads of packed B, 6
// broadcasts from the 6 row streams of the (row-major) A panel, 12 FMAs; 12 independent chains cover FMA latency on
// two ports. This is the classic Haswell-to-Zen register blocking; with
// 256-bit vectors it can reach at most half the AVX-512 peak of the
// development machine (it is the path for CPUs without AVX-512).
#if defined(DETSEG3D_HAVE_X86_SIMD)
#include <immintrin.h>

#include "ops/gemm_kernels.h"

namespace ds::gemm::detail {

void micro_avx2_f32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool acc) {
  for (int i = 0; i < m; ++i) {  // fetch the C tile while the k loop runs
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + n - 1), _MM_HINT_T0);
  }
  __m256 c0[6], c1[6];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
  }
  const float *a0 = a, *a2 = a + 2 * kc, *a4 = a + 4 * kc;  // 6 row streams of the A panel
  int64_t k = 0;
  for (; k + 2 <= kc; k += 2) {
#pragma GCC unroll 2
    for (int u = 0; u < 2; ++u) {
      const __m256 b0 = _mm256_load_ps(b + 16 * u), b1 = _mm256_load_ps(b + 16 * u + 8);
      const float* ap[6] = {a0, a0 + kc, a2, a2 + kc, a4, a4 + kc};
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        const __m256 av = _mm256_broadcast_ss(ap[i] + k + u);
        c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
        c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
      }
    }
    b += 32;
  }
  for (; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    const float* ap[6] = {a0, a0 + kc, a2, a2 + kc, a4, a4 + kc};
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const __m256 av = _mm256_broadcast_ss(ap[i] + k);
      c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
    }
    b += 16;
  }
  if (m == 6 && n == 16) {
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      float* ci = c + i * ldc;
      if (acc) {
        c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(ci));
        c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, c0[i]);
      _mm256_storeu_ps(ci + 8, c1[i]);
    }
    return;
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
  for (int i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    __m256 v0 = c0[i], v1 = c1[i];
    if (acc) {
      v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ci, m0));
      v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ci + 8, m1));
    }
    _mm256_maskstore_ps(ci, m0, v0);
    _mm256_maskstore_ps(ci + 8, m1, v1);
  }
}

double fma_loop_avx2(int64_t iters) {
  // 12 named accumulators (an array would be kept on the stack by GCC).
  const __m256 m = _mm256_set1_ps(0.999999f), s = _mm256_set1_ps(1e-7f);
#define DS_ACC(i) __m256 a##i = _mm256_set1_ps(float(i) * 1e-3f);
#define DS_FMA(i) a##i = _mm256_fmadd_ps(a##i, m, s);
#define DS_ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
  DS_ALL(DS_ACC)
  for (int64_t it = 0; it < iters; ++it) {
    DS_ALL(DS_FMA)
  }
  __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  t = _mm256_add_ps(t, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
#undef DS_ACC
#undef DS_FMA
#undef DS_ALL
  alignas(32) float out[8];
  _mm256_store_ps(out, t);
  volatile float sink = out[0];
  (void)sink;
  return double(iters) * 12 * 8 * 2;
}

}  // namespace ds::gemm::detail
#endif
