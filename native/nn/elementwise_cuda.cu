// add / axpy_ / ReLU on CUDA tensors (nn/elementwise.h, nn/activation.h).
// Memory-bound grid-stride loops; accumulation in float for 16-bit types.
// Speed idea for later: 16-byte vector loads (float4 / 8 halves) when the
// pointers are aligned and n is a multiple of the vector width.
#include "core/cuda_kernels.cuh"
#include "nn/nn_cuda.h"

namespace ds::nn {
namespace {
using namespace ds::cuda;

void check_pair(const Tensor& a, const Tensor& b, const char* wa, const char* wb) {
  check_cuda_tensor(a, wa);
  check_cuda_tensor(b, wb);
  check_same_device(a, b, wa, wb);
  DS_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), wb, " must match ", wa, " (", a.describe(), "), got ",
           b.describe());
}

template <class T>
__global__ void add_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    y[i] = Num<T>::store(Num<T>::load(a[i]) + Num<T>::load(b[i]));
}

template <class T>
__global__ void axpy_kernel(T* __restrict__ d, const T* __restrict__ s, acc_t<T> alpha, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    d[i] = Num<T>::store(Num<T>::load(d[i]) + alpha * Num<T>::load(s[i]));
}

template <class T>
__global__ void relu_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const acc_t<T> v = Num<T>::load(x[i]);
    y[i] = v > acc_t<T>(0) ? x[i] : Num<T>::store(acc_t<T>(0));  // NaN -> 0 as the CPU's comparison
  }
}

template <class T>
__global__ void relu_backward_kernel(const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ dx, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    dx[i] = Num<T>::load(y[i]) > acc_t<T>(0) ? g[i] : Num<T>::store(acc_t<T>(0));
}

}  // namespace

Tensor add_cuda(const Tensor& a, const Tensor& b) {
  check_pair(a, b, "add: first operand", "add: second operand");
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.numel();
  if (!n) return y;
  DeviceGuard g(a.device().index);
  dispatch_gpu_float(a.dtype(), "add", [&](auto tag) {
    using T = decltype(tag);
    add_kernel<T><<<grid_for(n), kThreads, 0, stream_for(a)>>>(dptr<const T>(a), dptr<const T>(b), dptr<T>(y), n);
  });
  DS_CUDA_LAUNCH_CHECK();
  return y;
}

void axpy_cuda_(Tensor& dst, double alpha, const Tensor& src) {
  check_pair(dst, src, "accumulate: destination", "accumulate: source");
  const int64_t n = dst.numel();
  if (!n) return;
  DeviceGuard g(dst.device().index);
  dispatch_gpu_float(dst.dtype(), "accumulate", [&](auto tag) {
    using T = decltype(tag);
    axpy_kernel<T><<<grid_for(n), kThreads, 0, stream_for(dst)>>>(dptr<T>(dst), dptr<const T>(src),
                                                                  acc_t<T>(alpha), n);
  });
  DS_CUDA_LAUNCH_CHECK();
}

Tensor relu_forward_cuda(const Tensor& x) {
  check_cuda_tensor(x, "relu input");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = x.numel();
  if (!n) return y;
  DeviceGuard g(x.device().index);
  dispatch_gpu_float(x.dtype(), "relu", [&](auto tag) {
    using T = decltype(tag);
    relu_kernel<T><<<grid_for(n), kThreads, 0, stream_for(x)>>>(dptr<const T>(x), dptr<T>(y), n);
  });
  DS_CUDA_LAUNCH_CHECK();
  return y;
}

Tensor relu_backward_cuda(const Tensor& y, const Tensor& dy) {
  check_pair(y, dy, "relu output", "relu output gradient");
  Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
  const int64_t n = y.numel();
  if (!n) return dx;
  DeviceGuard g(y.device().index);
  dispatch_gpu_float(y.dtype(), "relu backward", [&](auto tag) {
    using T = decltype(tag);
    relu_backward_kernel<T><<<grid_for(n), kThreads, 0, stream_for(y)>>>(dptr<const T>(y), dptr<const T>(dy),
                                                                         dptr<T>(dx), n);
  });
  DS_CUDA_LAUNCH_CHECK();
  return dx;
}

}  // namespace ds::nn
