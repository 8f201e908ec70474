#include "nn/nn_util.h"

#include <algorithm>

#include "core/thread_pool.h"

namespace ds::nn {

void check_activation(const Tensor& x, const char* what) {
  DS_CHECK(x.defined(), what, " is missing (undefined tensor)");
  check_cpu(x, what);
  check_float(x, what);
  check_dims(x, 5, what, "[N, D1, D2, D3, C]");
}

void check_vector(const Tensor& v, int64_t n, DType dt, const char* what) {
  DS_CHECK(v.defined(), what, " is missing (undefined tensor)");
  check_cpu(v, what);
  DS_CHECK(v.dim() == 1 && v.size(0) == n, what, " must have shape [", n, "], got ", v.describe());
  DS_CHECK(v.dtype() == dt, what, " must be ", dtype_name(dt), " like the input, got ", v.describe());
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* what_a, const char* what_b) {
  DS_CHECK(b.defined(), what_b, " is missing (undefined tensor)");
  DS_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), what_b, " must match ", what_a, " (",
           a.describe(), "), got ", b.describe());
}

std::vector<double> reduce_rows(int64_t rows, int64_t width,
                                const std::function<void(int64_t, int64_t, double*)>& fn) {
  std::vector<double> total(size_t(width), 0.0);
  if (rows <= 0 || width <= 0) return total;
  const int64_t chunk = std::max<int64_t>(256, (rows + 255) / 256);
  const int64_t nchunks = (rows + chunk - 1) / chunk;
  std::vector<double> part(size_t(nchunks * width), 0.0);
  parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * chunk, r1 = std::min(rows, r0 + chunk);
      fn(r0, r1, part.data() + c * width);
    }
  });
  for (int64_t c = 0; c < nchunks; ++c)
    for (int64_t j = 0; j < width; ++j) total[j] += part[c * width + j];
  return total;
}

}  // namespace ds::nn
