#include "nn/activation.h"

#include "core/thread_pool.h"
#include "nn/nn_cuda.h"
#include "nn/nn_util.h"

namespace ds::nn {

Tensor relu_forward(const Tensor& x) {
  // Tensors on a CUDA device go to the CUDA implementation (nn/nn_cuda.h).
  if (!x.device().is_cpu()) return relu_forward_cuda(x);
  check_cpu(x, "relu input");
  check_float(x, "relu input");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), "relu", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(0, x.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) py[i] = px[i] > T(0) ? px[i] : T(0);
    });
  });
  return y;
}

Tensor relu_backward(const Tensor& y, const Tensor& dy) {
  if (!y.device().is_cpu()) return relu_backward_cuda(y, dy);
  check_cpu(y, "relu output");
  check_float(y, "relu output");
  check_same_shape(y, dy, "relu output", "relu output gradient");
  Tensor dx = Tensor::empty(y.shape(), y.dtype());
  dispatch_float(y.dtype(), "relu backward", [&](auto tag) {
    using T = decltype(tag);
    const T* py = y.data<T>();
    const T* pg = dy.data<T>();
    T* pd = dx.data<T>();
    parallel_for(0, y.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) pd[i] = py[i] > T(0) ? pg[i] : T(0);
    });
  });
  return dx;
}

}  // namespace ds::nn
