// Device box arithmetic shared by the detection kernels; each function
// mirrors the CPU code in box_ops.h / box_coder.h operation by operation
// (volumes in float, intersections and ratios in double) so that results match.
#pragma once
#include "core/cuda_kernels.cuh"

namespace ds::det::cudadet {

constexpr double kEps = 1.1920928955078125e-07;  // kBoxEps

__device__ __forceinline__ float volume_f(const float* b) {
  float v = 1.f;
  for (int k = 0; k < 3; ++k) {
    const float s = b[k + 3] - b[k];
    if (!(s > 0.f)) return 0.f;
    v *= s;
  }
  return v;
}

__device__ __forceinline__ double intersection(const float* a, const float* b) {
  double v = 1.0;
  for (int k = 0; k < 3; ++k) {
    const double lo = fmax(double(a[k]), double(b[k]));
    const double hi = fmin(double(a[k + 3]), double(b[k + 3]));
    if (!(hi > lo)) return 0.0;
    v = __dmul_rn(v, hi - lo);
  }
  return v;
}

__device__ __forceinline__ double iou(const float* a, const float* b) {
  const double inter = intersection(a, b);
  const double uni = double(volume_f(a)) + double(volume_f(b)) - inter;
  return inter / (uni + kEps);
}

__device__ __forceinline__ double giou(const float* a, const float* b) {
  const double inter = intersection(a, b);
  const double uni = double(volume_f(a)) + double(volume_f(b)) - inter;
  const double i = inter / (uni + kEps);
  double encl = 1.0;
  for (int k = 0; k < 3; ++k)
    encl = __dmul_rn(encl, fmax(0.0, double(fmaxf(a[k + 3], b[k + 3])) - double(fminf(a[k], b[k]))));
  return i - (encl - uni) / (encl + kEps);
}

struct Weights {
  double w[6];
};

}  // namespace ds::det::cudadet
