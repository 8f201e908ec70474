// Internal: Winograd F(2,3) transform kernels written once with GCC/Clang
// vector extensions and compiled per instruction set. Included only by
// conv3d_winograd_avx512.cpp / conv3d_winograd_avx2.cpp, which define
//   WINO_NS      a namespace name unique to the file (no ODR clash between ISAs),
//   WINO_LANES   floats per vector (16 or 8),
//   WINO_TABLE   the name of the Kernels accessor to define.
// Vectorised over channels (channels-last: one 4x4x4 window of a vector of
// channels is 64 contiguous-channel loads); channel tails use the same code on
// plain floats. The 1D transforms (per axis, applied along axis 3, 2, then 1):
//   B^T d = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
//   G g   = (g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2, g2)
//   A^T m = (m0 + m1 + m2, m1 - m2 - m3)
// and for the weight gradient their adjoints
//   A r   = (r0, r0 + r1, r0 - r1, -r1)
//   G^T u = (u0 + (u1 + u2)/2, (u1 - u2)/2, (u1 + u2)/2 + u3)
#include "ops/conv3d_winograd_kernels.h"

namespace ds::winograd::detail::WINO_NS {
namespace {

typedef float VF __attribute__((vector_size(WINO_LANES * 4)));

template <int L>
struct VT {
  using type = VF;
};
template <>
struct VT<1> {
  using type = float;
};

inline VF load(const float* p, const VF*) {
  VF v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline float load(const float* p, const float*) { return *p; }
inline void store(float* p, VF v) { __builtin_memcpy(p, &v, sizeof v); }
inline void store(float* p, float v) { *p = v; }

template <class V>
inline void bt4(V* d, int s) {
  const V d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
  d[0] = d0 - d2;
  d[s] = d1 + d2;
  d[2 * s] = d2 - d1;
  d[3 * s] = d1 - d3;
}

// Tile p's batch index n and tile coordinates t (p = ((n*T0 + t0)*T1 + t1)*T2 + t2).
inline void tile_coords(const TileGeo& g, int64_t p, int64_t* n, int64_t* t) {
  int64_t q = p;
  t[2] = q % g.T[2];
  q /= g.T[2];
  t[1] = q % g.T[1];
  q /= g.T[1];
  t[0] = q % g.T[0];
  *n = q / g.T[0];
}

// Channel rows of tile p's input window for tiles of S0 x S1 x S2 outputs: the
// (S0+2) x (S1+2) x (S2+2) positions from S * t - pad, row-major; null outside
// the input (zero padding).
template <int S0, int S1, int S2>
inline void window_rows(const TileGeo& g, const float* in, int64_t p, const float** src) {
  int64_t n, t[3];
  tile_coords(g, p, &n, t);
  const int64_t o0 = S0 * t[0] - g.pad[0], o1 = S1 * t[1] - g.pad[1], o2 = S2 * t[2] - g.pad[2];
  for (int a = 0; a < S0 + 2; ++a)
    for (int b = 0; b < S1 + 2; ++b)
      for (int c = 0; c < S2 + 2; ++c) {
        const int64_t i0 = o0 + a, i1 = o1 + b, i2 = o2 + c;
        const bool in_range = i0 >= 0 && i0 < g.D[0] && i1 >= 0 && i1 < g.D[1] && i2 >= 0 && i2 < g.D[2];
        src[(a * (S1 + 2) + b) * (S2 + 2) + c] =
            in_range ? in + (((n * g.D[0] + i0) * g.D[1] + i1) * g.D[2] + i2) * g.C : nullptr;
      }
}

// Channel rows of tile p's S0 x S1 x S2 outputs (row-major) in an [N, O1, O2, O3, Co]
// tensor (the output, or dy for the weight gradient); null past O.
template <int S0, int S1, int S2, class T>
inline void output_rows(const TileGeo& g, T* base, int64_t p, T** rows) {
  int64_t n, t[3];
  tile_coords(g, p, &n, t);
  for (int a = 0; a < S0; ++a)
    for (int b = 0; b < S1; ++b)
      for (int c = 0; c < S2; ++c) {
        const int64_t o0 = S0 * t[0] + a, o1 = S1 * t[1] + b, o2 = S2 * t[2] + c;
        const bool in_range = o0 < g.O[0] && o1 < g.O[1] && o2 < g.O[2];
        rows[(a * S1 + b) * S2 + c] =
            in_range ? base + (((n * g.O[0] + o0) * g.O[1] + o1) * g.O[2] + o2) * g.Co : nullptr;
      }
}

// One channel vector [c, c+L) of one tile: 64 window values (null source = zero).
template <int L>
inline void input_vec(const float* const* src, int64_t c, float* dst, int64_t vstride) {
  using V = typename VT<L>::type;
  V d[64];
  for (int i = 0; i < 64; ++i) d[i] = src[i] ? load(src[i] + c, (const V*)nullptr) : V{};
  for (int i = 0; i < 16; ++i) bt4(d + 4 * i, 1);                       // axis 3
  for (int a = 0; a < 4; ++a)
    for (int c3 = 0; c3 < 4; ++c3) bt4(d + 16 * a + c3, 4);            // axis 2
  for (int i = 0; i < 16; ++i) bt4(d + i, 16);                          // axis 1
  for (int i = 0; i < 64; ++i) store(dst + i * vstride + c, d[i]);
}

void input(const TileGeo& g, const float* in, int64_t p_base, int64_t p0, int64_t p1, int64_t vstride, float* V) {
  const float* src[64];
  for (int64_t p = p0; p < p1; ++p) {
    window_rows<2, 2, 2>(g, in, p, src);
    float* dst = V + (p - p_base) * g.C;
    int64_t c = 0;
    for (; c + WINO_LANES <= g.C; c += WINO_LANES) input_vec<WINO_LANES>(src, c, dst, vstride);
    for (; c < g.C; ++c) input_vec<1>(src, c, dst, vstride);
  }
}

// One channel vector of one tile: 64 products -> 8 outputs (masked to O).
template <int L>
inline void output_vec(const float* m_src, int64_t c, int64_t mstride, float* const* dst, const float* bias,
                       bool acc) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V m[64], t1[32], t2[16], r[8];
  for (int i = 0; i < 64; ++i) m[i] = load(m_src + i * mstride + c, tag);
  for (int i = 0; i < 16; ++i) {  // axis 3: [a][b][4] -> [a][b][2]
    t1[2 * i] = m[4 * i] + m[4 * i + 1] + m[4 * i + 2];
    t1[2 * i + 1] = m[4 * i + 1] - m[4 * i + 2] - m[4 * i + 3];
  }
  for (int a = 0; a < 4; ++a)  // axis 2: [a][4][2] -> [a][2][2]
    for (int k = 0; k < 2; ++k) {
      const V* s = t1 + a * 8 + k;
      t2[a * 4 + k] = s[0] + s[2] + s[4];
      t2[a * 4 + 2 + k] = s[2] - s[4] - s[6];
    }
  for (int jk = 0; jk < 4; ++jk) {  // axis 1: [4][2][2] -> [2][2][2]
    const V* s = t2 + jk;
    r[jk] = s[0] + s[4] + s[8];
    r[4 + jk] = s[4] - s[8] - s[12];
  }
  const V b = bias ? load(bias + c, tag) : V{};
  for (int i = 0; i < 8; ++i) {
    if (!dst[i]) continue;
    V v = r[i] + b;
    if (acc) v = load(dst[i] + c, tag) + v;
    store(dst[i] + c, v);
  }
}

void output(const TileGeo& g, const float* M, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
            const float* bias, float* out, bool acc) {
  float* dst[8];
  for (int64_t p = p0; p < p1; ++p) {
    output_rows<2, 2, 2>(g, out, p, dst);
    const float* m_src = M + (p - p_base) * g.Co;
    int64_t c = 0;
    for (; c + WINO_LANES <= g.Co; c += WINO_LANES) output_vec<WINO_LANES>(m_src, c, mstride, dst, bias, acc);
    for (; c < g.Co; ++c) output_vec<1>(m_src, c, mstride, dst, bias, acc);
  }
}

// G g G^T in 3D for the channel vector [ci, ci+L) of weight row co.
template <int L>
inline void weight_vec(const float* wrow, int64_t Ci, int64_t Co, int64_t co, int64_t ci, bool flip, float* U) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V g[27], u1[36], u2[48], u3[64];
  for (int t = 0; t < 27; ++t) g[t] = load(wrow + (flip ? 26 - t : t) * Ci + ci, tag);
  const float h = 0.5f;
  for (int i = 0; i < 9; ++i) {  // axis 3: [3][3][3] -> [3][3][4]
    const V g0 = g[3 * i], g1 = g[3 * i + 1], g2 = g[3 * i + 2];
    u1[4 * i] = g0;
    u1[4 * i + 1] = (g0 + g1 + g2) * h;
    u1[4 * i + 2] = (g0 - g1 + g2) * h;
    u1[4 * i + 3] = g2;
  }
  for (int a = 0; a < 3; ++a)  // axis 2: [3][3][4] -> [3][4][4]
    for (int k = 0; k < 4; ++k) {
      const V g0 = u1[a * 12 + k], g1 = u1[a * 12 + 4 + k], g2 = u1[a * 12 + 8 + k];
      V* d = u2 + a * 16 + k;
      d[0] = g0;
      d[4] = (g0 + g1 + g2) * h;
      d[8] = (g0 - g1 + g2) * h;
      d[12] = g2;
    }
  for (int jk = 0; jk < 16; ++jk) {  // axis 1: [3][4][4] -> [4][4][4]
    const V g0 = u2[jk], g1 = u2[16 + jk], g2 = u2[32 + jk];
    u3[jk] = g0;
    u3[16 + jk] = (g0 + g1 + g2) * h;
    u3[32 + jk] = (g0 - g1 + g2) * h;
    u3[48 + jk] = g2;
  }
  const int64_t plane = Ci * Co;
  for (int i = 0; i < 64; ++i) store(U + i * plane + co * Ci + ci, u3[i]);
}

void weight(const float* w, int64_t Co, int64_t Ci, bool flip, int64_t co0, int64_t co1, float* U) {
  for (int64_t co = co0; co < co1; ++co) {
    const float* wrow = w + co * 27 * Ci;
    int64_t ci = 0;
    for (; ci + WINO_LANES <= Ci; ci += WINO_LANES) weight_vec<WINO_LANES>(wrow, Ci, Co, co, ci, flip, U);
    for (; ci < Ci; ++ci) weight_vec<1>(wrow, Ci, Co, co, ci, flip, U);
  }
}

// A dy A^T for one channel vector of one tile (dy rows outside O are zero).
template <int L>
inline void output_adjoint_vec(const float* const* src, int64_t c, float* dst, int64_t mstride) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V r[8], t2[16], t1[32], m[64];
  for (int i = 0; i < 8; ++i) r[i] = src[i] ? load(src[i] + c, tag) : V{};
  for (int jk = 0; jk < 4; ++jk) {  // axis 1: [2][2][2] -> [4][2][2]
    const V r0 = r[jk], r1 = r[4 + jk];
    t2[jk] = r0;
    t2[4 + jk] = r0 + r1;
    t2[8 + jk] = r0 - r1;
    t2[12 + jk] = -r1;
  }
  for (int a = 0; a < 4; ++a)  // axis 2: [4][2][2] -> [4][4][2]
    for (int k = 0; k < 2; ++k) {
      const V r0 = t2[a * 4 + k], r1 = t2[a * 4 + 2 + k];
      V* d = t1 + a * 8 + k;
      d[0] = r0;
      d[2] = r0 + r1;
      d[4] = r0 - r1;
      d[6] = -r1;
    }
  for (int i = 0; i < 16; ++i) {  // axis 3: [4][4][2] -> [4][4][4]
    const V r0 = t1[2 * i], r1 = t1[2 * i + 1];
    m[4 * i] = r0;
    m[4 * i + 1] = r0 + r1;
    m[4 * i + 2] = r0 - r1;
    m[4 * i + 3] = -r1;
  }
  for (int i = 0; i < 64; ++i) store(dst + i * mstride + c, m[i]);
}

void output_adjoint(const TileGeo& g, const float* dy, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
                    float* Mt) {
  const float* src[8];
  for (int64_t p = p0; p < p1; ++p) {
    output_rows<2, 2, 2>(g, dy, p, src);
    float* dst = Mt + (p - p_base) * g.Co;
    int64_t c = 0;
    for (; c + WINO_LANES <= g.Co; c += WINO_LANES) output_adjoint_vec<WINO_LANES>(src, c, dst, mstride);
    for (; c < g.Co; ++c) output_adjoint_vec<1>(src, c, dst, mstride);
  }
}

// G^T dU G for the channel vector [ci, ci+L) of row co.
template <int L>
inline void weight_adjoint_vec(const float* dU, int64_t Ci, int64_t Co, int64_t co, int64_t ci, float* dwrow,
                               bool acc) {
  using V = typename VT<L>::type;
  const V* tag = nullptr;
  V u[64], u2[48], u1[36];
  const int64_t plane = Ci * Co;
  for (int i = 0; i < 64; ++i) u[i] = load(dU + i * plane + co * Ci + ci, tag);
  const float h = 0.5f;
  for (int jk = 0; jk < 16; ++jk) {  // axis 1: [4][4][4] -> [3][4][4]
    const V a0 = u[jk], a1 = u[16 + jk], a2 = u[32 + jk], a3 = u[48 + jk];
    const V s = (a1 + a2) * h;
    u2[jk] = a0 + s;
    u2[16 + jk] = (a1 - a2) * h;
    u2[32 + jk] = s + a3;
  }
  for (int a = 0; a < 3; ++a)  // axis 2: [3][4][4] -> [3][3][4]
    for (int k = 0; k < 4; ++k) {
      const V* src = u2 + a * 16 + k;
      const V s = (src[4] + src[8]) * h;
      u1[a * 12 + k] = src[0] + s;
      u1[a * 12 + 4 + k] = (src[4] - src[8]) * h;
      u1[a * 12 + 8 + k] = s + src[12];
    }
  for (int i = 0; i < 9; ++i) {  // axis 3: [3][3][4] -> [3][3][3]
    const V* src = u1 + 4 * i;
    const V s = (src[1] + src[2]) * h;
    V g[3] = {src[0] + s, (src[1] - src[2]) * h, s + src[3]};
    for (int t = 0; t < 3; ++t) {
      float* d = dwrow + (3 * i + t) * Ci + ci;
      store(d, acc ? load(d, tag) + g[t] : g[t]);
    }
  }
}

void weight_adjoint(const float* dU, int64_t Co, int64_t Ci, int64_t co0, int64_t co1, float* dw, bool acc) {
  for (int64_t co = co0; co < co1; ++co) {
    float* dwrow = dw + co * 27 * Ci;
    int64_t ci = 0;
    for (; ci + WINO_LANES <= Ci; ci += WINO_LANES) weight_adjoint_vec<WINO_LANES>(dU, Ci, Co, co, ci, dwrow, acc);
    for (; ci < Ci; ++ci) weight_adjoint_vec<1>(dU, Ci, Co, co, ci, dwrow, acc);
  }
}

}  // namespace

const Kernels& WINO_TABLE() {
  static const Kernels k{&input, &output, &weight, &output_adjoint, &weight_adjoint};
  return k;
}

}  // namespace ds::winograd::detail::WINO_NS

namespace ds::winograd::detail {
const Kernels& WINO_TABLE() { return WINO_NS::WINO_TABLE(); }
}  // namespace ds::winograd::detail
