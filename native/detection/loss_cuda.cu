// Detector element losses on CUDA (see det_cuda.h), computed in double like
// the CPU reference (losses.cpp); one thread per element / box row.
// The GIoU gradient uses the same forward-mode dual numbers (6 partials) as
// the CPU, so both follow the same branch choices (max/min ties, clamps).
// Speed idea: float math would do for training; double keeps exact parity
// and the kernels are memory-bound on data-centre GPUs.
#include "detection/box_coder.h"
#include "detection/det_cuda.h"
#include "detection/det_cuda_loss.cuh"

namespace ds::det {
namespace {
using namespace ds::cuda;
using namespace ds::det::cudadet;

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
    double l, g;
    cls_element(double(Num<T>::load(logits[i])), t != 0, focal != 0, gamma, alpha, &l, &g);
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

template <class T>
__global__ void giou_loss_kernel(const float* __restrict__ anchors, const T* __restrict__ deltas,
                                 const float* __restrict__ gt, int64_t n, Weights w, double clip,
                                 float* __restrict__ loss, float* __restrict__ grad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    double d[6], gr[6];
    for (int j = 0; j < 6; ++j) d[j] = double(Num<T>::load(deltas[6 * i + j]));
    loss[i] = float(giou_loss_row(anchors + 6 * i, d, w, clip, gt + 6 * i, gr));
    for (int j = 0; j < 6; ++j) grad[6 * i + j] = float(gr[j]);
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
