#include "nn/maxpool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "nn/nn_cuda.h"
#include "nn/nn_util.h"

namespace ds::nn {

std::array<int64_t, 3> maxpool3d_output_size(const Tensor& x, const MaxPoolParams& p) {
  check_activation(x, "maxpool3d input");
  std::array<int64_t, 3> o{};
  for (int i = 0; i < 3; ++i) {
    DS_CHECK(p.kernel[i] >= 1 && p.stride[i] >= 1 && p.padding[i] >= 0, "maxpool3d: kernel and stride must be >= 1 and padding >= 0, got kernel ",
             p.kernel[i], ", stride ", p.stride[i], ", padding ", p.padding[i], " on axis ", i);
    DS_CHECK(2 * p.padding[i] <= p.kernel[i], "maxpool3d: padding ", p.padding[i],
             " must be at most half the kernel size ", p.kernel[i], " (axis ", i, ")");
    const int64_t span = x.size(1 + i) + 2 * p.padding[i];
    DS_CHECK(span >= p.kernel[i], "maxpool3d: input size ", x.size(1 + i), " on axis ", i,
             " (+ 2*padding) is smaller than the kernel ", p.kernel[i], "; the input is too small");
    o[i] = (span - p.kernel[i]) / p.stride[i] + 1;
  }
  return o;
}

Tensor maxpool3d_forward(const Tensor& x, const MaxPoolParams& p, Tensor* argmax) {
  // Tensors on a CUDA device go to the CUDA implementation (nn/nn_cuda.h).
  if (x.defined() && !x.device().is_cpu()) return maxpool3d_forward_cuda(x, p, argmax);
  auto o = maxpool3d_output_size(x, p);
  const int64_t N = x.size(0), D1 = x.size(1), D2 = x.size(2), D3 = x.size(3), C = x.size(4);
  DS_CHECK(D1 * D2 * D3 < (int64_t(1) << 31), "maxpool3d: volume too large for int32 indices");
  Tensor y = Tensor::empty({N, o[0], o[1], o[2], C}, x.dtype());
  Tensor am;
  if (argmax) am = Tensor::empty(y.shape(), DType::Int32);
  int32_t* pa = argmax ? am.data<int32_t>() : nullptr;
  dispatch_float(x.dtype(), "maxpool3d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t rows = N * o[0] * o[1] * o[2];
    parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
      std::vector<T> best(static_cast<size_t>(C));
      std::vector<int32_t> where(static_cast<size_t>(C));
      for (int64_t r = r0; r < r1; ++r) {
        int64_t t = r;
        const int64_t o3 = t % o[2]; t /= o[2];
        const int64_t o2 = t % o[1]; t /= o[1];
        const int64_t o1 = t % o[0]; t /= o[0];
        const int64_t n = t;
        for (int64_t c = 0; c < C; ++c) {
          best[c] = -std::numeric_limits<T>::infinity();
          where[c] = -1;
        }
        for (int64_t k1 = 0; k1 < p.kernel[0]; ++k1) {
          const int64_t i1 = o1 * p.stride[0] - p.padding[0] + k1;
          if (i1 < 0 || i1 >= D1) continue;
          for (int64_t k2 = 0; k2 < p.kernel[1]; ++k2) {
            const int64_t i2 = o2 * p.stride[1] - p.padding[1] + k2;
            if (i2 < 0 || i2 >= D2) continue;
            for (int64_t k3 = 0; k3 < p.kernel[2]; ++k3) {
              const int64_t i3 = o3 * p.stride[2] - p.padding[2] + k3;
              if (i3 < 0 || i3 >= D3) continue;
              const int64_t pos = (i1 * D2 + i2) * D3 + i3;
              const T* xp = px + (n * D1 * D2 * D3 + pos) * C;
              for (int64_t c = 0; c < C; ++c)
                // NaN propagates like torch: a NaN always wins.
                if (where[c] < 0 || xp[c] > best[c] || (xp[c] != xp[c] && best[c] == best[c])) {
                  best[c] = xp[c];
                  where[c] = int32_t(pos);
                }
            }
          }
        }
        T* yp = py + r * C;
        for (int64_t c = 0; c < C; ++c) yp[c] = best[c];
        if (pa)
          for (int64_t c = 0; c < C; ++c) pa[r * C + c] = where[c];
      }
    });
  });
  if (argmax) *argmax = am;
  return y;
}

Tensor maxpool3d_backward(const Tensor& dy, const Tensor& argmax, const Shape& in_shape) {
  if (dy.defined() && !dy.device().is_cpu()) return maxpool3d_backward_cuda(dy, argmax, in_shape);
  check_activation(dy, "maxpool3d output gradient");
  DS_CHECK(argmax.defined() && argmax.dtype() == DType::Int32 && argmax.shape() == dy.shape(),
           "maxpool3d backward: argmax must be the int32 tensor from the forward pass, shaped like the output ",
           shape_str(dy.shape()));
  DS_CHECK(in_shape.size() == 5 && in_shape[0] == dy.size(0) && in_shape[4] == dy.size(4),
           "maxpool3d backward: input shape ", shape_str(in_shape), " does not match the output gradient ",
           dy.describe());
  const int64_t N = in_shape[0], C = in_shape[4], S = in_shape[1] * in_shape[2] * in_shape[3];
  const int64_t So = dy.numel() / (N * C);
  Tensor dx = Tensor::zeros(in_shape, dy.dtype());
  const int32_t* pa = argmax.data<int32_t>();
  dispatch_float(dy.dtype(), "maxpool3d backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = dy.data<T>();
    T* pd = dx.data<T>();
    // Parallel over (sample, channel block): windows may overlap, but every
    // task owns its channels, so there are no write races.
    const int64_t cb = 16, nblk = (C + cb - 1) / cb;
    parallel_for(0, N * nblk, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = b / nblk, c0 = (b % nblk) * cb, c1 = std::min(C, c0 + cb);
        for (int64_t s = 0; s < So; ++s) {
          const int64_t r = (n * So + s) * C;
          for (int64_t c = c0; c < c1; ++c) {
            const int32_t pos = pa[r + c];
            if (pos >= 0) pd[(n * S + pos) * C + c] += pg[r + c];
          }
        }
      }
    });
  });
  return dx;
}

}  // namespace ds::nn
