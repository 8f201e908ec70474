// Greedy non-maximum suppression (MONAI non_max_suppression / batched_nms
// semantics): boxes are visited by descending score (ties: lower index
// first); a box is kept unless its IoU with an already kept box is
// > iou_threshold. At most max_keep boxes are kept (max_keep < 0: no limit).
// Returns the kept indices in the order they were kept (descending score).
#pragma once
#include <cstdint>
#include <vector>

namespace ds::det {

std::vector<int32_t> nms(const float* boxes, const float* scores, int64_t n, double iou_threshold,
                         int64_t max_keep = -1);

// Per-class NMS: boxes only suppress boxes with the same label. Equivalent to
// running nms per label, merging the kept boxes by descending score and
// keeping the first max_keep.
std::vector<int32_t> batched_nms(const float* boxes, const float* scores, const int32_t* labels, int64_t n,
                                 double iou_threshold, int64_t max_keep = -1);

// Indices 0..n-1 sorted by descending score, ties by ascending index.
std::vector<int32_t> argsort_desc(const float* scores, int64_t n);

}  // namespace ds::det
