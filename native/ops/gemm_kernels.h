// Internal: the per-ISA pieces of the GEMM (defined in gemm_kernel_avx2.cpp and
// gemm_kernel_avx512.cpp, compiled with those instruction sets). Call them only
// after checking simd_level(). On non-x86 builds they are not defined.
#pragma once
#include <cstdint>

namespace ds::gemm::detail {

// AVX-512: 8 x 32 float micro-kernel (16 zmm accumulators).
constexpr int kMrAvx512 = 8, kNrAvx512 = 32;
void micro_avx512_f32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool acc);
// The same with row i of the A panel at rows[i] (8 pointers, kc floats each).
void micro_avx512_f32_rows(int64_t kc, const float* const* rows, const float* b, float* c, int64_t ldc, int m, int n,
                           bool acc);
// dst[k*w + i] = rows[i][k] for w in {8, 16, 32} using in-register transposes.
void pack_rows_transposed_avx512(float* dst, const float* const* rows, int64_t kc, int w);
// dst[r*kc + k] = src[k*lda + r] for r < 8, k < kc: an 8-row A panel from a
// transposed (column-major) A, in 8x8 register transposes.
void pack_a_trans8_avx512(float* dst, const float* src, int64_t lda, int64_t kc);
// Runs `iters` iterations of 16 independent FMA chains of 16 floats; returns the float ops done.
double fma_loop_avx512(int64_t iters);
// dst + q*dst_stride gets src[32q, 32q+32) for q < pieces: spreads a
// contiguous row over consecutive 32-wide B panels (the weight-gradient packer).
void spread32_avx512(float* dst, int64_t dst_stride, const float* src, int64_t pieces);

// AVX2 + FMA: 6 x 16 float micro-kernel (12 ymm accumulators).
constexpr int kMrAvx2 = 6, kNrAvx2 = 16;
void micro_avx2_f32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool acc);
double fma_loop_avx2(int64_t iters);

}  // namespace ds::gemm::detail
