// Detector element losses on CUDA (see det_cuda.h), computed in double like
// the CPU reference (losses.cpp); one thread per element / box row.
// The GIoU gradient uses the same forward-mode dual numbers (6 partials) as
// the CPU, so both follow the same branch choices (max/min ties, clamps).
// Speed idea: float math would do for training; double keeps exact parity
// and the kernels are memory-bound on data-centre GPUs.
#include "detection/box_coder.h"
#include "detection/det_cuda.h"
#include "detection/det_cuda_common.cuh"

namespace ds::det {
namespace {
using namespace ds::cuda;
using namespace ds::det::cudadet;

__device__ __forceinline__ double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }
__device__ __forceinline__ double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

template <class T>
__global__ void cls_loss_kernel(const T* __restrict__ logits, const uint8_t* __restrict__ targets, int64_t n, int focal,
                                double gamma, double alpha, float* __restrict__ loss, float* __restrict__ grad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const uint8_t t = targets[i];
    if (t > 1) {
      loss[i] = 0.f;
      grad[i] = 0.f;
      continue;
    }
    const double x = double(Num<T>::load(logits[i]));
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
    loss[i] = float(l);
    grad[i] = float(g);
  }
}

template <class T>
__global__ void smooth_l1_kernel(const T* __restrict__ pred, const T* __restrict__ target, int64_t n, double beta,
                                 float* __restrict__ loss, float* __restrict__ grad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const double d = double(Num<T>::load(pred[i])) - double(Num<T>::load(target[i])), ad = fabs(d);
    if (ad < beta) {
      loss[i] = float(0.5 * d * d / beta);
      grad[i] = float(d / beta);
    } else {
      loss[i] = float(ad - 0.5 * beta);
      grad[i] = float(d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0));
    }
  }
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

template <class T>
__global__ void giou_loss_kernel(const float* __restrict__ anchors, const T* __restrict__ deltas,
                                 const float* __restrict__ gt, int64_t n, Weights w, double clip,
                                 float* __restrict__ loss, float* __restrict__ grad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float* an = anchors + 6 * i;
    const float* g = gt + 6 * i;
    D6 b[6];
    // decode_one on dual numbers: d_j has derivative e_j.
    for (int k = 0; k < 3; ++k) {
      const double sa = double(an[k + 3]) - double(an[k]);
      const double ca = double(an[k]) + __dmul_rn(0.5, sa);
      D6 dk = dconst(double(Num<T>::load(deltas[6 * i + k])));
      dk.g[k] = 1.0;
      D6 dk3 = dconst(double(Num<T>::load(deltas[6 * i + k + 3])));
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
    loss[i] = float(1.0 - gi.v);
    for (int j = 0; j < 6; ++j) grad[6 * i + j] = float(-gi.g[j]);
  }
}

}  // namespace

void cls_loss_cuda(const Tensor& logits, const Tensor& targets, ClsLossKind kind, double gamma, double alpha,
                   Tensor* loss, Tensor* grad) {
  check_cuda_tensor(logits, "classification loss: logits");
  check_cuda_tensor(targets, "classification loss: targets");
  check_same_device(logits, targets, "classification loss: logits", "classification loss: targets");
  DS_CHECK(targets.dtype() == DType::UInt8 && targets.numel() == logits.numel(),
           "classification loss: targets must be uint8 with one entry per logit (", logits.numel(), "), got ",
           targets.describe());
  DS_CHECK(gamma >= 0, "focal loss: gamma must be >= 0, got ", gamma);
  const int64_t n = logits.numel();
  DeviceGuard guard(logits.device().index);
  *loss = Tensor::empty(logits.shape(), DType::Float32, logits.device());
  *grad = Tensor::empty(logits.shape(), DType::Float32, logits.device());
  if (!n) return;
  dispatch_gpu_float(logits.dtype(), "classification loss", [&](auto tag) {
    using T = decltype(tag);
    cls_loss_kernel<T><<<grid_for(n), kThreads, 0, stream_for(logits)>>>(
        dptr<const T>(logits), dptr<const uint8_t>(targets), n, kind == ClsLossKind::Focal ? 1 : 0, gamma, alpha,
        dptr<float>(*loss), dptr<float>(*grad));
  });
  DS_CUDA_LAUNCH_CHECK();
}

void smooth_l1_cuda(const Tensor& pred, const Tensor& target, double beta, Tensor* loss, Tensor* grad) {
  check_cuda_tensor(pred, "smooth L1: prediction");
  check_cuda_tensor(target, "smooth L1: target");
  check_same_device(pred, target, "smooth L1: prediction", "smooth L1: target");
  DS_CHECK(pred.shape() == target.shape() && pred.dtype() == target.dtype(),
           "smooth L1: prediction and target must have the same shape and dtype, got ", pred.describe(), " and ",
           target.describe());
  DS_CHECK(beta > 0, "smooth L1: beta must be > 0, got ", beta);
  const int64_t n = pred.numel();
  DeviceGuard guard(pred.device().index);
  *loss = Tensor::empty(pred.shape(), DType::Float32, pred.device());
  *grad = Tensor::empty(pred.shape(), DType::Float32, pred.device());
  if (!n) return;
  dispatch_gpu_float(pred.dtype(), "smooth L1", [&](auto tag) {
    using T = decltype(tag);
    smooth_l1_kernel<T><<<grid_for(n), kThreads, 0, stream_for(pred)>>>(dptr<const T>(pred), dptr<const T>(target), n,
                                                                        beta, dptr<float>(*loss), dptr<float>(*grad));
  });
  DS_CUDA_LAUNCH_CHECK();
}

void giou_loss_cuda(const Tensor& anchors, const Tensor& deltas, const Tensor& gt, const double w[6], Tensor* loss,
                    Tensor* grad) {
  for (const Tensor* t : {&anchors, &deltas, &gt}) {
    check_cuda_tensor(*t, "GIoU loss input");
    check_same_device(anchors, *t, "GIoU loss: anchors", "GIoU loss input");
    DS_CHECK(t->dim() == 2 && t->size(1) == 6 && t->size(0) == anchors.size(0),
             "GIoU loss: anchors, deltas and GT boxes must be [n, 6] with the same n, got ", t->describe());
  }
  DS_CHECK(anchors.dtype() == DType::Float32 && gt.dtype() == DType::Float32,
           "GIoU loss: anchors and GT boxes must be float32");
  check_coder_weights(w);
  Weights ww;
  for (int k = 0; k < 6; ++k) ww.w[k] = w[k];
  const int64_t n = anchors.size(0);
  DeviceGuard guard(anchors.device().index);
  *loss = Tensor::empty({n}, DType::Float32, anchors.device());
  *grad = Tensor::empty({n, 6}, DType::Float32, anchors.device());
  if (!n) return;
  dispatch_gpu_float(deltas.dtype(), "GIoU loss", [&](auto tag) {
    using T = decltype(tag);
    giou_loss_kernel<T><<<grid_for(n, 128), 128, 0, stream_for(anchors)>>>(
        dptr<const float>(anchors), dptr<const T>(deltas), dptr<const float>(gt), n, ww, kBoxXformClip,
        dptr<float>(*loss), dptr<float>(*grad));
  });
  DS_CUDA_LAUNCH_CHECK();
}

}  // namespace ds::det
