// detection/det_cuda.h for builds without CUDA (no GPU tensor can exist there).
#include "core/error.h"
#include "detection/det_cuda.h"

namespace ds::det {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  DS_FAIL(op, ": the tensor is on a GPU but this build of detseg3d has no CUDA support");
}
}  // namespace

Tensor box_iou_cuda(const Tensor&, const Tensor&) { no_cuda("box IoU"); }
Tensor box_giou_cuda(const Tensor&, const Tensor&) { no_cuda("box GIoU"); }
Tensor encode_boxes_cuda(const Tensor&, const Tensor&, const double*) { no_cuda("box encode"); }
Tensor decode_boxes_cuda(const Tensor&, const Tensor&, const double*) { no_cuda("box decode"); }
void cls_loss_cuda(const Tensor&, const Tensor&, ClsLossKind, double, double, Tensor*, Tensor*) {
  no_cuda("classification loss");
}
void smooth_l1_cuda(const Tensor&, const Tensor&, double, Tensor*, Tensor*) { no_cuda("smooth L1"); }
void giou_loss_cuda(const Tensor&, const Tensor&, const Tensor&, const double*, Tensor*, Tensor*) {
  no_cuda("GIoU loss");
}
std::vector<int32_t> nms_cuda(const Tensor&, const Tensor&, double, int64_t) { no_cuda("nms"); }
std::vector<int32_t> batched_nms_cuda(const Tensor&, const Tensor&, const Tensor&, double, int64_t) {
  no_cuda("batched nms");
}
std::vector<Detections> postprocess_cuda(const std::vector<Tensor>&, const std::vector<Tensor>&,
                                         const std::vector<const float*>&, const std::vector<int64_t>&,
                                         const std::vector<std::array<double, 3>>&, const PostprocessOptions&) {
  no_cuda("postprocess");
}
Sample sample_hard_negatives_cuda(const Tensor&, const Tensor&, const SamplerOptions&, Rng&) {
  no_cuda("hard-negative sampler");
}

Tensor atss_match_cuda(const Tensor&, const std::vector<int64_t>&, int64_t, const std::vector<const float*>&,
                       const std::vector<int64_t>&, const AtssOptions&) {
  no_cuda("ATSS matching");
}
DetectorLoss detector_loss_cuda(const std::vector<Tensor>&, const std::vector<Tensor>&,
                                const std::vector<const float*>&, const std::vector<int64_t>&, int64_t,
                                const std::vector<ImageTargets>&, const DetectorLossOptions&) {
  no_cuda("detector loss");
}

}  // namespace ds::det
