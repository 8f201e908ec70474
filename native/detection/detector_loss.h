// The RetinaNet training loss from raw head outputs (MONAI RetinaNetDetector
// compute_loss semantics), with gradients w.r.t. every head output.
//
// Head outputs per level l (channels last, float32 or float64; on a GPU also
// float16 / bfloat16, and then the loss runs there: det_cuda.h):
//   cls[l] [N, D1, D2, D3, A*C]   channel a*C + c
//   box[l] [N, D1, D2, D3, A*6]   channel a*6 + j, j over (dx, dy, dz, dw, dh, dd)
// Anchor index within a level: ((d1*D2 + d2)*D3 + d3)*A + a.
//
// Per image: ATSS matching -> hard-negative sampling (hardness = max logit
// over classes) -> classification loss over the sampled anchors with one-hot
// targets (focal or BCE), mean over (#sampled anchors in the batch * C);
// box loss over ALL foreground anchors of the batch: smooth L1 on encoded
// targets (mean over #fg * 6) or GIoU on decoded boxes (mean over #fg); 0 when
// the batch has no foreground. total = cls_weight * cls + box.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "detection/atss.h"
#include "detection/losses.h"
#include "detection/sampler.h"

namespace ds::det {

struct DetectorLossOptions {
  int64_t num_classes = 1;
  ClsLossKind cls_loss = ClsLossKind::Focal;
  BoxLossKind box_loss = BoxLossKind::SmoothL1;
  double focal_gamma = 2.0;
  double focal_alpha = -1.0;  // < 0: no alpha weighting
  double smooth_l1_beta = 1.0 / 9.0;
  AtssOptions atss;
  SamplerOptions sampler;
  double coder_weights[6] = {1, 1, 1, 1, 1, 1};
  uint64_t seed = 0;
  double cls_weight = 1.0;
  // The gradients (not the loss values) are multiplied by this: the loss
  // scale of float16 mixed precision (nn/loss_scaler.h), applied here so the
  // scaled seed of the backward pass costs no extra pass.
  double grad_scale = 1.0;
  // Mixed precision: non-finite head outputs (a float16 overflow) give
  // zero gradients, NaN losses and DetectorLoss::non_finite = true instead of
  // an error, so the trainer can skip the step and lower the loss scale (as
  // torch's GradScaler does). Off: such outputs throw ds::Error.
  bool non_finite_ok = false;
};

// GT of one image: n boxes (6n floats) and n labels in [0, num_classes).
struct ImageTargets {
  const float* boxes = nullptr;
  const int32_t* labels = nullptr;
  int64_t n = 0;
};

struct DetectorLoss {
  double cls = 0, box = 0, total = 0;
  std::vector<Tensor> cls_grads, box_grads;  // same shapes/dtypes as the inputs
  int64_t num_sampled_pos = 0, num_sampled_neg = 0, num_foreground = 0;
  bool non_finite = false;  // only with DetectorLossOptions::non_finite_ok
};

// Zero gradients shaped like the inputs (same dtype, on their device) and
// zero losses: the start of every loss computation.
DetectorLoss zero_grad_loss(const std::vector<Tensor>& cls, const std::vector<Tensor>& box);

// The result for non-finite head outputs under non_finite_ok: zero_grad_loss
// with NaN losses and non_finite = true.
DetectorLoss non_finite_loss(const std::vector<Tensor>& cls, const std::vector<Tensor>& box);

// anchor counts per level are taken from the head output shapes; `anchors`
// must hold D1*D2*D3*A boxes per level.
DetectorLoss detector_loss(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                           const std::vector<const float*>& anchors, const std::vector<int64_t>& anchor_counts,
                           const std::vector<ImageTargets>& targets, const DetectorLossOptions& opts);

// Shared validation of head outputs: returns A; throws ds::Error.
int64_t check_head_outputs(const std::vector<Tensor>& cls, const std::vector<Tensor>& box, int64_t num_classes,
                           const std::vector<int64_t>& anchor_counts, const char* what);

}  // namespace ds::det
