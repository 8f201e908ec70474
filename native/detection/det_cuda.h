// CUDA versions of the detection building blocks, on device tensors, with the
// CPU functions' semantics (box_ops.h, box_coder.h, losses.h, nms.h); the CPU
// functions are the references of the parity tests. Boxes are float32
// [n, 6] tensors (x1, y1, z1, x2, y2, z2). Implemented in box_cuda.cu,
// loss_cuda.cu, nms_cuda.cu, sampler_cuda.cu, postprocess_cuda.cu, atss_cuda.cu and
// detector_loss_cuda.cu; det_cuda_nocuda.cpp throws without CUDA.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "detection/atss.h"
#include "detection/detector_loss.h"
#include "detection/losses.h"
#include "detection/postprocess.h"
#include "detection/sampler.h"

namespace ds::det {

// Pairwise IoU / GIoU [n, m] (float32) of a [n, 6] and b [m, 6]; same arithmetic as pair_iou / pair_giou.
Tensor box_iou_cuda(const Tensor& a, const Tensor& b);
Tensor box_giou_cuda(const Tensor& a, const Tensor& b);

// encode_boxes / decode_boxes on paired rows: anchors [n, 6] float32 and
// gt [n, 6] float32 -> deltas [n, 6] float32; deltas [n, 6] (any float dtype) -> boxes [n, 6] float32.
Tensor encode_boxes_cuda(const Tensor& anchors, const Tensor& gt, const double w[6]);
Tensor decode_boxes_cuda(const Tensor& anchors, const Tensor& deltas, const double w[6]);

// Per-element classification loss and its derivative w.r.t. the logit (as
// cls_element_loss, computed in double): logits [n] any float dtype, targets
// uint8 [n] with 1 = positive, 0 = negative, anything else = ignored (loss and
// gradient 0). loss and grad receive float32 [n] tensors.
void cls_loss_cuda(const Tensor& logits, const Tensor& targets, ClsLossKind kind, double gamma, double alpha,
                   Tensor* loss, Tensor* grad);
// Element-wise smooth L1 (as smooth_l1): pred and target of equal shape -> float32 loss and d/dpred.
void smooth_l1_cuda(const Tensor& pred, const Tensor& target, double beta, Tensor* loss, Tensor* grad);
// GIoU loss per row (as giou_loss_with_grad): anchors [n, 6] float32, deltas
// [n, 6] any float dtype, gt [n, 6] float32 -> loss float32 [n], grad float32 [n, 6].
void giou_loss_cuda(const Tensor& anchors, const Tensor& deltas, const Tensor& gt, const double w[6], Tensor* loss,
                    Tensor* grad);

// Greedy NMS with nms()'s semantics (descending score, ties by lower index,
// suppress IoU > threshold, at most max_keep): boxes [n, 6] and scores [n]
// float32 on one GPU. Sorts with CUB, builds the n x n suppression bitmask on
// the GPU and runs the (cheap, sequential) greedy pass over it on the host.
// n is limited to 65536 (the mask has n^2 / 8 bytes).
std::vector<int32_t> nms_cuda(const Tensor& boxes, const Tensor& scores, double iou_threshold, int64_t max_keep = -1);
// Per-label NMS (as batched_nms): labels int32 [n] on the same GPU.
std::vector<int32_t> batched_nms_cuda(const Tensor& boxes, const Tensor& scores, const Tensor& labels,
                                      double iou_threshold, int64_t max_keep = -1);

// Hard-negative sampler (as sample_hard_negatives, same Rng draws, so the
// same seed gives the same sample): matched int32 [n] and score float32 [n]
// on one GPU. The GPU ranks the background anchors (CUB radix sort of a
// (background, score) key, stable, so ties keep the lower index first); the
// host takes the hardest pool and draws with the CPU's RNG.
Sample sample_hard_negatives_cuda(const Tensor& matched, const Tensor& score, const SamplerOptions& o, Rng& rng);

// postprocess() for head outputs on a GPU (any float dtype; anchors stay host
// pointers). Scoring and the per-level top-K run on the GPU (CUB sort); the
// K candidates per level then go through the CPU's decode / clip / size
// filter / batched NMS, so results equal the CPU's.
std::vector<Detections> postprocess_cuda(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                                         const std::vector<const float*>& anchors,
                                         const std::vector<int64_t>& anchor_counts,
                                         const std::vector<std::array<double, 3>>& image_sizes,
                                         const PostprocessOptions& opts);

// ATSS (as atss_match, whose matches it reproduces exactly) for a batch:
// anchors float32 [total, 6] on a GPU (levels concatenated, level_counts[l]
// anchors on level l, per_location anchors per location); the GT boxes of
// image b are host boxes gt_boxes[b] (gt_counts[b] of them). Returns matched
// int32 [N, total] on the anchors' GPU: the GT index within its image, -1
// for background. numCandidates * anchorsPerLocation is limited to 64 and
// the levels to 8. Enqueued on the compute stream; only small host-to-device
// copies of the GT boxes (no wait for the GPU).
Tensor atss_match_cuda(const Tensor& anchors, const std::vector<int64_t>& level_counts, int64_t per_location,
                       const std::vector<const float*>& gt_boxes, const std::vector<int64_t>& gt_counts,
                       const AtssOptions& opts);

// detector_loss for head outputs on a GPU (float32, float64, float16 or
// bfloat16; called by detector_loss after its validation, with A anchors per
// location). Gradients are device tensors shaped like the inputs in their
// dtype; loss sums accumulate in double. Host synchronisation: the sampler
// reads each image's matches (one small copy per image) and the loss values
// are read once at the end.
DetectorLoss detector_loss_cuda(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                                const std::vector<const float*>& anchors, const std::vector<int64_t>& anchor_counts,
                                int64_t per_location, const std::vector<ImageTargets>& targets,
                                const DetectorLossOptions& opts);

}  // namespace ds::det
