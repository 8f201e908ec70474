// MaxPool3d and nearest upsampling on CUDA (semantics: nn/maxpool.h,
// nn/upsample.h). Forward: one thread per output element (consecutive
// threads = consecutive channels, so loads are coalesced).
// Upsampling backward: one thread per INPUT element gathering the outputs that
// read it, in ascending output order -- no atomics, deterministic, and the same
// summation order as the CPU code (bit-identical in float32 / float64).
// MaxPool backward: atomic scatter (see maxpool_bwd_kernel).
#include "core/cuda_kernels.cuh"
#include "nn/nn_cuda.h"

namespace ds::nn {
namespace {
using namespace ds::cuda;

struct Dims3 {
  int64_t d[3];
};

// A flat channels-last index of [N, s.d[0], s.d[1], s.d[2], C] split into
// its image n, spatial position p and channel c.
struct Idx5 {
  int64_t n, p[3], c;
};
__device__ __forceinline__ Idx5 unravel(int64_t i, const Dims3& s, int64_t C) {
  Idx5 r;
  r.c = i % C; i /= C;
  r.p[2] = i % s.d[2]; i /= s.d[2];
  r.p[1] = i % s.d[1]; i /= s.d[1];
  r.p[0] = i % s.d[0];
  r.n = i / s.d[0];
  return r;
}

template <class T>
__global__ void maxpool_fwd_kernel(const T* __restrict__ x, int64_t N, Dims3 in, Dims3 out, int64_t C, Dims3 k,
                                   Dims3 s, Dims3 p, T* __restrict__ y, int32_t* __restrict__ am) {
  using A = acc_t<T>;
  const int64_t total = N * out.d[0] * out.d[1] * out.d[2] * C;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const Idx5 ix = unravel(i, out, C);
    const int64_t n = ix.n, o1 = ix.p[0], o2 = ix.p[1], o3 = ix.p[2], c = ix.c;
    A best = -INFINITY;
    int32_t where = -1;
    T bestv = Num<T>::store(best);
    for (int64_t k1 = 0; k1 < k.d[0]; ++k1) {
      const int64_t i1 = o1 * s.d[0] - p.d[0] + k1;
      if (i1 < 0 || i1 >= in.d[0]) continue;
      for (int64_t k2 = 0; k2 < k.d[1]; ++k2) {
        const int64_t i2 = o2 * s.d[1] - p.d[1] + k2;
        if (i2 < 0 || i2 >= in.d[1]) continue;
        for (int64_t k3 = 0; k3 < k.d[2]; ++k3) {
          const int64_t i3 = o3 * s.d[2] - p.d[2] + k3;
          if (i3 < 0 || i3 >= in.d[2]) continue;
          const int64_t pos = (i1 * in.d[1] + i2) * in.d[2] + i3;
          const T xv = x[(n * in.d[0] * in.d[1] * in.d[2] + pos) * C + c];
          const A v = Num<T>::load(xv);
          // Same rule as the CPU: first maximum in scan order, a NaN always wins.
          if (where < 0 || v > best || (v != v && best == best)) {
            best = v;
            bestv = xv;
            where = int32_t(pos);
          }
        }
      }
    }
    y[i] = bestv;
    if (am) am[i] = where;
  }
}

// Scatter of the output gradient to the recorded input positions. The CPU
// API passes no pooling geometry, so a gather is not possible; overlapping
// windows (kernel > stride) make several outputs hit one input, hence the
// atomics into an A-typed (float / double) buffer: the order of those few
// additions (at most ceil(k/s)^3 per input) is not deterministic, everything
// else is. Inputs hit by no window get 0 from the zeroed buffer.
template <class T>
__global__ void maxpool_bwd_kernel(const T* __restrict__ dy, const int32_t* __restrict__ am, int64_t So, int64_t S,
                                   int64_t C, int64_t total, acc_t<T>* __restrict__ dx) {
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int32_t pos = am[i];
    if (pos < 0) continue;
    const int64_t c = i % C, n = i / (So * C);
    atomicAdd(dx + (n * S + pos) * C + c, Num<T>::load(dy[i]));
  }
}

template <class T>
__global__ void upsample_fwd_kernel(const T* __restrict__ x, int64_t N, Dims3 in, Dims3 out, int64_t C,
                                    T* __restrict__ y) {
  const int64_t total = N * out.d[0] * out.d[1] * out.d[2] * C;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const Idx5 ix = unravel(i, out, C);
    const int64_t n = ix.n, o1 = ix.p[0], o2 = ix.p[1], o3 = ix.p[2], c = ix.c;
    // floor(o * in / out) < in always, so no clamp is needed.
    const int64_t s1 = o1 * in.d[0] / out.d[0], s2 = o2 * in.d[1] / out.d[1], s3 = o3 * in.d[2] / out.d[2];
    y[i] = x[(((n * in.d[0] + s1) * in.d[1] + s2) * in.d[2] + s3) * C + c];
  }
}

// Outputs o with floor(o * in / out) == i: [ceil(i*out/in), ceil((i+1)*out/in) - 1].
__device__ __forceinline__ void up_range(int64_t i, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = (i * out + in - 1) / in;
  hi = ((i + 1) * out + in - 1) / in - 1;
  if (hi > out - 1) hi = out - 1;
}

template <class T>
__global__ void upsample_bwd_kernel(const T* __restrict__ dy, int64_t N, Dims3 in, Dims3 out, int64_t C,
                                    T* __restrict__ dx) {
  using A = acc_t<T>;
  const int64_t total = N * in.d[0] * in.d[1] * in.d[2] * C;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const Idx5 ix = unravel(i, in, C);
    const int64_t n = ix.n, i1 = ix.p[0], i2 = ix.p[1], i3 = ix.p[2], c = ix.c;
    int64_t lo1, hi1, lo2, hi2, lo3, hi3;
    up_range(i1, in.d[0], out.d[0], lo1, hi1);
    up_range(i2, in.d[1], out.d[1], lo2, hi2);
    up_range(i3, in.d[2], out.d[2], lo3, hi3);
    A acc = A(0);
    for (int64_t o1 = lo1; o1 <= hi1; ++o1)
      for (int64_t o2 = lo2; o2 <= hi2; ++o2)
        for (int64_t o3 = lo3; o3 <= hi3; ++o3)
          acc += Num<T>::load(dy[(((n * out.d[0] + o1) * out.d[1] + o2) * out.d[2] + o3) * C + c]);
    dx[i] = Num<T>::store(acc);
  }
}

void check_act(const Tensor& x, const char* what) {
  check_cuda_tensor(x, what);
  DS_CHECK(x.dim() == 5, what, " must have 5 dimensions [N, D1, D2, D3, C], got ", x.describe());
}

Dims3 dims(int64_t a, int64_t b, int64_t c) { return Dims3{{a, b, c}}; }
Dims3 dims(const std::array<int64_t, 3>& v) { return dims(v[0], v[1], v[2]); }
// The spatial sizes (D1, D2, D3) of a [N, D1, D2, D3, C] shape.
Dims3 spatial(const Shape& s) { return dims(s[1], s[2], s[3]); }

}  // namespace

Tensor maxpool3d_forward_cuda(const Tensor& x, const MaxPoolParams& p, Tensor* argmax) {
  check_act(x, "maxpool3d input");
  // Shape rules shared with the CPU (maxpool3d_output_size checks the CPU device, so repeat them here).
  std::array<int64_t, 3> o{};
  for (int i = 0; i < 3; ++i) {
    DS_CHECK(p.kernel[i] >= 1 && p.stride[i] >= 1 && p.padding[i] >= 0,
             "maxpool3d: kernel and stride must be >= 1 and padding >= 0, got kernel ", p.kernel[i], ", stride ",
             p.stride[i], ", padding ", p.padding[i], " on axis ", i);
    DS_CHECK(2 * p.padding[i] <= p.kernel[i], "maxpool3d: padding ", p.padding[i],
             " must be at most half the kernel size ", p.kernel[i], " (axis ", i, ")");
    const int64_t span = x.size(1 + i) + 2 * p.padding[i];
    DS_CHECK(span >= p.kernel[i], "maxpool3d: input size ", x.size(1 + i), " on axis ", i,
             " (+ 2*padding) is smaller than the kernel ", p.kernel[i], "; the input is too small");
    o[i] = (span - p.kernel[i]) / p.stride[i] + 1;
  }
  const int64_t N = x.size(0), C = x.size(4);
  DS_CHECK(x.size(1) * x.size(2) * x.size(3) < (int64_t(1) << 31), "maxpool3d: volume too large for int32 indices");
  const Device dev = x.device();
  DeviceGuard guard(dev.index);
  Tensor y = Tensor::empty({N, o[0], o[1], o[2], C}, x.dtype(), dev);
  Tensor am;
  if (argmax) am = Tensor::empty(y.shape(), DType::Int32, dev);
  const int64_t total = y.numel();
  if (total) {
    dispatch_gpu_float(x.dtype(), "maxpool3d", [&](auto tag) {
      using T = decltype(tag);
      maxpool_fwd_kernel<T><<<grid_for(total), kThreads, 0, stream_for(x)>>>(
          dptr<const T>(x), N, spatial(x.shape()), dims(o), C, dims(p.kernel), dims(p.stride), dims(p.padding),
          dptr<T>(y), argmax ? dptr<int32_t>(am) : nullptr);
    });
    DS_CUDA_LAUNCH_CHECK();
  }
  if (argmax) *argmax = am;
  return y;
}

Tensor maxpool3d_backward_cuda(const Tensor& dy, const Tensor& argmax, const Shape& in_shape) {
  check_act(dy, "maxpool3d output gradient");
  DS_CHECK(argmax.defined() && argmax.dtype() == DType::Int32 && argmax.shape() == dy.shape() &&
               argmax.device() == dy.device(),
           "maxpool3d backward: argmax must be the int32 tensor from the forward pass, shaped like the output ",
           shape_str(dy.shape()), " on ", dy.device().str());
  DS_CHECK(in_shape.size() == 5 && in_shape[0] == dy.size(0) && in_shape[4] == dy.size(4),
           "maxpool3d backward: input shape ", shape_str(in_shape), " does not match the output gradient ",
           dy.describe());
  const int64_t N = in_shape[0], C = in_shape[4], S = in_shape[1] * in_shape[2] * in_shape[3];
  const int64_t So = (N && C) ? dy.numel() / (N * C) : 0;
  const Device dev = dy.device();
  DeviceGuard guard(dev.index);
  Tensor dx = Tensor::zeros(in_shape, dy.dtype(), dev);
  const int64_t total = dy.numel();
  if (!total || !dx.numel()) return dx;
  dispatch_gpu_float(dy.dtype(), "maxpool3d backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool direct = sizeof(A) == sizeof(T);  // float32 / float64: accumulate in place
    Tensor acc = direct ? dx : Tensor::zeros(in_shape, DType::Float32, dev);
    maxpool_bwd_kernel<T><<<grid_for(total), kThreads, 0, stream_for(dy)>>>(dptr<const T>(dy),
                                                                            dptr<const int32_t>(argmax), So, S, C,
                                                                            total, dptr<A>(acc));
    DS_CUDA_LAUNCH_CHECK();
    if (!direct) dx = acc.to(dy.dtype());
  });
  return dx;
}

}  // namespace ds::nn

namespace ds::nn {

Tensor upsample_nearest_forward_cuda(const Tensor& x, const std::array<int64_t, 3>& size) {
  check_act(x, "upsample input");
  for (int i = 0; i < 3; ++i)
    DS_CHECK(size[i] >= 1, "upsample: output size must be >= 1 on every axis, got ", size[i], " on axis ", i);
  const int64_t N = x.size(0), C = x.size(4);
  for (int i = 0; i < 3; ++i)
    DS_CHECK(x.size(1 + i) >= 1 || N * C == 0, "upsample: input ", x.describe(), " is empty on axis ", i);
  const Device dev = x.device();
  DeviceGuard guard(dev.index);
  Tensor y = Tensor::empty({N, size[0], size[1], size[2], C}, x.dtype(), dev);
  const int64_t total = y.numel();
  if (total) {
    dispatch_gpu_float(x.dtype(), "upsample", [&](auto tag) {
      using T = decltype(tag);
      upsample_fwd_kernel<T><<<grid_for(total), kThreads, 0, stream_for(x)>>>(
          dptr<const T>(x), N, spatial(x.shape()), dims(size), C, dptr<T>(y));
    });
    DS_CUDA_LAUNCH_CHECK();
  }
  return y;
}

Tensor upsample_nearest_backward_cuda(const Tensor& dy, const Shape& in_shape) {
  check_act(dy, "upsample output gradient");
  DS_CHECK(in_shape.size() == 5 && in_shape[0] == dy.size(0) && in_shape[4] == dy.size(4),
           "upsample backward: input shape ", shape_str(in_shape), " does not match the output gradient ",
           dy.describe());
  const Device dev = dy.device();
  DeviceGuard guard(dev.index);
  Tensor dx = Tensor::empty(in_shape, dy.dtype(), dev);
  const int64_t total = dx.numel();
  if (total) {
    dispatch_gpu_float(dy.dtype(), "upsample backward", [&](auto tag) {
      using T = decltype(tag);
      upsample_bwd_kernel<T><<<grid_for(total), kThreads, 0, stream_for(dy)>>>(
          dptr<const T>(dy), in_shape[0], spatial(in_shape), spatial(dy.shape()), in_shape[4], dptr<T>(dx));
    });
    DS_CUDA_LAUNCH_CHECK();
  }
  return dx;
}

}  // namespace ds::nn
