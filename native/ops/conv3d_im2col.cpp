// Implicit-im2col packers for the GEMM-based conv3d (see conv3d_im2col.h).
//
// Im2colA (forward, input gradient) fills the row-major A panels: each panel
// row is a handful of contiguous pieces of the source (one per run of taps),
// copied with memcpy, or zeros where the run leaves the volume. When a K
// block lies inside one run (Cin >= KC), Im2colA::rows hands the kernel
// pointers into the source instead, and nothing is copied.
// Im2colB (weight gradient) copies contiguous pieces of each row straight
// into the NR-wide B panels (with AVX-512, all whole panels of a run piece in
// one call). Neither needs a transpose.
#include "ops/conv3d_im2col.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/cpu_features.h"
#include "ops/gemm_kernels.h"

namespace ds::conv_detail {

void TapList::build_runs() {
  run_first.clear();
  run_taps.clear();
  for (int64_t j = 0; j < size(); ++j) {
    if (j > 0 && !run_first.empty()) {
      const auto& a = off[size_t(j - 1)];
      const auto& b = off[size_t(j)];
      if (a[0] == b[0] && a[1] == b[1] && b[2] == a[2] + 1) {
        ++run_taps.back();
        continue;
      }
    }
    run_first.push_back(j);
    run_taps.push_back(1);
  }
}

namespace {

struct RowPos {
  int64_t n, b[3];  // source coordinates of tap offset 0: r*mul
  bool valid;
};

template <class T>
inline RowPos decode(const Im2col<T>& g, int64_t m, bool valid) {
  RowPos p{0, {0, 0, 0}, valid};
  if (!valid) return p;
  const int64_t r3 = m % g.R[2];
  m /= g.R[2];
  const int64_t r2 = m % g.R[1];
  m /= g.R[1];
  const int64_t r1 = m % g.R[0];
  p.n = m / g.R[0];
  p.b[0] = r1 * g.mul[0];
  p.b[1] = r2 * g.mul[1];
  p.b[2] = r3 * g.mul[2];
  return p;
}

// Pointer to the `ntaps*C` values of run (first tap offset `o`) for row p, or
// nullptr when the whole run lies outside the volume; `clipped` is set when
// only part of it lies inside (the caller then assembles it with zeros).
template <class T>
inline const T* run_ptr(const Im2col<T>& g, const RowPos& p, const std::array<int64_t, 3>& o, int64_t ntaps,
                        bool* clipped) {
  *clipped = false;
  if (!p.valid) return nullptr;
  const int64_t s1 = p.b[0] + o[0], s2 = p.b[1] + o[1], s3 = p.b[2] + o[2];
  if (s1 < 0 || s1 >= g.S[0] || s2 < 0 || s2 >= g.S[1]) return nullptr;
  if (s3 + ntaps <= 0 || s3 >= g.S[2]) return nullptr;
  if (s3 < 0 || s3 + ntaps > g.S[2]) *clipped = true;
  return g.src + (((p.n * g.S[0] + s1) * g.S[1] + s2) * g.S[2] + s3) * g.C;
}

// Index of the run containing column k.
inline size_t run_of(const TapList& t, int64_t C, int64_t k) {
  const int64_t tap = k / C;
  auto it = std::upper_bound(t.run_first.begin(), t.run_first.end(), tap);
  return size_t(it - t.run_first.begin()) - 1;
}

}  // namespace

template <class T>
void Im2colA<T>::pack(T* dst, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr) const {
  // Panel rows are X's rows: each is a few contiguous run pieces (or zeros).
  const TapList& tl = *g.taps;
  const size_t first_run = run_of(tl, g.C, k0);
  for (int64_t p = 0; p * mr < mc; ++p) {
    const int64_t base = i0 + p * mr;
    for (int i = 0; i < mr; ++i) {
      T* d = dst + (p * mr + i) * kc;
      if (base + i >= i0 + mc) {
        std::fill(d, d + kc, T(0));
        continue;
      }
      const RowPos pos = decode(g, base + i, true);
      for (size_t u = first_run; u < tl.run_first.size(); ++u) {
        const int64_t kb = tl.run_first[u] * g.C, klen = tl.run_taps[u] * g.C;
        const int64_t s = std::max(k0, kb), e = std::min(k0 + kc, kb + klen);
        if (s >= e) break;
        const auto& o = tl.off[size_t(tl.run_first[u])];
        bool clipped;
        const T* ptr = run_ptr(g, pos, o, tl.run_taps[u], &clipped);
        T* dd = d + (s - k0);
        if (!ptr) {
          std::fill(dd, dd + (e - s), T(0));
        } else if (!clipped) {
          const T* src = ptr + (s - kb);
          if (e - s <= 16) {  // short runs (the stem: 7 taps x 1 channel): no call
            for (int64_t c = 0; c < e - s; ++c) dd[c] = src[c];
          } else {
            std::memcpy(dd, src, sizeof(T) * size_t(e - s));
          }
        } else {
          const int64_t s3 = pos.b[2] + o[2];
          for (int64_t kk = s - kb; kk < e - kb;) {  // tap by tap inside the run
            const int64_t t = kk / g.C, c0 = kk % g.C, len = std::min(g.C - c0, e - kb - kk);
            const int64_t x = s3 + t;
            T* out = d + (kb + kk - k0);
            if (x < 0 || x >= g.S[2])
              std::fill(out, out + len, T(0));
            else
              std::memcpy(out, ptr + kk, sizeof(T) * size_t(len));
            kk += len;
          }
        }
      }
    }
  }
}

template <class T>
bool Im2colA<T>::rows(const T** rows, int64_t i0, int m, int64_t k0, int64_t kc, int mr) const {
  const TapList& tl = *g.taps;
  const size_t u = run_of(tl, g.C, k0);
  const int64_t kb = tl.run_first[u] * g.C;
  if (k0 + kc > kb + tl.run_taps[u] * g.C) return false;  // the block spans two runs
  const auto& o = tl.off[size_t(tl.run_first[u])];
  // Taps [ta, tb] of the run hold the block: only they must be all inside or all outside.
  const int64_t ta = (k0 - kb) / g.C, tb = (k0 + kc - 1 - kb) / g.C;
  const T* zeros = gemm::zero_row<T>(kc);
  for (int i = 0; i < mr; ++i) {
    rows[i] = zeros;
    if (i >= m) continue;
    const RowPos p = decode(g, i0 + i, true);
    const int64_t s1 = p.b[0] + o[0], s2 = p.b[1] + o[1], s3 = p.b[2] + o[2];
    if (s1 < 0 || s1 >= g.S[0] || s2 < 0 || s2 >= g.S[1] || s3 + tb < 0 || s3 + ta >= g.S[2]) continue;
    if (s3 + ta < 0 || s3 + tb >= g.S[2]) return false;  // partly outside: pack
    rows[i] = g.src + ((((p.n * g.S[0] + s1) * g.S[1] + s2) * g.S[2] + s3) * g.C + (k0 - kb));
  }
  return true;
}

template <class T>
void Im2colB<T>::pack(T* dst, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const {
  const TapList& tl = *g.taps;
  const size_t first_run = run_of(tl, g.C, j0);
  const int64_t npan = (nc + nr - 1) / nr;
#if defined(DETSEG3D_HAVE_X86_SIMD)
  // Whole 32-wide panel rows of a run piece go in one AVX-512 call.
  const bool spread = std::is_same_v<T, float> && nr == 32 && simd_level() == SimdLevel::AVX512;
#endif
  if (nc % nr) {  // zero the padding columns of the last panel
    T* last = dst + (npan - 1) * nr * kc;
    for (int64_t m = 0; m < kc; ++m) std::fill(last + m * nr + nc % nr, last + (m + 1) * nr, T(0));
  }
  for (int64_t m = 0; m < kc; ++m) {
    const RowPos p = decode(g, k0 + m, true);
    for (size_t u = first_run; u < tl.run_first.size(); ++u) {
      const int64_t kb = tl.run_first[u] * g.C, klen = tl.run_taps[u] * g.C;
      const int64_t s = std::max(j0, kb), e = std::min(j0 + nc, kb + klen);
      if (s >= e) break;
      const auto& o = tl.off[size_t(tl.run_first[u])];
      bool clipped;
      const T* ptr = run_ptr(g, p, o, tl.run_taps[u], &clipped);
      for (int64_t col = s; col < e;) {
        const int64_t q = (col - j0) / nr, within = (col - j0) % nr;
        const int64_t len = std::min(e - col, nr - within);
        T* d = dst + q * nr * kc + m * nr + within;
        if (!ptr) {
          std::fill(d, d + len, T(0));
        } else if (!clipped) {
          const T* src = ptr + (col - kb);
#if defined(DETSEG3D_HAVE_X86_SIMD)
          if constexpr (std::is_same_v<T, float>) {
            if (spread && within == 0 && e - col >= 32) {  // all whole panels of this run piece at once
              const int64_t pieces = (e - col) / 32;
              gemm::detail::spread32_avx512(d, nr * kc, src, pieces);
              col += pieces * 32;
              continue;
            }
          }
#endif
          if (len == 32) {  // the common full AVX-512 panel row: fixed-size, inlined copy
            for (int c = 0; c < 32; ++c) d[c] = src[c];
          } else {
            std::memcpy(d, src, sizeof(T) * size_t(len));
          }
        } else {
          const int64_t s3 = p.b[2] + o[2];
          for (int64_t kk = col - kb; kk < col - kb + len;) {  // tap by tap inside the piece
            const int64_t t = kk / g.C, n = std::min(g.C - kk % g.C, col - kb + len - kk), x = s3 + t;
            T* out = d + (kk - (col - kb));
            if (x < 0 || x >= g.S[2])
              std::fill(out, out + n, T(0));
            else
              std::memcpy(out, ptr + kk, sizeof(T) * size_t(n));
            kk += n;
          }
        }
        col += len;
      }
    }
  }
}

template struct Im2colA<float>;
template struct Im2colA<double>;
template struct Im2colB<float>;
template struct Im2colB<double>;

}  // namespace ds::conv_detail
