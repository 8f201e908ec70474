// From head outputs to detections (MONAI RetinaNetDetector.postprocess_detections
// + BoxSelector semantics), per image:
//   1. per level: scores = sigmoid(logits) (or the logits themselves when
//      apply_sigmoid is false), keep scores > score_thresh, then the
//      topk_candidates_per_level best (ties: lower anchor*C + class index);
//   2. decode those boxes against their anchors, clip to the image
//      [0, size] per axis, drop boxes smaller than min_size on any axis;
//   3. per-class NMS over all levels at nms_thresh, keep the
//      detections_per_img highest scores.
// Detections are sorted by descending score.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ds::det {

struct PostprocessOptions {
  int64_t num_classes = 1;
  double score_thresh = 0.02;
  int64_t topk_candidates_per_level = 1000;
  double nms_thresh = 0.22;
  int64_t detections_per_img = 100;
  double coder_weights[6] = {1, 1, 1, 1, 1, 1};
  bool apply_sigmoid = true;
  double min_size = 1.0;
};

struct Detections {
  std::vector<float> boxes;    // 6 per detection
  std::vector<float> scores;
  std::vector<int32_t> labels;
};

// image_sizes: one (x, y, z) size per image, or a single one for all.
std::vector<Detections> postprocess(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                                    const std::vector<const float*>& anchors, const std::vector<int64_t>& anchor_counts,
                                    const std::vector<std::array<double, 3>>& image_sizes,
                                    const PostprocessOptions& opts);

}  // namespace ds::det
