#include "detection/box_ops.h"

#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"

namespace ds::det {

int64_t box_count(int64_t len, const char* what) {
  DS_CHECK(len % 6 == 0, what, ": a box array must hold 6 numbers per box [x1, y1, z1, x2, y2, z2], got length ",
           len, " (not a multiple of 6)");
  return len / 6;
}

// True when boxes [b, e) are all finite with max >= min on every axis. The
// finiteness test is an integer OR-reduction over the exponent bits and the
// order test an OR of comparisons, which keeps the scan of large anchor sets
// fast (branchy per-box checks were ~5x slower).
static bool boxes_ok(const float* boxes, int64_t b, int64_t e) {
  uint32_t nonfinite = 0;
  const float* p = boxes + 6 * b;
  const int64_t m = 6 * (e - b);
  for (int64_t i = 0; i < m; ++i) {
    uint32_t u;
    std::memcpy(&u, p + i, 4);
    nonfinite |= uint32_t((u & 0x7F800000u) == 0x7F800000u);
  }
  int bad = 0;
  for (int64_t i = b; i < e; ++i) {
    const float* q = boxes + 6 * i;
    bad |= int(q[3] < q[0]) | int(q[4] < q[1]) | int(q[5] < q[2]);
  }
  return nonfinite == 0 && bad == 0;
}

void check_boxes(const float* boxes, int64_t n, const char* what) {
  static const char* names[3] = {"x", "y", "z"};
  if (n > 65536) {
    // Large anchor sets: a parallel scan finds whether anything is wrong; the
    // serial pass below then reports the first bad box deterministically.
    std::atomic<bool> bad{false};
    parallel_for(0, n, 16384, [&](int64_t b0, int64_t b1) {
      if (!boxes_ok(boxes, b0, b1)) bad.store(true, std::memory_order_relaxed);
    });
    if (!bad.load()) return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 6 * i;
    if (boxes_ok(boxes, i, i + 1)) continue;
    for (int k = 0; k < 6; ++k)
      DS_CHECK(std::isfinite(b[k]), what, ": box ", i, " has a non-finite coordinate (", b[k], ") at position ", k,
               "; boxes must be finite [x1, y1, z1, x2, y2, z2]");
    for (int k = 0; k < 3; ++k)
      DS_CHECK(b[k + 3] >= b[k], what, ": box ", i, " has ", names[k], "2 < ", names[k], "1 (", b[k + 3], " < ",
               b[k], "); boxes are [x1, y1, z1, x2, y2, z2] with max >= min on every axis");
  }
}

double pair_giou(const float* a, const float* b) {
  double inter = box_intersection(a, b);
  double uni = double(box_volume(a)) + double(box_volume(b)) - inter;
  double iou = inter / (uni + kBoxEps);
  double encl = 1.0;
  for (int k = 0; k < 3; ++k) encl *= std::max(0.0, double(std::max(a[k + 3], b[k + 3])) - std::min(a[k], b[k]));
  return iou - (encl - uni) / (encl + kBoxEps);
}

template <class F>
static std::vector<float> pairwise(const float* a, int64_t n, const float* b, int64_t m, F f) {
  check_boxes(a, n, "box IoU: first box array");
  check_boxes(b, m, "box IoU: second box array");
  std::vector<float> out(static_cast<size_t>(n * m));
  parallel_for(0, n, std::max<int64_t>(1, 4096 / std::max<int64_t>(m, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < m; ++j) out[size_t(i * m + j)] = float(f(a + 6 * i, b + 6 * j));
  });
  return out;
}

std::vector<float> box_iou(const float* a, int64_t n, const float* b, int64_t m) {
  return pairwise(a, n, b, m, [](const float* x, const float* y) { return pair_iou(x, y); });
}

std::vector<float> box_giou(const float* a, int64_t n, const float* b, int64_t m) {
  return pairwise(a, n, b, m, [](const float* x, const float* y) { return pair_giou(x, y); });
}

void clip_boxes(float* boxes, int64_t n, const std::array<double, 3>& size) {
  for (int k = 0; k < 3; ++k)
    DS_CHECK(std::isfinite(size[k]) && size[k] > 0, "clip boxes: image size must be positive, got ", size[k],
             " on axis ", k);
  for (int64_t i = 0; i < n; ++i) {
    float* b = boxes + 6 * i;
    for (int k = 0; k < 3; ++k) {
      float hi = float(size[k]);
      b[k] = std::min(std::max(b[k], 0.0f), hi);
      b[k + 3] = std::min(std::max(b[k + 3], 0.0f), hi);
    }
  }
}

std::vector<int32_t> keep_non_small(const float* boxes, int64_t n, double min_size) {
  std::vector<int32_t> keep;
  keep.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 6 * i;
    // Same test as MONAI: max >= min + min_size on every axis.
    bool ok = double(b[3]) >= double(b[0]) + min_size && double(b[4]) >= double(b[1]) + min_size &&
              double(b[5]) >= double(b[2]) + min_size;
    if (ok) keep.push_back(int32_t(i));
  }
  return keep;
}

}  // namespace ds::det
