// Device element losses shared by loss_cuda.cu (the element-wise ops) and
// detector_loss_cuda.cu (the fused detector loss); each mirrors losses.cpp
// in double, operation by operation.
#pragma once
#include "detection/det_cuda_common.cuh"

namespace ds::det::cudadet {

__device__ __forceinline__ double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }
__device__ __forceinline__ double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

// Classification loss and d/dlogit of one logit x with target t (0 or 1), as cls_element_loss.
__device__ __forceinline__ void cls_element(double x, bool t, bool focal, double gamma, double alpha, double* loss,
                                            double* grad) {
  const double p = sigmoid(x);
  double l, g;
  if (!focal) {
    l = t ? softplus(-x) : softplus(x);
    g = t ? p - 1.0 : p;
  } else if (t) {
    const double a = alpha < 0 ? 1.0 : alpha;
    const double q = 1.0 - p, sp = softplus(-x), m = pow(q, gamma);
    l = a * m * sp;
    g = a * m * (-q - gamma * p * sp);
  } else {
    const double a = alpha < 0 ? 1.0 : 1.0 - alpha;
    const double sp = softplus(x), m = pow(p, gamma);
    l = a * m * sp;
    g = a * m * (p + gamma * (1.0 - p) * sp);
  }
  *loss = l;
  *grad = g;
}

// Dual number with 6 partials (device twin of the CPU's D6).
struct D6 {
  double v;
  double g[6];
};
__device__ __forceinline__ D6 dconst(double x) {
  D6 r;
  r.v = x;
  for (int i = 0; i < 6; ++i) r.g[i] = 0.0;
  return r;
}
__device__ __forceinline__ D6 dadd(const D6& a, const D6& b) {
  D6 r;
  r.v = a.v + b.v;
  for (int i = 0; i < 6; ++i) r.g[i] = a.g[i] + b.g[i];
  return r;
}
__device__ __forceinline__ D6 dsub(const D6& a, const D6& b) {
  D6 r;
  r.v = a.v - b.v;
  for (int i = 0; i < 6; ++i) r.g[i] = a.g[i] - b.g[i];
  return r;
}
__device__ __forceinline__ D6 dmul(const D6& a, const D6& b) {
  D6 r;
  r.v = __dmul_rn(a.v, b.v);
  for (int i = 0; i < 6; ++i) r.g[i] = __dadd_rn(__dmul_rn(a.g[i], b.v), __dmul_rn(a.v, b.g[i]));
  return r;
}
__device__ __forceinline__ D6 ddiv(const D6& a, const D6& b) {
  D6 r;
  r.v = a.v / b.v;
  for (int i = 0; i < 6; ++i) r.g[i] = __dsub_rn(a.g[i], __dmul_rn(r.v, b.g[i])) / b.v;
  return r;
}
__device__ __forceinline__ D6 dexp(const D6& a) {
  D6 r;
  r.v = exp(a.v);
  for (int i = 0; i < 6; ++i) r.g[i] = __dmul_rn(r.v, a.g[i]);
  return r;
}
__device__ __forceinline__ D6 dmax(const D6& a, const D6& b) { return b.v > a.v ? b : a; }
__device__ __forceinline__ D6 dmin(const D6& a, const D6& b) { return b.v < a.v ? b : a; }
__device__ __forceinline__ D6 clamp0(const D6& a) { return a.v > 0 ? a : dconst(0.0); }

// 1 - GIoU(decode(anchor, deltas, w), gt) with d loss / d deltas in grad[6]
// (as giou_loss_with_grad): forward-mode dual numbers, 6 partials.
__device__ inline double giou_loss_row(const float* an, const double deltas[6], const Weights& w, double clip,
                                       const float* g, double grad[6]) {
  D6 b[6];
  // decode_one on dual numbers: d_j has derivative e_j.
  for (int k = 0; k < 3; ++k) {
    const double sa = double(an[k + 3]) - double(an[k]);
    const double ca = double(an[k]) + __dmul_rn(0.5, sa);
    D6 dk = dconst(deltas[k]);
    dk.g[k] = 1.0;
    D6 dk3 = dconst(deltas[k + 3]);
    dk3.g[k + 3] = 1.0;
    const D6 dc = dmul(dk, dconst(1.0 / w.w[k]));
    D6 dsz = dmul(dk3, dconst(1.0 / w.w[k + 3]));
    if (dsz.v > clip) dsz = dconst(clip);  // clamped: no gradient
    const D6 c = dadd(dmul(dc, dconst(sa)), dconst(ca));
    const D6 s = dmul(dexp(dsz), dconst(sa));
    const D6 hs = dmul(s, dconst(0.5));
    b[k] = dsub(c, hs);
    b[k + 3] = dadd(c, hs);
  }
  D6 inter = dconst(1.0), vp = dconst(1.0), encl = dconst(1.0);
  double vg = 1.0;
  for (int k = 0; k < 3; ++k) {
    const D6 gk = dconst(double(g[k])), gk3 = dconst(double(g[k + 3]));
    const D6 lo = dmax(b[k], gk), hi = dmin(b[k + 3], gk3);
    inter = dmul(inter, clamp0(dsub(hi, lo)));
    vp = dmul(vp, clamp0(dsub(b[k + 3], b[k])));
    vg = __dmul_rn(vg, fmax(0.0, double(g[k + 3]) - double(g[k])));
    const D6 elo = dmin(b[k], gk), ehi = dmax(b[k + 3], gk3);
    encl = dmul(encl, clamp0(dsub(ehi, elo)));
  }
  const D6 uni = dsub(dadd(vp, dconst(vg)), inter);
  const D6 io = ddiv(inter, dadd(uni, dconst(kEps)));
  const D6 gi = dsub(io, ddiv(dsub(encl, uni), dadd(encl, dconst(kEps))));
  for (int j = 0; j < 6; ++j) grad[j] = -gi.g[j];
  return 1.0 - gi.v;
}

}  // namespace ds::det::cudadet
