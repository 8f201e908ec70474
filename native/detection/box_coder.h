// MONAI BoxCoder for 3D boxes. With anchor centre c_a, size s_a and GT
// centre c_g, size s_g per axis (x, y, z):
//   encode: d_k = w_k (c_g - c_a) / s_a,  d_{k+3} = w_{k+3} log(s_g / s_a)
//   decode: c = d_k / w_k * s_a + c_a, s = exp(min(d_{k+3} / w_{k+3}, log(1000/16))) * s_a,
//           box = [c - s/2, c + s/2]
// Deltas are ordered (dx, dy, dz, dw, dh, dd).
#pragma once
#include <cmath>
#include <cstdint>

namespace ds::det {

// Upper clamp of the decoded log-size term (as torchvision / MONAI).
inline const double kBoxXformClip = std::log(1000.0 / 16.0);

// Validates weights (finite and > 0); throws ds::Error.
void check_coder_weights(const double w[6]);

// Encodes n GT boxes against n anchors (paired) into deltas. Anchors and GT
// boxes must have positive size on every axis (log of a zero size is -inf).
void encode_boxes(const float* anchors, const float* gt, int64_t n, const double w[6], float* deltas);

// Decodes n delta rows (stride 6 floats) against n anchors.
void decode_boxes(const float* anchors, const float* deltas, int64_t n, const double w[6], float* boxes);

// One box, templated on the scalar so the GIoU loss can differentiate it
// (T = double or a dual number). `expf` is exp for T.
template <class T, class Exp>
inline void decode_one(const float* anchor, const T* d, const double w[6], T* out, Exp expf) {
  for (int k = 0; k < 3; ++k) {
    double sa = double(anchor[k + 3]) - double(anchor[k]);
    double ca = double(anchor[k]) + 0.5 * sa;
    T dc = d[k] * (1.0 / w[k]);
    T ds = d[k + 3] * (1.0 / w[k + 3]);
    if (ds > kBoxXformClip) ds = T(kBoxXformClip);  // clamped: no gradient, like torch.clamp
    T c = dc * sa + ca;
    T s = expf(ds) * sa;
    out[k] = c - s * 0.5;
    out[k + 3] = c + s * 0.5;
  }
}

}  // namespace ds::det
