// Internal: implicit im2col matrices for the GEMM-based conv3d. Nothing is
// materialised; the packers read the source tensor while filling the GEMM's
// packed panels.
//
// The matrix X has one row per point of a row grid (n, r1, r2, r3) and one
// column per (tap j, channel c), k = j*C + c, with
//   X[(n,r), (j,c)] = src[n, r1*mul1 + off1[j], r2*mul2 + off2[j], r3*mul3 + off3[j], c]
// (zero outside the source volume). The forward convolution uses the output
// grid with mul = stride and off = k*dilation - padding; the input gradient
// uses one stride phase of the input grid with mul = 1 and the taps that hit
// that phase. Consecutive taps whose axis-3 offsets differ by one form a run
// of contiguous memory (tap count * C values), which the packers copy in one go.
#pragma once
#include <array>
#include <vector>

#include "ops/gemm.h"

namespace ds::conv_detail {

struct TapList {
  std::vector<std::array<int64_t, 3>> off;
  std::vector<int64_t> run_first, run_taps;  // runs of consecutive taps (see above)
  void build_runs();
  int64_t size() const { return int64_t(off.size()); }
};

template <class T>
struct Im2col {
  const T* src = nullptr;
  int64_t N = 0, S[3] = {0, 0, 0}, C = 0;  // source [N, S1, S2, S3, C]
  int64_t R[3] = {0, 0, 0}, mul[3] = {1, 1, 1};  // row grid and its multiplier
  const TapList* taps = nullptr;
  int64_t rows() const { return N * R[0] * R[1] * R[2]; }
  int64_t cols() const { return taps->size() * C; }
};

// A operand: X rows [i0, i0+mc) x columns [k0, k0+kc) (transposing pack).
template <class T>
struct Im2colA final : gemm::PackA<T> {
  Im2col<T> g;
  explicit Im2colA(const Im2col<T>& g_) : g(g_) {}
  void pack(T* dst, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr) const override;
  // In place when [k0, k0+kc) lies in one run of taps that is wholly inside
  // or wholly outside the volume for every row (e.g. Cin = 256, KC = 256:
  // every block is one tap); rows past i0+m point at zeros.
  bool rows(const T** rows, int64_t i0, int m, int64_t k0, int64_t kc, int mr) const override;
};

// B operand: B[m, k] = X[m, k]; rows of B are rows of X (the long GEMM
// reduction of the weight gradient), columns of B are X's columns.
template <class T>
struct Im2colB final : gemm::PackB<T> {
  Im2col<T> g;
  explicit Im2colB(const Im2col<T>& g_) : g(g_) {}
  void pack(T* dst, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const override;
};

}  // namespace ds::conv_detail
