// Axis-aligned 3D box operations on flat float arrays of boxes
// [x1, y1, z1, x2, y2, z2] (MONAI StandardMode: a box covers [x1, x2) etc.,
// size = max - min, no +1). All functions work on raw pointers so that the
// loss, matcher and post-processing (and a later CUDA backend) can share them.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace ds::det {

// Epsilon added to IoU / GIoU denominators: float32 machine epsilon (2^-23),
// as MONAI does, so that empty boxes give 0 instead of NaN.
constexpr double kBoxEps = 1.1920928955078125e-07;

// Number of boxes in a flat array of `len` floats; throws ds::Error unless len % 6 == 0.
int64_t box_count(int64_t len, const char* what);

// Throws ds::Error (naming `what` and the offending box) when a coordinate is
// not finite or x2 < x1 (resp. y, z) for any of the n boxes.
void check_boxes(const float* boxes, int64_t n, const char* what);

// Volume of one box (product of sizes; 0 when any size is <= 0).
template <class T>
inline T box_volume(const T* b) {
  T v = T(1);
  for (int k = 0; k < 3; ++k) {
    T s = b[k + 3] - b[k];
    if (!(s > T(0))) return T(0);
    v *= s;
  }
  return v;
}

// Intersection volume of two boxes.
template <class T, class U>
inline double box_intersection(const T* a, const U* b) {
  double v = 1.0;
  for (int k = 0; k < 3; ++k) {
    double lo = std::max<double>(a[k], b[k]);
    double hi = std::min<double>(a[k + 3], b[k + 3]);
    if (!(hi > lo)) return 0.0;
    v *= hi - lo;
  }
  return v;
}

// IoU of two boxes: inter / (union + eps), computed in double.
template <class T, class U>
inline double pair_iou(const T* a, const U* b) {
  double inter = box_intersection(a, b);
  double uni = double(box_volume<T>(a)) + double(box_volume<U>(b)) - inter;
  return inter / (uni + kBoxEps);
}

// Generalised IoU of two boxes: iou - (enclosure - union) / (enclosure + eps).
double pair_giou(const float* a, const float* b);

// Pairwise IoU / GIoU matrices, row-major [n, m]; inputs are validated.
std::vector<float> box_iou(const float* a, int64_t n, const float* b, int64_t m);
std::vector<float> box_giou(const float* a, int64_t n, const float* b, int64_t m);

// Clamps every coordinate of each box to [0, size] of its axis (x, y, z), in place.
void clip_boxes(float* boxes, int64_t n, const std::array<double, 3>& size_xyz);

// Indices (ascending) of the boxes whose size on every axis is >= min_size.
std::vector<int32_t> keep_non_small(const float* boxes, int64_t n, double min_size);

}  // namespace ds::det
