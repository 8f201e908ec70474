#include "detection/nms.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "core/error.h"
#include "detection/box_ops.h"

namespace ds::det {

std::vector<int32_t> argsort_desc(const float* scores, int64_t n) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  return order;
}

// Greedy NMS over the boxes listed in `order` (already sorted by score).
static std::vector<int32_t> greedy(const float* boxes, const std::vector<int32_t>& order, double thr,
                                   int64_t max_keep) {
  const size_t m = order.size();
  std::vector<char> suppressed(m, 0);
  std::vector<double> vol(m);
  for (size_t i = 0; i < m; ++i) vol[i] = box_volume(boxes + 6 * size_t(order[i]));
  std::vector<int32_t> keep;
  for (size_t i = 0; i < m; ++i) {
    if (suppressed[i]) continue;
    keep.push_back(order[i]);
    if (max_keep >= 0 && int64_t(keep.size()) >= max_keep) break;
    const float* bi = boxes + 6 * size_t(order[i]);
    for (size_t j = i + 1; j < m; ++j) {
      if (suppressed[j]) continue;
      const float* bj = boxes + 6 * size_t(order[j]);
      double inter = box_intersection(bi, bj);
      if (inter <= 0) continue;  // IoU 0 never exceeds a threshold >= 0
      double iou = inter / (vol[i] + vol[j] - inter + kBoxEps);
      if (iou > thr) suppressed[j] = 1;
    }
  }
  return keep;
}

static void check_nms_args(const float* boxes, const float* scores, int64_t n, double thr) {
  check_boxes(boxes, n, "nms: boxes");
  for (int64_t i = 0; i < n; ++i)
    DS_CHECK(!std::isnan(scores[i]), "nms: score ", i, " is NaN; scores must be numbers");
  DS_CHECK(std::isfinite(thr) && thr >= 0, "nms: iouThreshold must be a finite number >= 0, got ", thr);
}

std::vector<int32_t> nms(const float* boxes, const float* scores, int64_t n, double thr, int64_t max_keep) {
  check_nms_args(boxes, scores, n, thr);
  if (max_keep == 0) return {};
  return greedy(boxes, argsort_desc(scores, n), thr, max_keep);
}

std::vector<int32_t> batched_nms(const float* boxes, const float* scores, const int32_t* labels, int64_t n,
                                 double thr, int64_t max_keep) {
  check_nms_args(boxes, scores, n, thr);
  if (max_keep == 0 || n == 0) return {};
  std::vector<int32_t> order = argsort_desc(scores, n);
  // Split the global order by label (each sub-list stays sorted).
  std::unordered_map<int32_t, std::vector<int32_t>> by_label;
  std::vector<int32_t> label_seq;
  for (int32_t i : order) {
    auto it = by_label.find(labels[i]);
    if (it == by_label.end()) {
      label_seq.push_back(labels[i]);
      it = by_label.emplace(labels[i], std::vector<int32_t>()).first;
    }
    it->second.push_back(i);
  }
  std::vector<char> kept(size_t(n), 0);
  for (int32_t lab : label_seq)
    for (int32_t i : greedy(boxes, by_label[lab], thr, max_keep)) kept[size_t(i)] = 1;
  std::vector<int32_t> keep;
  for (int32_t i : order)
    if (kept[size_t(i)]) {
      keep.push_back(i);
      if (max_keep >= 0 && int64_t(keep.size()) >= max_keep) break;
    }
  return keep;
}

}  // namespace ds::det
