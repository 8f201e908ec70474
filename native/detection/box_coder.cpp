#include "detection/box_coder.h"

#include "core/error.h"
#include "core/thread_pool.h"

namespace ds::det {

void check_coder_weights(const double w[6]) {
  for (int k = 0; k < 6; ++k)
    DS_CHECK(std::isfinite(w[k]) && w[k] > 0, "box coder: weights must be 6 positive numbers, got ", w[k],
             " at position ", k);
}

void encode_boxes(const float* anchors, const float* gt, int64_t n, const double w[6], float* out) {
  check_coder_weights(w);
  for (int64_t i = 0; i < n; ++i) {
    const float* a = anchors + 6 * i;
    const float* g = gt + 6 * i;
    for (int k = 0; k < 3; ++k) {
      double sa = double(a[k + 3]) - a[k], sg = double(g[k + 3]) - g[k];
      DS_CHECK(sa > 0, "box encode: anchor ", i, " has size ", sa, " on axis ", k, "; anchors need positive sizes");
      DS_CHECK(sg > 0, "box encode: GT box ", i, " has size ", sg, " on axis ", k,
               "; boxes to encode need positive sizes (log of 0 is -inf)");
      double ca = a[k] + 0.5 * sa, cg = g[k] + 0.5 * sg;
      out[6 * i + k] = float(w[k] * (cg - ca) / sa);
      out[6 * i + k + 3] = float(w[k + 3] * std::log(sg / sa));
    }
  }
}

void decode_boxes(const float* anchors, const float* deltas, int64_t n, const double w[6], float* out) {
  check_coder_weights(w);
  parallel_for(0, n, 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double d[6], b[6];
      for (int k = 0; k < 6; ++k) d[k] = deltas[6 * i + k];
      decode_one<double>(anchors + 6 * i, d, w, b, [](double x) { return std::exp(x); });
      for (int k = 0; k < 6; ++k) out[6 * i + k] = float(b[k]);
    }
  });
}

}  // namespace ds::det
