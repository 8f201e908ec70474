// Element losses of the detector with their derivatives, in double.
//
// Classification (x = logit, t = target in {0, 1}, p = sigmoid(x)):
//   BCE:   -t log p - (1 - t) log(1 - p)
//   focal: BCE * (1 - p_t)^gamma * alpha_t   (p_t = p if t = 1 else 1 - p;
//          alpha_t = alpha if t = 1 else 1 - alpha; no alpha factor when alpha < 0)
// which are MONAI's FocalLoss (sigmoid) / torch BCEWithLogitsLoss per element.
// Box regression:
//   smooth L1 (beta): 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = pred - target
//   GIoU loss: 1 - GIoU(decode(anchor, deltas), gt), differentiated w.r.t. the deltas.
#pragma once
#include <cstdint>

namespace ds::det {

enum class ClsLossKind { Focal, BCE };
enum class BoxLossKind { SmoothL1, GIoU };

struct LossGrad {
  double loss;
  double grad;
};

// One logit; alpha < 0 means "no alpha weighting".
LossGrad cls_element_loss(double x, bool target, ClsLossKind kind, double gamma, double alpha);

LossGrad smooth_l1(double pred, double target, double beta);

// 1 - GIoU(decode(anchor, deltas, w), gt); grad[6] receives d loss / d deltas.
double giou_loss_with_grad(const float* anchor, const double deltas[6], const double w[6], const float* gt,
                           double grad[6]);

}  // namespace ds::det
