// Internal: the per-ISA transform kernels of the Winograd 3D convolutions (F(2,3) and the mixed F(2,3)xF(4,3)xF(4,3))
// (conv3d_winograd.cpp). Defined in conv3d_winograd_avx512.cpp and
// conv3d_winograd_avx2.cpp from the templates in conv3d_winograd_tx.h; call
// them only after checking simd_level(). On non-x86 builds they are not defined.
#pragma once
#include <cstdint>

namespace ds::winograd::detail {

// A stride-1 3x3x3 correlation  out[n, o, co] = sum_{tap, c} in[n, o - pad + tap, c] * w'[tap, c, co]
// tiled into 2x2x2 output tiles (T[i] = ceil(O[i] / 2) per axis; tile index
// p = ((n*T0 + t0)*T1 + t1)*T2 + t2) whose inputs are 4x4x4 windows starting at 2*t - pad.
struct TileGeo {
  int64_t N, D[3], C;  // input  [N, D1, D2, D3, C]
  int64_t O[3], Co;    // output [N, O1, O2, O3, Co]
  int64_t pad[3];      // window origin of tile t is 2*t - pad (reads outside the input are zeros)
  int64_t T[3];        // tiles per axis
};

struct Kernels {
  // V[xi*vstride + (p - p_base)*C + c] = (B^T d B)[xi] for tiles p in [p0, p1), xi < 64.
  void (*input)(const TileGeo& g, const float* in, int64_t p_base, int64_t p0, int64_t p1, int64_t vstride, float* V);
  // out[tile p's 2x2x2 positions inside O, co] (=, or += with acc) (A^T m A) + bias[co] (bias may be null),
  // m[xi] = M[xi*mstride + (p - p_base)*Co + co].
  void (*output)(const TileGeo& g, const float* M, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
                 const float* bias, float* out, bool acc);
  // Weights w[Co, 3, 3, 3, Ci], rows co in [co0, co1):
  //   U[xi][co][ci] = (G w[co, :, :, :, ci] G^T)[xi], with the taps mirrored on
  //   every axis (w[co, 2-a, 2-b, 2-c, ci]) when flip (grad input).
  void (*weight)(const float* w, int64_t Co, int64_t Ci, bool flip, int64_t co0, int64_t co1, float* U);
  // Adjoint of `output` (grad weight): for tiles p in [p0, p1),
  //   Mt[xi*mstride + (p - p_base)*Co + co] = (A dy_p A^T)[xi], dy_p = the tile's 2x2x2 outputs of dy (zero past O).
  void (*output_adjoint)(const TileGeo& g, const float* dy, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
                         float* Mt);
  // Adjoint of `weight` (flip = false): dw[co, :, :, :, ci] (=, or += with acc) (G^T dU[.][co][ci] G)
  // for rows co in [co0, co1); dU[xi][co][ci] as U.
  void (*weight_adjoint)(const float* dU, int64_t Co, int64_t Ci, int64_t co0, int64_t co1, float* dw, bool acc);
};

const Kernels& kernels_avx512();
const Kernels& kernels_avx2();

// The mixed F(2,3) x F(4,3) x F(4,3) variant (conv3d_winograd_f4_tx.h): tiles
// of 2 x 4 x 4 outputs (T = (ceil(O1/2), ceil(O2/4), ceil(O3/4))), windows of
// 4 x 6 x 6 inputs starting at (2*t0, 4*t1, 4*t2) - pad, 144 frequencies.
// Same contracts as Kernels' members with 144 in place of 64 and the tile
// shape above, except `weight`, which computes the 36 frequencies
// xi = i0 * 36 + j (j < 36) of one i0 < 4 into U[j][co][ci].
struct KernelsF4 {
  void (*input)(const TileGeo& g, const float* in, int64_t p_base, int64_t p0, int64_t p1, int64_t vstride, float* V);
  void (*output)(const TileGeo& g, const float* M, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
                 const float* bias, float* out, bool acc);
  void (*weight)(const float* w, int64_t Co, int64_t Ci, bool flip, int64_t co0, int64_t co1, int i0, float* U);
  void (*output_adjoint)(const TileGeo& g, const float* dy, int64_t p_base, int64_t p0, int64_t p1, int64_t mstride,
                         float* Mt);
  void (*weight_adjoint)(const float* dU, int64_t Co, int64_t Ci, int64_t co0, int64_t co1, float* dw, bool acc);
};

const KernelsF4& kernels_f4_avx512();
const KernelsF4& kernels_f4_avx2();

}  // namespace ds::winograd::detail
