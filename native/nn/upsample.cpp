#include "nn/upsample.h"

#include <algorithm>
#include <vector>

#include "core/thread_pool.h"
#include "nn/nn_cuda.h"
#include "nn/nn_util.h"

namespace ds::nn {
namespace {

std::vector<int64_t> source_index(int64_t in, int64_t out) {
  std::vector<int64_t> s(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) s[o] = std::min(in - 1, o * in / out);
  return s;
}

}  // namespace

Tensor upsample_nearest_forward(const Tensor& x, const std::array<int64_t, 3>& size) {
  // Tensors on a CUDA device go to the CUDA implementation (nn/nn_cuda.h).
  if (x.defined() && !x.device().is_cpu()) return upsample_nearest_forward_cuda(x, size);
  check_activation(x, "upsample input");
  for (int i = 0; i < 3; ++i)
    DS_CHECK(size[i] >= 1, "upsample: output size must be >= 1 on every axis, got ", size[i], " on axis ", i);
  const int64_t N = x.size(0), C = x.size(4);
  const int64_t D[3] = {x.size(1), x.size(2), x.size(3)};
  std::vector<int64_t> s1 = source_index(D[0], size[0]), s2 = source_index(D[1], size[1]),
                       s3 = source_index(D[2], size[2]);
  Tensor y = Tensor::empty({N, size[0], size[1], size[2], C}, x.dtype());
  dispatch_float(x.dtype(), "upsample", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(0, N * size[0] * size[1], 4, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t o2 = r % size[1], o1 = (r / size[1]) % size[0], n = r / (size[1] * size[0]);
        const T* src = px + ((n * D[0] + s1[o1]) * D[1] + s2[o2]) * D[2] * C;
        T* dst = py + r * size[2] * C;
        for (int64_t o3 = 0; o3 < size[2]; ++o3) std::copy(src + s3[o3] * C, src + (s3[o3] + 1) * C, dst + o3 * C);
      }
    });
  });
  return y;
}

Tensor upsample_nearest_backward(const Tensor& dy, const Shape& in_shape) {
  if (dy.defined() && !dy.device().is_cpu()) return upsample_nearest_backward_cuda(dy, in_shape);
  check_activation(dy, "upsample output gradient");
  DS_CHECK(in_shape.size() == 5 && in_shape[0] == dy.size(0) && in_shape[4] == dy.size(4),
           "upsample backward: input shape ", shape_str(in_shape), " does not match the output gradient ",
           dy.describe());
  const int64_t N = in_shape[0], C = in_shape[4];
  const int64_t D[3] = {in_shape[1], in_shape[2], in_shape[3]};
  const int64_t O[3] = {dy.size(1), dy.size(2), dy.size(3)};
  std::vector<int64_t> s1 = source_index(D[0], O[0]), s2 = source_index(D[1], O[1]), s3 = source_index(D[2], O[2]);
  Tensor dx = Tensor::zeros(in_shape, dy.dtype());
  dispatch_float(dy.dtype(), "upsample backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = dy.data<T>();
    T* pd = dx.data<T>();
    // Parallel over (n, input d1): each task gathers the output rows that read
    // from its input slice, so writes never race.
    parallel_for(0, N * D[0], 1, [&](int64_t a, int64_t b) {
      for (int64_t t = a; t < b; ++t) {
        const int64_t n = t / D[0], i1 = t % D[0];
        for (int64_t o1 = 0; o1 < O[0]; ++o1) {
          if (s1[o1] != i1) continue;
          for (int64_t o2 = 0; o2 < O[1]; ++o2) {
            T* dst = pd + ((n * D[0] + i1) * D[1] + s2[o2]) * D[2] * C;
            const T* src = pg + ((n * O[0] + o1) * O[1] + o2) * O[2] * C;
            for (int64_t o3 = 0; o3 < O[2]; ++o3) {
              T* d = dst + s3[o3] * C;
              const T* s = src + o3 * C;
              for (int64_t c = 0; c < C; ++c) d[c] += s[c];
            }
          }
        }
      }
    });
  });
  return dx;
}

}  // namespace ds::nn
