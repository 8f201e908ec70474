#include "nn/elementwise.h"

#include "core/thread_pool.h"
#include "nn/nn_cuda.h"
#include "nn/nn_util.h"

namespace ds::nn {

Tensor add(const Tensor& a, const Tensor& b) {
  // Tensors on a CUDA device go to the CUDA implementation (nn/nn_cuda.h).
  if (!a.device().is_cpu()) return add_cuda(a, b);
  check_cpu(a, "add: first operand");
  check_float(a, "add: first operand");
  check_same_shape(a, b, "add: first operand", "add: second operand");
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_float(a.dtype(), "add", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* py = y.data<T>();
    parallel_for(0, a.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) py[i] = pa[i] + pb[i];
    });
  });
  return y;
}

void axpy_(Tensor& dst, double alpha, const Tensor& src) {
  if (!dst.device().is_cpu()) return axpy_cuda_(dst, alpha, src);
  check_cpu(dst, "accumulate: destination");
  check_float(dst, "accumulate: destination");
  check_same_shape(dst, src, "accumulate: destination", "accumulate: source");
  dispatch_float(dst.dtype(), "accumulate", [&](auto tag) {
    using T = decltype(tag);
    T* pd = dst.data<T>();
    const T* ps = src.data<T>();
    const T al = T(alpha);
    parallel_for(0, dst.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
      if (alpha == 1.0)
        for (int64_t i = i0; i < i1; ++i) pd[i] += ps[i];
      else
        for (int64_t i = i0; i < i1; ++i) pd[i] += al * ps[i];
    });
  });
}

void add_(Tensor& dst, const Tensor& src) { axpy_(dst, 1.0, src); }

}  // namespace ds::nn
