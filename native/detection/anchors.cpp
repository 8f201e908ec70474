#include "detection/anchors.h"

#include <cmath>

#include "core/error.h"

namespace ds::det {

std::vector<std::vector<float>> generate_anchors(const Int3& image_size, const std::vector<Int3>& fms,
                                                 const std::vector<Dbl3>& shapes, const std::vector<double>& scales_in) {
  DS_CHECK(!fms.empty(), "anchors.generate: featureMapSizes must list at least one level");
  DS_CHECK(!shapes.empty(), "anchors.generate: baseAnchorShapes must list at least one shape");
  DS_CHECK(scales_in.empty() || scales_in.size() == fms.size(), "anchors.generate: featureMapScales has ",
           scales_in.size(), " entries but there are ", fms.size(), " levels");
  for (int k = 0; k < 3; ++k)
    DS_CHECK(image_size[k] > 0, "anchors.generate: imageSize must be positive, got ", image_size[k], " on axis ", k);
  for (const auto& s : shapes)
    for (int k = 0; k < 3; ++k)
      DS_CHECK(std::isfinite(s[k]) && s[k] > 0, "anchors.generate: base anchor shapes must be positive, got ", s[k]);
  const int64_t A = int64_t(shapes.size());
  std::vector<std::vector<float>> out;
  for (size_t l = 0; l < fms.size(); ++l) {
    const Int3& f = fms[l];
    double scale = scales_in.empty() ? std::ldexp(1.0, int(l)) : scales_in[l];
    DS_CHECK(std::isfinite(scale) && scale > 0, "anchors.generate: feature map scale must be positive, got ", scale);
    Int3 stride;
    for (int k = 0; k < 3; ++k) {
      DS_CHECK(f[k] > 0 && f[k] <= image_size[k], "anchors.generate: level ", l, " feature map size ", f[k],
               " on axis ", k, " must be in [1, imageSize=", image_size[k], "]");
      stride[k] = image_size[k] / f[k];
    }
    // Corner offsets of each base anchor; std::nearbyint rounds half to even
    // in the default rounding mode, like torch.round.
    std::vector<float> lo(static_cast<size_t>(A * 3)), hi(size_t(A * 3));
    for (int64_t a = 0; a < A; ++a)
      for (int k = 0; k < 3; ++k) {
        double half = scale * shapes[size_t(a)][k] / 2.0;
        lo[size_t(a * 3 + k)] = float(std::nearbyint(-half));
        hi[size_t(a * 3 + k)] = float(std::nearbyint(half));
      }
    std::vector<float> v(static_cast<size_t>(f[0] * f[1] * f[2] * A * 6));
    float* p = v.data();
    for (int64_t iz = 0; iz < f[2]; ++iz)
      for (int64_t iy = 0; iy < f[1]; ++iy)
        for (int64_t ix = 0; ix < f[0]; ++ix) {
          const float c[3] = {float(ix * stride[0]), float(iy * stride[1]), float(iz * stride[2])};
          for (int64_t a = 0; a < A; ++a, p += 6)
            for (int k = 0; k < 3; ++k) {
              p[k] = c[k] + lo[size_t(a * 3 + k)];
              p[k + 3] = c[k] + hi[size_t(a * 3 + k)];
            }
        }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace ds::det
