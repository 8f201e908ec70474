#include "detection/losses.h"

#include <algorithm>
#include <cmath>

#include "detection/box_coder.h"
#include "detection/box_ops.h"

namespace ds::det {

namespace {

// log(1 + e^x) without overflow.
inline double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }
inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  double e = std::exp(x);
  return e / (1.0 + e);
}

// Forward-mode dual number with 6 partial derivatives (one per delta), used
// to differentiate decode + GIoU exactly without hand-derived formulas.
struct D6 {
  double v = 0;
  double g[6] = {0, 0, 0, 0, 0, 0};
  D6() = default;
  D6(double x) : v(x) {}  // NOLINT: constants convert implicitly
};
inline D6 operator+(const D6& a, const D6& b) {
  D6 r(a.v + b.v);
  for (int i = 0; i < 6; ++i) r.g[i] = a.g[i] + b.g[i];
  return r;
}
inline D6 operator-(const D6& a, const D6& b) {
  D6 r(a.v - b.v);
  for (int i = 0; i < 6; ++i) r.g[i] = a.g[i] - b.g[i];
  return r;
}
inline D6 operator*(const D6& a, const D6& b) {
  D6 r(a.v * b.v);
  for (int i = 0; i < 6; ++i) r.g[i] = a.g[i] * b.v + a.v * b.g[i];
  return r;
}
inline D6 operator/(const D6& a, const D6& b) {
  D6 r(a.v / b.v);
  for (int i = 0; i < 6; ++i) r.g[i] = (a.g[i] - r.v * b.g[i]) / b.v;
  return r;
}
inline bool operator>(const D6& a, double b) { return a.v > b; }
inline D6 dexp(const D6& a) {
  D6 r(std::exp(a.v));
  for (int i = 0; i < 6; ++i) r.g[i] = r.v * a.g[i];
  return r;
}
// max/min pick one branch (the first on ties), as torch.max / torch.min do for the gradient.
inline const D6& dmax(const D6& a, const D6& b) { return b.v > a.v ? b : a; }
inline const D6& dmin(const D6& a, const D6& b) { return b.v < a.v ? b : a; }
inline D6 clamp0(const D6& a) { return a.v > 0 ? a : D6(0.0); }

}  // namespace

LossGrad cls_element_loss(double x, bool t, ClsLossKind kind, double gamma, double alpha) {
  double p = sigmoid(x);
  if (kind == ClsLossKind::BCE) {
    return t ? LossGrad{softplus(-x), p - 1.0} : LossGrad{softplus(x), p};
  }
  if (t) {
    // l = a (1-p)^g softplus(-x);  dl/dx = a (1-p)^g [-(1-p) - g p softplus(-x)]
    double a = alpha < 0 ? 1.0 : alpha;
    double q = 1.0 - p, sp = softplus(-x);
    double m = std::pow(q, gamma);
    return {a * m * sp, a * m * (-q - gamma * p * sp)};
  }
  // l = (1-a) p^g softplus(x);  dl/dx = (1-a) p^g [p + g (1-p) softplus(x)]
  double a = alpha < 0 ? 1.0 : 1.0 - alpha;
  double sp = softplus(x);
  double m = std::pow(p, gamma);
  return {a * m * sp, a * m * (p + gamma * (1.0 - p) * sp)};
}

LossGrad smooth_l1(double pred, double target, double beta) {
  double d = pred - target, ad = std::fabs(d);
  if (ad < beta) return {0.5 * d * d / beta, d / beta};
  return {ad - 0.5 * beta, d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0)};
}

double giou_loss_with_grad(const float* anchor, const double deltas[6], const double w[6], const float* gt,
                           double grad[6]) {
  D6 d[6], b[6];
  for (int i = 0; i < 6; ++i) {
    d[i] = D6(deltas[i]);
    d[i].g[i] = 1.0;
  }
  decode_one<D6>(anchor, d, w, b, [](const D6& x) { return dexp(x); });
  D6 inter(1.0), vp(1.0), encl(1.0);
  double vg = 1.0;
  for (int k = 0; k < 3; ++k) {
    D6 lo = dmax(b[k], D6(double(gt[k])));
    D6 hi = dmin(b[k + 3], D6(double(gt[k + 3])));
    inter = inter * clamp0(hi - lo);
    vp = vp * clamp0(b[k + 3] - b[k]);
    vg *= std::max(0.0, double(gt[k + 3]) - double(gt[k]));
    D6 elo = dmin(b[k], D6(double(gt[k])));
    D6 ehi = dmax(b[k + 3], D6(double(gt[k + 3])));
    encl = encl * clamp0(ehi - elo);
  }
  D6 uni = vp + D6(vg) - inter;
  D6 iou = inter / (uni + D6(kBoxEps));
  D6 giou = iou - (encl - uni) / (encl + D6(kBoxEps));
  for (int i = 0; i < 6; ++i) grad[i] = -giou.g[i];
  return 1.0 - giou.v;
}

}  // namespace ds::det
