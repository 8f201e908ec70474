// Internal: transform kernels of the mixed Winograd F(2,3) x F(4,3) x F(4,3)
// 3D convolution (tiles of 2 x 4 x 4 outputs along D1 x D2 x D3, windows of
// 4 x 6 x 6 inputs, 144 frequencies), written once with GCC/Clang vector
// extensions and compiled per instruction set. Included by
// conv3d_winograd_avx512.cpp / conv3d_winograd_avx2.cpp after
// conv3d_winograd_tx.h (same WINO_NS / WINO_LANES macros and helpers, including the
// tile-geometry ones window_rows / output_rows; defines
// the table accessor WINO_TABLE_F4).
//
// Why mixed: F(4,3) on all three axes needs 3.4 multiplies per output instead
// of 8 but its float32 error in 3D is ~30x the GEMM path's (measured 1-5e-5
// relative at 256 channels); F(4,3) on two axes and F(2,3) on the third needs
// 4.5 (144 / 32) and stays at ~13x (see conv3d_winograd.cpp).
// F(4,3) uses the interpolation points 0, -1, 1, 1/2, -2, inf (more accurate in
// float32 than the usual 0, +-1, +-2: 3D error ~2x lower); its 1D matrices:
//   B^T = [1 -3/2 -2 3/2 1 0; 0 1 -5/2 1/2 1 0; 0 -1 1/2 5/2 1 0;
//          0 -2 -1 2 1 0; 0 1/2 -1 -1/2 1 0; 0 1 -3/2 -2 3/2 1]
//   G   = [1 0 0; -1/3 1/3 -1/3; 1/3 1/3 1/3; -16/15 -8/15 -4/15; 1/15 -2/15 4/15; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 -1 1 1/2 -2 0; 0 1 1 1/4 4 0; 0 -1 1 1/8 -8 1]
// (derived from the points by Toom-Cook; the tests check the whole
// convolution against float64 references). The weight gradient uses the
// adjoints: A (4 -> 6) on dy and G^T (6 -> 3) on dU.
#include "ops/conv3d_winograd_kernels.h"

namespace ds::winograd::detail::WINO_NS {
namespace {

// Frequencies xi = (i0 * 6 + i1) * 6 + i2 with i0 < 4 (F(2,3) along D1), i1, i2 < 6.
constexpr int kF4Freq = 144;

// B^T d: 6 values (stride s), in place.
template <class V>
inline void bt6(V* d, int s) {
  const V d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  d[0] = d0 - 1.5f * d1 - 2.0f * d2 + 1.5f * d3 + d4;
  d[s] = d1 - 2.5f * d2 + 0.5f * d3 + d4;
  d[2 * s] = 0.5f * d2 - d1 + 2.5f * d3 + d4;
  d[3 * s] = 2.0f * (d3 - d1) - d2 + d4;
  d[4 * s] = 0.5f * (d1 - d3) - d2 + d4;
  d[5 * s] = d1 - 1.5f * d2 - 2.0f * d3 + 1.5f * d4 + d5;
}

// A^T m: 6 values (stride s) -> 4 values (stride t).
template <class V>
inline void at6(const V* m, int s, V* y, int t) {
  const V m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
  const V p = m1 + m2, q = m2 - m1;
  y[0] = m0 + p + m3 + m4;
  y[t] = q + 0.5f * m3 - 2.0f * m4;
  y[2 * t] = p + 0.25f * m3 + 4.0f * m4;
  y[3 * t] = q + 0.125f * m3 - 8.0f * m4 + m5;
}

// G g: 3 values (stride s) -> 6 values (stride t).
template <class V>
inline void g6(const V* g, int s, V* u, int t) {
  const V g0 = g[0], g1 = g[s], g2 = g[2 * s];
  const float third = 1.0f / 3.0f, fifteenth = 1.0f / 15.0f;
  u[0] = g0;
  u[t] = (g1 - g0 - g2) * third;
  u[2 * t] = (g0 + g1 + g2) * third;
  u[3 * t] = (-16.0f * g0 - 8.0f * g1 - 4.0f * g2) * fifteenth;
  u[4 * t] = (g0 - 2.0f * g1 + 4.0f * g2) * fifteenth;
  u[5 * t] = g2;
}

// F(2,3) A^T and G along D1 (bt4 is in conv3d_winograd_tx.h).
template <class V>
inline void at4(const V* m, int s, V* y, int t) {
  y[0] = m[0] + m[s] + m[2 * s];
  y[t] = m[s] - m[2 * s] - m[3 * s];
}
template <class V>
inline void g4(const V* g, int s, V* u, int t) {
  const V g0 = g[0], g1 = g[s], g2 = g[2 * s];
  u[0] = g0;
  u[t] = (g0 + g1 + g2) * 0.5f;
  u[2 * t] = (g0 - g1 + g2) * 0.5f;
  u[3 * t] = g2;
}

// One channel vector of one tile: 144 window values (null source = zero) -> V.
template <int L>
inline void f4_input_vec(const float* const* src, int64_t c, float* dst, int64_t vstride) {
  using V = typename VT<L>::type;
  V d[kF4Freq];
  for (int i = 0; i < kF4Freq; ++i) d[i] = src[i] ? load(src[i] + c, (const V*)nullptr) : V{};
  for (int i = 0; i < 24; ++i) bt6(d + 6 * i, 1);  // axis 3
  for (int a = 0; a < 4; ++a)
    for (int k = 0; k < 6; ++k) bt6(d + 36 * a + k, 6);  // axis 2
  for (int i = 0; i < 36; ++i) bt4(d + i, 36);  // axis 1
  for (int i = 0; i < kF4Freq; ++i) store(dst + i * vstride + c, d[i]);
}

void f4_input(const TileGeo& g, const float* in, int64_t p_base, int64_t p0, int64_t p1, int64_t vstride, float* V) {
  const float* src[kF4Freq];
  for (int64_t p = p0; p < p1; ++p) {
    window_rows<2, 4, 4>(g, in, p, src);
    float* dst = V + (p - p_base) * g.C;
    int64_t c = 0;
    for (; c + WINO_LANES <= g.C; c += WINO_LANES) f4_input_vec<WINO_LANES>(src, c, dst, vstride);
    for (; c < g.C; ++c) f4_input_vec<1>(src, c, dst, vstride);
  }
}

// One channel vector of one tile: 144 products -> 32 outputs (masked to O).
template <int L>
inline void f4_output_vec(const float* m_src, int64_t c, int64_t mstride, float* const* dst, const float* bias,
                          bool acc) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V m[kF4Freq], t1[96], t2[64], r[32];
  for (int i = 0; i < kF4Freq; ++i) m[i] = load(m_src + i * mstride + c, tag);
  for (int i = 0; i < 24; ++i) at6(m + 6 * i, 1, t1 + 4 * i, 1);  // axis 3: [4][6][6] -> [4][6][4]
  for (int a = 0; a < 4; ++a)                                      // axis 2: [4][6][4] -> [4][4][4]
    for (int k = 0; k < 4; ++k) at6(t1 + 24 * a + k, 4, t2 + 16 * a + k, 4);
  for (int jk = 0; jk < 16; ++jk) at4(t2 + jk, 16, r + jk, 16);  // axis 1: [4][4][4] -> [2][4][4]
  const V b = bias ? load(bias + c, tag) : V{};
  for (int i = 0; i < 32; ++i) {
    if (!dst[i]) continue;
    V v = r[i] + b;
    if (acc) v = load(dst[i] + c, tag) + v;
    store(dst[i] + c, v);
  }
}

void f4_output(const TileGeo& g, const float* M, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
               const float* bias, float* out, bool acc) {
  float* dst[32];
  for (int64_t p = p0; p < p1; ++p) {
    output_rows<2, 4, 4>(g, out, p, dst);
    const float* m_src = M + (p - p_base) * g.Co;
    int64_t c = 0;
    for (; c + WINO_LANES <= g.Co; c += WINO_LANES) f4_output_vec<WINO_LANES>(m_src, c, mstride, dst, bias, acc);
    for (; c < g.Co; ++c) f4_output_vec<1>(m_src, c, mstride, dst, bias, acc);
  }
}

// The 36 frequencies with first index i0 (D1 axis) of the channel vector
// [ci, ci+L) of weight row co (taps mirrored when flip):
//   U[i1*6 + i2][co][ci] = (G4[i0] (x) G6 (x) G6) w[co, :, :, :, ci]
// (axis 1 reduced first for the one row i0, then axes 2 and 3 expanded).
template <int L>
inline void f4_weight_vec(const float* wrow, int64_t Ci, int64_t Co, int64_t co, int64_t ci, bool flip, int i0,
                          float* U) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V g[27], h[9], u1[18], u2[36];
  for (int t = 0; t < 27; ++t) g[t] = load(wrow + (flip ? 26 - t : t) * Ci + ci, tag);
  for (int bc = 0; bc < 9; ++bc) {  // axis 1, row i0 of G (F(2,3)): [3][3][3] -> [3][3]
    const V g0 = g[bc], g1 = g[9 + bc], g2 = g[18 + bc];
    h[bc] = i0 == 0 ? g0 : i0 == 1 ? (g0 + g1 + g2) * 0.5f : i0 == 2 ? (g0 - g1 + g2) * 0.5f : g2;
  }
  for (int c = 0; c < 3; ++c) g6(h + c, 3, u1 + c, 3);  // axis 2: [3][3] -> [6][3]
  for (int b = 0; b < 6; ++b) g6(u1 + 3 * b, 1, u2 + 6 * b, 1);  // axis 3: [6][3] -> [6][6]
  const int64_t plane = Ci * Co;
  for (int i = 0; i < 36; ++i) store(U + i * plane + co * Ci + ci, u2[i]);
}

void f4_weight(const float* w, int64_t Co, int64_t Ci, bool flip, int64_t co0, int64_t co1, int i0, float* U) {
  for (int64_t co = co0; co < co1; ++co) {
    const float* wrow = w + co * 27 * Ci;
    int64_t ci = 0;
    for (; ci + WINO_LANES <= Ci; ci += WINO_LANES) f4_weight_vec<WINO_LANES>(wrow, Ci, Co, co, ci, flip, i0, U);
    for (; ci < Ci; ++ci) f4_weight_vec<1>(wrow, Ci, Co, co, ci, flip, i0, U);
  }
}

// Adjoints for the weight gradient: A r per axis (4 -> 6 along D2/D3, 2 -> 4 along D1), G^T u (6 or 4 -> 3).
template <class V>
inline void a6(const V* r, int s, V* m, int t) {
  const V r0 = r[0], r1 = r[s], r2 = r[2 * s], r3 = r[3 * s];
  m[0] = r0;
  m[t] = r0 - r1 + r2 - r3;
  m[2 * t] = r0 + r1 + r2 + r3;
  m[3 * t] = r0 + 0.5f * r1 + 0.25f * r2 + 0.125f * r3;
  m[4 * t] = r0 - 2.0f * r1 + 4.0f * r2 - 8.0f * r3;
  m[5 * t] = r3;
}
template <class V>
inline void a4(const V* r, int s, V* m, int t) {
  const V r0 = r[0], r1 = r[s];
  m[0] = r0;
  m[t] = r0 + r1;
  m[2 * t] = r0 - r1;
  m[3 * t] = -r1;
}
template <class V>
inline void gt6(const V* u, int s, V* g, int t) {
  const V u0 = u[0], u1 = u[s], u2 = u[2 * s], u3 = u[3 * s], u4 = u[4 * s], u5 = u[5 * s];
  const float third = 1.0f / 3.0f, fifteenth = 1.0f / 15.0f;
  g[0] = u0 + (u2 - u1) * third - (16.0f * u3 - u4) * fifteenth;
  g[t] = (u1 + u2) * third - (8.0f * u3 + 2.0f * u4) * fifteenth;
  g[2 * t] = (u2 - u1) * third + (4.0f * u4 - 4.0f * u3) * fifteenth + u5;
}
template <class V>
inline void gt4(const V* u, int s, V* g, int t) {
  const V u0 = u[0], u1 = u[s], u2 = u[2 * s], u3 = u[3 * s];
  const V h = (u1 + u2) * 0.5f;
  g[0] = u0 + h;
  g[t] = (u1 - u2) * 0.5f;
  g[2 * t] = h + u3;
}

// A dy A^T for one channel vector of one tile (dy rows outside O are zero): 32 -> 144.
template <int L>
inline void f4_output_adjoint_vec(const float* const* src, int64_t c, float* dst, int64_t mstride) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V r[32], t2[64], t1[96], m[kF4Freq];
  for (int i = 0; i < 32; ++i) r[i] = src[i] ? load(src[i] + c, tag) : V{};
  for (int jk = 0; jk < 16; ++jk) a4(r + jk, 16, t2 + jk, 16);  // axis 1: [2][4][4] -> [4][4][4]
  for (int a = 0; a < 4; ++a)                                    // axis 2: [4][4][4] -> [4][6][4]
    for (int k = 0; k < 4; ++k) a6(t2 + 16 * a + k, 4, t1 + 24 * a + k, 4);
  for (int i = 0; i < 24; ++i) a6(t1 + 4 * i, 1, m + 6 * i, 1);  // axis 3: [4][6][4] -> [4][6][6]
  for (int i = 0; i < kF4Freq; ++i) store(dst + i * mstride + c, m[i]);
}

void f4_output_adjoint(const TileGeo& g, const float* dy, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
                       float* Mt) {
  const float* src[32];
  for (int64_t p = p0; p < p1; ++p) {
    output_rows<2, 4, 4>(g, dy, p, src);
    float* dst = Mt + (p - p_base) * g.Co;
    int64_t c = 0;
    for (; c + WINO_LANES <= g.Co; c += WINO_LANES) f4_output_adjoint_vec<WINO_LANES>(src, c, dst, mstride);
    for (; c < g.Co; ++c) f4_output_adjoint_vec<1>(src, c, dst, mstride);
  }
}

// G^T dU G for the channel vector [ci, ci+L) of row co: 144 -> 27.
template <int L>
inline void f4_weight_adjoint_vec(const float* dU, int64_t Ci, int64_t Co, int64_t co, int64_t ci, float* dwrow,
                                  bool acc) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V u[kF4Freq], u2[108], u1[54], gw[27];
  const int64_t plane = Ci * Co;
  for (int i = 0; i < kF4Freq; ++i) u[i] = load(dU + i * plane + co * Ci + ci, tag);
  for (int jk = 0; jk < 36; ++jk) gt4(u + jk, 36, u2 + jk, 36);  // axis 1: [4][6][6] -> [3][6][6]
  for (int a = 0; a < 3; ++a)                                    // axis 2: [3][6][6] -> [3][3][6]
    for (int k = 0; k < 6; ++k) gt6(u2 + 36 * a + k, 6, u1 + 18 * a + k, 6);
  for (int i = 0; i < 9; ++i) gt6(u1 + 6 * i, 1, gw + 3 * i, 1);  // axis 3: [3][3][6] -> [3][3][3]
  for (int t = 0; t < 27; ++t) {
    float* d = dwrow + t * Ci + ci;
    store(d, acc ? load(d, tag) + gw[t] : gw[t]);
  }
}

void f4_weight_adjoint(const float* dU, int64_t Co, int64_t Ci, int64_t co0, int64_t co1, float* dw, bool acc) {
  for (int64_t co = co0; co < co1; ++co) {
    float* dwrow = dw + co * 27 * Ci;
    int64_t ci = 0;
    for (; ci + WINO_LANES <= Ci; ci += WINO_LANES) f4_weight_adjoint_vec<WINO_LANES>(dU, Ci, Co, co, ci, dwrow, acc);
    for (; ci < Ci; ++ci) f4_weight_adjoint_vec<1>(dU, Ci, Co, co, ci, dwrow, acc);
  }
}

}  // namespace

const KernelsF4& WINO_TABLE_F4() {
  static const KernelsF4 k{&f4_input, &f4_output, &f4_weight, &f4_output_adjoint, &f4_weight_adjoint};
  return k;
}

}  // namespace ds::winograd::detail::WINO_NS

namespace ds::winograd::detail {
const KernelsF4& WINO_TABLE_F4() { return WINO_NS::WINO_TABLE_F4(); }
}  // namespace ds::winograd::detail
