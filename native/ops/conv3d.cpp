// conv3d on the CPU as GEMMs over implicit im2col matrices (see gemm.h and
// conv3d_im2col.h):
//   forward      Y[M, Cout]  = X[M, K] · W[Cout, K]^T      M = N*O1*O2*O3, K = taps*Cin
//   grad weight  dW[Cout, K] = dY^T · X                    (reduction over M)
//   grad input   per stride phase r: dX_r = G_r · W_r      (G_r gathers dY)
// 1x1x1 convolutions with stride 1 and no padding are plain GEMMs on the
// tensors. Nothing of size M x K is ever allocated; temporaries come from
// gemm::ScratchBlock (no page faults per call).
// Measured (2-core AVX-512 VM, benchmarks/conv3d.js, % of the FMA peak per
// CPU-second): 3x3x3 256->256 fwd / grad input / grad weight 72 / 70 / 64%,
// 64->64 62 / 63 / 54%, 1x1x1 256->64 41 / 22 / 39%, stem 7x7x7 1->64
// forward 29%, grad weight 26%; the seed network's 64x64x32 training step
// spends ~1.6 s of 1.8 s in conv3d, 75% of it in the 16^3 256->256 layers.
#include "ops/conv3d.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/conv3d_cuda.h"
#include "ops/conv3d_im2col.h"
#include "ops/conv3d_narrow.h"
#include "ops/conv3d_winograd.h"
#include "ops/gemm.h"

namespace ds {

std::array<int64_t, 3> conv3d_output_size(const Tensor& x, const Tensor& w, const Conv3dParams& p) {
  check_dims(x, 5, "conv3d input", "[N, D1, D2, D3, Cin]");
  check_dims(w, 5, "conv3d weight", "[Cout, k1, k2, k3, Cin]");
  DS_CHECK(x.size(4) == w.size(4), "conv3d: input has ", x.size(4), " channels but the weight expects ", w.size(4),
           " (weight ", shape_str(w.shape()), ", layout [Cout, k1, k2, k3, Cin])");
  std::array<int64_t, 3> o{};
  for (int i = 0; i < 3; ++i) {
    DS_CHECK(p.stride[i] >= 1, "conv3d: stride must be >= 1 on every axis, got ", p.stride[i], " on axis ", i);
    DS_CHECK(p.dilation[i] >= 1, "conv3d: dilation must be >= 1 on every axis, got ", p.dilation[i], " on axis ", i);
    DS_CHECK(p.padding[i] >= 0, "conv3d: padding must be >= 0 on every axis, got ", p.padding[i], " on axis ", i);
    DS_CHECK(w.size(1 + i) >= 1, "conv3d: kernel size must be >= 1 on every axis, got weight ", shape_str(w.shape()));
    DS_CHECK(x.size(1 + i) >= 1, "conv3d: input spatial size must be >= 1 on every axis, got input ",
             shape_str(x.shape()));
    int64_t span = p.dilation[i] * (w.size(1 + i) - 1) + 1;
    int64_t padded = x.size(1 + i) + 2 * p.padding[i];
    DS_CHECK(padded >= span, "conv3d: output size would be < 1 on axis ", i, ": input ", x.size(1 + i),
             " + 2*padding ", p.padding[i], " is smaller than the dilated kernel extent ", span);
    o[i] = (padded - span) / p.stride[i] + 1;
  }
  DS_CHECK(x.size(0) >= 1 && x.size(4) >= 1 && w.size(0) >= 1, "conv3d: batch and channel counts must be >= 1, got input ",
           shape_str(x.shape()), " and weight ", shape_str(w.shape()));
  return o;
}

namespace {

struct Geo {
  int64_t N, D[3], Ci, Co, K[3], O[3];
  Conv3dParams p;
};

Geo geometry(const Tensor& x, const Tensor& w, const Conv3dParams& p) {
  auto o = conv3d_output_size(x, w, p);
  Geo g;
  g.N = x.size(0);
  g.Ci = x.size(4);
  g.Co = w.size(0);
  for (int i = 0; i < 3; ++i) {
    g.D[i] = x.size(1 + i);
    g.K[i] = w.size(1 + i);
    g.O[i] = o[i];
  }
  g.p = p;
  return g;
}

using conv_detail::Im2col;
using conv_detail::Im2colA;
using conv_detail::Im2colB;
using conv_detail::TapList;

bool is_pointwise(const Geo& g) {
  for (int i = 0; i < 3; ++i)
    if (g.K[i] != 1 || g.p.stride[i] != 1 || g.p.padding[i] != 0) return false;
  return true;
}

int64_t rows_of(const Geo& g) { return g.N * g.O[0] * g.O[1] * g.O[2]; }
int64_t taps_of(const Geo& g) { return g.K[0] * g.K[1] * g.K[2]; }

// Forward taps in weight order (k1, k2, k3): offset k*dilation - padding.
TapList forward_taps(const Geo& g) {
  TapList t;
  for (int64_t a = 0; a < g.K[0]; ++a)
    for (int64_t b = 0; b < g.K[1]; ++b)
      for (int64_t c = 0; c < g.K[2]; ++c)
        t.off.push_back({a * g.p.dilation[0] - g.p.padding[0], b * g.p.dilation[1] - g.p.padding[1],
                         c * g.p.dilation[2] - g.p.padding[2]});
  t.build_runs();
  return t;
}

template <class T>
Im2col<T> input_matrix(const Geo& g, const T* x, const TapList& taps) {
  Im2col<T> m;
  m.src = x;
  m.N = g.N;
  m.C = g.Ci;
  for (int i = 0; i < 3; ++i) {
    m.S[i] = g.D[i];
    m.R[i] = g.O[i];
    m.mul[i] = g.p.stride[i];
  }
  m.taps = &taps;
  return m;
}

// Few input channels (the stem, Cin = 1): fold the (k2, k3) taps into channels,
//   X2[n, i1, o2, o3, (k2, k3, c)] = x[n, i1, o2*s2 - p2 + k2*d2, o3*s3 - p3 + k3*d3, c]  (0 outside),
// which turns the layer into a K1 x 1 x 1 convolution with Cin' = K2*K3*Cin and
// the same weights (w[co, k1, k2, k3, c] is w'[co, k1, 0, 0, (k2, k3, c)]).
// Each im2col row is then K1 runs of Cin' values instead of K1*K2 runs of
// K3*Cin, which makes packing 7x cheaper for the 7x7x7 stem. X2 holds
// K2*K3*Cin values per output position of a plane; the fold is skipped when
// that would exceed 64 Mi elements. The folded tensor goes into `fold_buf`.
template <class T>
bool fold_taps(const Geo& g, const T* x, gemm::ScratchBlock& fold_buf, const T** folded, Geo* out) {
  const int64_t cin2 = g.K[1] * g.K[2] * g.Ci;
  if (g.Ci > 4 || g.K[1] * g.K[2] < 4) return false;
  const int64_t lines = g.N * g.D[0] * g.O[1];
  if (lines * g.O[2] * cin2 > (int64_t(1) << 26)) return false;
  T* buf = fold_buf.get<T>(size_t(lines * g.O[2] * cin2));
  *folded = buf;
  parallel_for(0, lines, 4, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l) {
      const int64_t o2 = l % g.O[1], nd = l / g.O[1];  // nd = n * D1 + i1
      T* d = buf + l * g.O[2] * cin2;
      for (int64_t o3 = 0; o3 < g.O[2]; ++o3)
        for (int64_t k2 = 0; k2 < g.K[1]; ++k2) {
          const int64_t i2 = o2 * g.p.stride[1] - g.p.padding[1] + k2 * g.p.dilation[1];
          for (int64_t k3 = 0; k3 < g.K[2]; ++k3, d += g.Ci) {
            const int64_t i3 = o3 * g.p.stride[2] - g.p.padding[2] + k3 * g.p.dilation[2];
            if (i2 < 0 || i2 >= g.D[1] || i3 < 0 || i3 >= g.D[2])
              std::fill(d, d + g.Ci, T(0));
            else
              std::copy_n(x + ((nd * g.D[1] + i2) * g.D[2] + i3) * g.Ci, g.Ci, d);
          }
        }
    }
  });
  Geo f = g;
  f.D[1] = g.O[1];
  f.D[2] = g.O[2];
  f.Ci = cin2;
  f.K[1] = f.K[2] = 1;
  f.p.stride = {g.p.stride[0], 1, 1};
  f.p.padding = {g.p.padding[0], 0, 0};
  f.p.dilation = {g.p.dilation[0], 1, 1};
  *out = f;
  return true;
}

// The few-output-channel path (conv3d_narrow.h) for stride-1 problems it suits, or null.
bool narrow_geo(const Geo& g, char pass, conv_narrow::Geo* n) {
  for (int i = 0; i < 3; ++i)
    if (g.p.stride[i] != 1) return false;
  n->N = g.N;
  n->Ci = g.Ci;
  n->Co = g.Co;
  for (int i = 0; i < 3; ++i) {
    n->D[i] = g.D[i];
    n->K[i] = g.K[i];
    n->O[i] = g.O[i];
    n->pad[i] = g.p.padding[i];
    n->dil[i] = g.p.dilation[i];
  }
  return conv_narrow::use(pass, *n);
}

template <class T>
void forward_gemm(const Geo& g, const T* x, const T* w, const T* b, T* y, bool acc) {
  if (conv_narrow::Geo ng; narrow_geo(g, 'f', &ng)) return conv_narrow::forward<T>(ng, x, w, b, y, acc);
  {
    gemm::ScratchBlock buf;
    const T* folded;
    Geo f;
    if (fold_taps(g, x, buf, &folded, &f)) return forward_gemm(f, folded, w, b, y, acc);
  }
  const int64_t M = rows_of(g), K = taps_of(g) * g.Ci;
  if (b) {  // y = bias (or y += bias), then the GEMM accumulates
    parallel_for(0, M, 256, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        T* yr = y + r * g.Co;
        if (acc)
          for (int64_t c = 0; c < g.Co; ++c) yr[c] += b[c];
        else
          std::copy(b, b + g.Co, yr);
      }
    });
  }
  const bool gacc = acc || b != nullptr;
  gemm::MatrixB<T> wt(w, K, /*trans=*/true);  // B[k, co] = w[co, k]
  if (is_pointwise(g)) {
    gemm::MatrixA<T> a(x, g.Ci);
    gemm::gemm<T>(M, g.Co, K, a, wt, y, g.Co, gacc);
    return;
  }
  TapList taps = forward_taps(g);
  Im2colA<T> a(input_matrix(g, x, taps));
  gemm::gemm<T>(M, g.Co, K, a, wt, y, g.Co, gacc);
}

template <class T>
void grad_bias(const Geo& g, const T* dy, T* db, bool acc) {
  const int64_t M = rows_of(g);
  const int nt = std::max(1, std::min<int>(num_threads(), int((M + 1023) / 1024)));
  std::vector<double> part(size_t(nt) * size_t(g.Co), 0.0);
  parallel_run(nt, [&](int tid, int n) {
    double* acc = part.data() + size_t(tid) * size_t(g.Co);
    for (int64_t r = M * tid / n; r < M * (tid + 1) / n; ++r)
      for (int64_t c = 0; c < g.Co; ++c) acc[c] += double(dy[r * g.Co + c]);
  });
  for (int64_t c = 0; c < g.Co; ++c) {
    double s = 0;
    for (int t = 0; t < nt; ++t) s += part[size_t(t) * size_t(g.Co) + size_t(c)];
    db[c] = acc ? T(double(db[c]) + s) : T(s);
  }
}

// dW[Cout, K] = dY^T [Cout, M] · X[M, K] (implicit im2col as the B operand).
template <class T>
void grad_weight(const Geo& g, const T* x, const T* dy, T* dw, bool acc) {
  if (conv_narrow::Geo ng; narrow_geo(g, 'w', &ng)) return conv_narrow::grad_weight<T>(ng, x, dy, dw, acc);
  {
    gemm::ScratchBlock buf;
    const T* folded;
    Geo f;
    if (fold_taps(g, x, buf, &folded, &f)) return grad_weight(f, folded, dy, dw, acc);
  }
  const int64_t M = rows_of(g), K = taps_of(g) * g.Ci;
  // dY^T once, so that every thread's A packing is a plain row copy (packing
  // the transpose on the fly costs as much as the GEMM itself for 1x1x1 layers).
  gemm::ScratchBlock dyt_buf;
  T* dyt = dyt_buf.get<T>(size_t(M * g.Co));
  parallel_for(0, (M + 63) / 64, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * 64, r1 = std::min(M, r0 + 64);
      for (int64_t c = 0; c < g.Co; ++c) {
        T* d = dyt + c * M;
        for (int64_t r = r0; r < r1; ++r) d[r] = dy[r * g.Co + c];
      }
    }
  });
  gemm::MatrixA<T> a(dyt, M);
  if (is_pointwise(g)) {
    gemm::MatrixB<T> b(x, g.Ci);
    gemm::gemm<T>(g.Co, K, M, a, b, dw, K, acc);
    return;
  }
  TapList taps = forward_taps(g);
  Im2colB<T> b(input_matrix(g, x, taps));
  gemm::gemm<T>(g.Co, K, M, a, b, dw, K, acc);
}

// B operand of a grad-input phase, read straight from the weights:
//   B[(j, co), ci] = w[co, tap[j], ci]     (j over the phase's taps)
// Each B row is Ci contiguous weights, so packing is a copy of NR-wide pieces;
// no reordered copy of the weights (7 MiB for 3x3x3 256->256) is made per call.
template <class T>
struct TapWeightB final : gemm::PackB<T> {
  const T* w;
  int64_t taps_all, Co, Ci;
  const int64_t* tap;  // weight tap index of phase tap j
  TapWeightB(const T* w_, int64_t taps_all_, int64_t co, int64_t ci, const int64_t* tap_)
      : w(w_), taps_all(taps_all_), Co(co), Ci(ci), tap(tap_) {}
  void pack(T* dst, int64_t j0, int64_t nc, int64_t k0, int64_t kc, int nr) const override {
    for (int64_t q = 0; q * nr < nc; ++q) {
      const int cnt = int(std::min<int64_t>(nr, nc - q * nr));
      T* d = dst + q * nr * kc;
      for (int64_t k = k0; k < k0 + kc; ++k, d += nr) {
        const int64_t j = k / Co, co = k - j * Co;
        const T* src = w + (co * taps_all + tap[j]) * Ci + j0 + q * nr;
        if (cnt == 32) {  // the full AVX-512 panel row: fixed-size, inlined copy
          for (int c = 0; c < 32; ++c) d[c] = src[c];
        } else {
          for (int c = 0; c < cnt; ++c) d[c] = src[c];
          for (int c = cnt; c < nr; ++c) d[c] = T(0);
        }
      }
    }
  }
};

inline int64_t floor_mod(int64_t a, int64_t b) { return ((a % b) + b) % b; }

// dX for few input channels (the stem, Cin = 1): a GEMM with N = Cin would waste
// most of each micro-tile, so compute dCol[m, (tap, c)] = dY[m, :] · W[:, tap, c]
// (N = taps*Cin) for a chunk of rows and scatter-add it into dX (col2im).
// Threads scatter into disjoint input planes (n, i1), so no two write the same element.
template <class T>
void grad_input_col2im(const Geo& g, const T* w, const T* dy, T* dx, bool acc) {
  const int64_t M = rows_of(g), K = taps_of(g) * g.Ci;
  if (!acc) std::fill(dx, dx + g.N * g.D[0] * g.D[1] * g.D[2] * g.Ci, T(0));
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(M, (int64_t(1) << 21) / K));
  gemm::ScratchBlock col_buf;
  T* col = col_buf.get<T>(size_t(chunk * K));
  const int64_t O12 = g.O[1] * g.O[2];
  for (int64_t m0 = 0; m0 < M; m0 += chunk) {
    const int64_t mc = std::min(chunk, M - m0);
    gemm::gemm_matrix<T>(false, false, mc, K, g.Co, dy + m0 * g.Co, g.Co, w, K, col, K, false);
    parallel_for(0, g.N * g.D[0], 1, [&](int64_t p0, int64_t p1) {
      for (int64_t m = m0; m < m0 + mc; ++m) {
        const int64_t o3 = m % g.O[2], o2 = (m / g.O[2]) % g.O[1], o1 = (m / O12) % g.O[0];
        const int64_t n = m / (O12 * g.O[0]);
        const T* cm = col + (m - m0) * K;
        for (int64_t a = 0; a < g.K[0]; ++a) {
          const int64_t i1 = o1 * g.p.stride[0] - g.p.padding[0] + a * g.p.dilation[0];
          const int64_t plane = n * g.D[0] + i1;
          if (i1 < 0 || i1 >= g.D[0] || plane < p0 || plane >= p1) continue;
          for (int64_t b = 0; b < g.K[1]; ++b) {
            const int64_t i2 = o2 * g.p.stride[1] - g.p.padding[1] + b * g.p.dilation[1];
            if (i2 < 0 || i2 >= g.D[1]) continue;
            T* line = dx + (plane * g.D[1] + i2) * g.D[2] * g.Ci;
            const T* ck = cm + (a * g.K[1] + b) * g.K[2] * g.Ci;
            for (int64_t c3 = 0; c3 < g.K[2]; ++c3) {
              const int64_t i3 = o3 * g.p.stride[2] - g.p.padding[2] + c3 * g.p.dilation[2];
              if (i3 < 0 || i3 >= g.D[2]) continue;
              T* d = line + i3 * g.Ci;
              const T* sv = ck + c3 * g.Ci;
              for (int64_t c = 0; c < g.Ci; ++c) d[c] += sv[c];
            }
          }
        }
      }
    });
  }
}

// dX by stride phases. Input positions i = r + s*j (per axis, phase r < s)
// receive dY[o] * W[tap] exactly for the taps with (r + pad - tap*dil) % s == 0,
// at o = j + (r + pad - tap*dil) / s. Each phase is one GEMM:
//   dX_r[M_r, Cin] = G_r[M_r, taps_r*Cout] · W_r[taps_r*Cout, Cin]
// with G_r the implicit gather from dY. Stride 1 is one phase written straight
// into dX (the classic "convolve padded dY with flipped weights").
template <class T>
void grad_input(const Geo& g, const T* w, const T* dy, T* dx, bool acc) {
  const int64_t taps_all = taps_of(g);
  if (is_pointwise(g)) {  // dX[M, Cin] = dY[M, Cout] · W[Cout, Cin]
    gemm::gemm_matrix<T>(false, false, rows_of(g), g.Ci, g.Co, dy, g.Co, w, g.Ci, dx, g.Ci, acc);
    return;
  }
  if (g.Ci < 8) {
    grad_input_col2im(g, w, dy, dx, acc);
    return;
  }
  const int64_t* s = g.p.stride.data();
  const bool unit = s[0] == 1 && s[1] == 1 && s[2] == 1;
  const int64_t in_elems = g.N * g.D[0] * g.D[1] * g.D[2] * g.Ci;
  if (!unit && !acc) std::fill(dx, dx + in_elems, T(0));
  std::vector<int64_t> tap_idx;
  gemm::ScratchBlock tmp_buf;
  for (int64_t r1 = 0; r1 < s[0]; ++r1)
    for (int64_t r2 = 0; r2 < s[1]; ++r2)
      for (int64_t r3 = 0; r3 < s[2]; ++r3) {
        const int64_t r[3] = {r1, r2, r3};
        int64_t R[3];
        bool empty = false;
        for (int a = 0; a < 3; ++a) {
          R[a] = r[a] < g.D[a] ? (g.D[a] - r[a] + s[a] - 1) / s[a] : 0;
          empty |= R[a] == 0;
        }
        if (empty) continue;
        // Taps hitting this phase, ordered by offset so axis-3 neighbours form runs.
        struct Tap { std::array<int64_t, 3> off; int64_t idx; };
        std::vector<Tap> hit;
        for (int64_t a = 0; a < g.K[0]; ++a)
          for (int64_t b = 0; b < g.K[1]; ++b)
            for (int64_t c = 0; c < g.K[2]; ++c) {
              const int64_t k[3] = {a, b, c};
              std::array<int64_t, 3> off{};
              bool ok = true;
              for (int ax = 0; ax < 3 && ok; ++ax) {
                const int64_t num = r[ax] + g.p.padding[ax] - k[ax] * g.p.dilation[ax];
                ok = floor_mod(num, s[ax]) == 0;
                off[ax] = ok ? (num - floor_mod(num, s[ax])) / s[ax] : 0;
              }
              if (ok) hit.push_back({off, (a * g.K[1] + b) * g.K[2] + c});
            }
        const int64_t Mr = g.N * R[0] * R[1] * R[2];
        if (hit.empty()) continue;  // dX stays zero at these positions
        std::sort(hit.begin(), hit.end(), [](const Tap& x, const Tap& y) { return x.off < y.off; });
        TapList taps;
        for (const Tap& t : hit) taps.off.push_back(t.off);
        taps.build_runs();
        const int64_t nt = int64_t(hit.size()), Kr = nt * g.Co;
        tap_idx.clear();
        for (const Tap& t : hit) tap_idx.push_back(t.idx);
        Im2col<T> m;
        m.src = dy;
        m.N = g.N;
        m.C = g.Co;
        for (int a = 0; a < 3; ++a) {
          m.S[a] = g.O[a];
          m.R[a] = R[a];
          m.mul[a] = 1;
        }
        m.taps = &taps;
        Im2colA<T> A(m);
        TapWeightB<T> B(w, taps_all, g.Co, g.Ci, tap_idx.data());
        if (unit) {
          gemm::gemm<T>(Mr, g.Ci, Kr, A, B, dx, g.Ci, acc);
          continue;
        }
        T* tmp = tmp_buf.get<T>(size_t(Mr * g.Ci));
        gemm::gemm<T>(Mr, g.Ci, Kr, A, B, tmp, g.Ci, false);
        parallel_for(0, g.N * R[0] * R[1], 16, [&](int64_t l0, int64_t l1) {
          for (int64_t l = l0; l < l1; ++l) {  // one (n, j1, j2) line of the phase
            const int64_t j2 = l % R[1], j1 = (l / R[1]) % R[0], n = l / (R[1] * R[0]);
            const int64_t i1 = r[0] + s[0] * j1, i2 = r[1] + s[1] * j2;
            for (int64_t j3 = 0; j3 < R[2]; ++j3) {
              const int64_t i3 = r[2] + s[2] * j3;
              const T* src = tmp + (l * R[2] + j3) * g.Ci;
              T* dst = dx + (((n * g.D[0] + i1) * g.D[1] + i2) * g.D[2] + i3) * g.Ci;
              if (acc)
                for (int64_t c = 0; c < g.Ci; ++c) dst[c] += src[c];
              else
                std::copy(src, src + g.Ci, dst);
            }
          }
        });
      }
}

}  // namespace

namespace {

Geo check_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p) {
  check_cpu(x, "conv3d input");
  check_cpu(w, "conv3d weight");
  check_float(x, "conv3d input");
  check_same_dtype(x, w, "conv3d input", "weight");
  Geo g = geometry(x, w, p);
  if (bias.defined()) {
    check_cpu(bias, "conv3d bias");
    check_same_dtype(x, bias, "conv3d input", "bias");
    DS_CHECK(bias.dim() == 1 && bias.size(0) == g.Co, "conv3d: bias must have shape [", g.Co, "], got ",
             bias.describe());
  }
  return g;
}

Geo check_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv3dParams& p) {
  check_cpu(x, "conv3d input");
  check_cpu(w, "conv3d weight");
  check_cpu(dy, "conv3d output gradient");
  check_float(x, "conv3d input");
  check_same_dtype(x, w, "conv3d input", "weight");
  check_same_dtype(x, dy, "conv3d input", "output gradient");
  Geo g = geometry(x, w, p);
  Shape expect{g.N, g.O[0], g.O[1], g.O[2], g.Co};
  DS_CHECK(dy.shape() == expect, "conv3d backward: output gradient must have shape ", shape_str(expect),
           " (the forward output's shape), got ", shape_str(dy.shape()));
  return g;
}

void check_out(const Tensor& t, const Shape& shape, DType dt, const char* what) {
  check_cpu(t, what);
  DS_CHECK(t.dtype() == dt && t.shape() == shape, what, " must be ", dtype_name(dt), shape_str(shape), ", got ",
           t.describe());
}

// The Winograd description of a float32 problem (conv3d_winograd.h decides eligibility).
winograd::Problem winograd_problem(const Geo& g) {
  winograd::Problem pr;
  pr.N = g.N;
  pr.Ci = g.Ci;
  pr.Co = g.Co;
  for (int i = 0; i < 3; ++i) {
    pr.D[i] = g.D[i];
    pr.K[i] = g.K[i];
    pr.O[i] = g.O[i];
    pr.stride[i] = g.p.stride[i];
    pr.dilation[i] = g.p.dilation[i];
    pr.pad[i] = g.p.padding[i];
  }
  return pr;
}

// The innermost live Conv3dWeightReuse scope's cache on this thread (or null).
thread_local winograd::WeightCache* t_weight_cache = nullptr;

void run_forward(const Geo& g, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, bool acc) {
  if (x.dtype() == DType::Float32) {
    const winograd::Problem pr = winograd_problem(g);
    winograd::WeightCache* cache = t_weight_cache;
    if (winograd::use(winograd::Pass::Forward, pr, cache != nullptr)) {
      winograd::forward(pr, x.data<float>(), w.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                        y.data<float>(), acc, cache);
      return;
    }
    forward_gemm<float>(g, x.data<float>(), w.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                        y.data<float>(), acc);
  } else {
    forward_gemm<double>(g, x.data<double>(), w.data<double>(), bias.defined() ? bias.data<double>() : nullptr,
                         y.data<double>(), acc);
  }
}

void run_backward(const Geo& g, const Tensor& x, const Tensor& w, const Tensor& dy, Conv3dGrads& r, bool acc) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if (r.grad_bias.defined()) grad_bias<T>(g, dy.data<T>(), r.grad_bias.data<T>(), acc);
    bool wino_weight = false, wino_input = false;
    const winograd::Problem pr = winograd_problem(g);
    if constexpr (std::is_same_v<T, float>) {
      wino_weight = r.grad_weight.defined() && winograd::use(winograd::Pass::GradWeight, pr);
      wino_input = r.grad_input.defined() && winograd::use(winograd::Pass::GradInput, pr, t_weight_cache != nullptr);
    }
    if (wino_weight)
      winograd::grad_weight(pr, x.data<float>(), dy.data<float>(), r.grad_weight.data<float>(), acc);
    else if (r.grad_weight.defined())
      grad_weight<T>(g, x.data<T>(), dy.data<T>(), r.grad_weight.data<T>(), acc);
    if (wino_input)
      winograd::grad_input(pr, w.data<float>(), dy.data<float>(), r.grad_input.data<float>(), acc, t_weight_cache);
    else if (r.grad_input.defined())
      grad_input<T>(g, w.data<T>(), dy.data<T>(), r.grad_input.data<T>(), acc);
  };
  if (x.dtype() == DType::Float32)
    run(float{});
  else
    run(double{});
}

}  // namespace

Conv3dWeightReuse::Conv3dWeightReuse() {
  const char* e = std::getenv("DETSEG3D_WINOGRAD_REUSE");
  if (e && std::strcmp(e, "0") == 0) return;
  cache_ = std::make_unique<winograd::WeightCache>();
  prev_ = t_weight_cache;
  t_weight_cache = cache_.get();
  active_ = true;
}

Conv3dWeightReuse::~Conv3dWeightReuse() {
  if (active_) t_weight_cache = prev_;
}

Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p) {
  if (x.defined() && !x.device().is_cpu()) return conv3d_forward_cuda(x, w, bias, p);  // ops/conv3d_cuda.h
  Geo g = check_forward(x, w, bias, p);
  Tensor y = Tensor::empty({g.N, g.O[0], g.O[1], g.O[2], g.Co}, x.dtype());
  run_forward(g, x, w, bias, y, false);
  return y;
}

void conv3d_forward_into(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p, Tensor& y,
                         bool accumulate) {
  if (x.defined() && !x.device().is_cpu()) return conv3d_forward_cuda_into(x, w, bias, p, y, accumulate);
  Geo g = check_forward(x, w, bias, p);
  check_out(y, {g.N, g.O[0], g.O[1], g.O[2], g.Co}, x.dtype(), "conv3d output");
  run_forward(g, x, w, bias, y, accumulate);
}

Conv3dGrads conv3d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv3dParams& p,
                            bool need_input, bool need_weight, bool need_bias) {
  if (x.defined() && !x.device().is_cpu())
    return conv3d_backward_cuda(x, w, dy, p, need_input, need_weight, need_bias);
  Geo g = check_backward(x, w, dy, p);
  Conv3dGrads r;
  if (need_input) r.grad_input = Tensor::empty(x.shape(), x.dtype());
  if (need_weight) r.grad_weight = Tensor::empty(w.shape(), w.dtype());
  if (need_bias) r.grad_bias = Tensor::empty({g.Co}, x.dtype());
  run_backward(g, x, w, dy, r, false);
  return r;
}

void conv3d_backward_into(const Tensor& x, const Tensor& w, const Tensor& grad_out, const Conv3dParams& p,
                          Conv3dGrads& grads, bool accumulate) {
  if (x.defined() && !x.device().is_cpu()) return conv3d_backward_cuda_into(x, w, grad_out, p, grads, accumulate);
  Geo g = check_backward(x, w, grad_out, p);
  if (grads.grad_input.defined()) check_out(grads.grad_input, x.shape(), x.dtype(), "conv3d input gradient");
  if (grads.grad_weight.defined()) check_out(grads.grad_weight, w.shape(), x.dtype(), "conv3d weight gradient");
  if (grads.grad_bias.defined()) check_out(grads.grad_bias, {g.Co}, x.dtype(), "conv3d bias gradient");
  run_backward(g, x, w, grad_out, grads, accumulate);
}

}  // namespace ds
