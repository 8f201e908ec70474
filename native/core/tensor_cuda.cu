#include "core/cuda_kernels.cuh"
#include "core/tensor_cuda.h"

namespace ds::cuda {
namespace {

// Fill by bit pattern: the value was converted on the host by the CPU code.
template <class W>
__global__ void fill_kernel(W* p, W v, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = v;
}

// Source element widened without loss (16-bit floats to float).
template <class S> __device__ __forceinline__ S widen(S v) { return v; }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

// Narrowing as the CPU's convert_from: plain casts, 16-bit floats from float (RNE).
template <class D> struct Narrow {
  template <class W> __device__ __forceinline__ static D go(W w) { return D(w); }
};
template <> struct Narrow<__half> {
  template <class W> __device__ __forceinline__ static __half go(W w) { return __float2half_rn(float(w)); }
};
template <> struct Narrow<__nv_bfloat16> {
  template <class W> __device__ __forceinline__ static __nv_bfloat16 go(W w) { return __float2bfloat16_rn(float(w)); }
};

template <class S, class D>
__global__ void convert_kernel(const S* __restrict__ s, D* __restrict__ d, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    d[i] = Narrow<D>::go(widen(s[i]));
}

}  // namespace

void fill_tensor(Tensor& t, double v) {
  check_cuda_tensor(t, "tensor");
  const int64_t n = t.numel();
  if (!n) return;
  Tensor host = Tensor::full({1}, v, t.dtype());  // CPU conversion defines the bits
  DeviceGuard g(t.device().index);
  cudaStream_t st = stream_for(t);
  switch (dtype_size(t.dtype())) {
    case 1: fill_kernel<uint8_t><<<grid_for(n), kThreads, 0, st>>>(static_cast<uint8_t*>(t.raw()), *static_cast<uint8_t*>(host.raw()), n); break;
    case 2: fill_kernel<uint16_t><<<grid_for(n), kThreads, 0, st>>>(static_cast<uint16_t*>(t.raw()), *static_cast<uint16_t*>(host.raw()), n); break;
    case 4: fill_kernel<uint32_t><<<grid_for(n), kThreads, 0, st>>>(static_cast<uint32_t*>(t.raw()), *static_cast<uint32_t*>(host.raw()), n); break;
    case 8: fill_kernel<uint64_t><<<grid_for(n), kThreads, 0, st>>>(static_cast<uint64_t*>(t.raw()), *static_cast<uint64_t*>(host.raw()), n); break;
    default: DS_FAIL("internal: fill of element size ", dtype_size(t.dtype()));
  }
  DS_CUDA_LAUNCH_CHECK();
}

void convert_tensor(const Tensor& src, Tensor& dst) {
  check_cuda_tensor(src, "conversion source");
  check_cuda_tensor(dst, "conversion destination");
  check_same_device(src, dst, "conversion source", "conversion destination");
  DS_CHECK(src.numel() == dst.numel(), "internal: convert ", src.describe(), " into ", dst.describe());
  const int64_t n = src.numel();
  if (!n) return;
  DeviceGuard g(src.device().index);
  cudaStream_t st = stream_for(src);
  if (src.dtype() == dst.dtype()) {
    DS_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, st));
    return;
  }
  dispatch_gpu_all(src.dtype(), [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_gpu_all(dst.dtype(), [&](auto d_tag) {
      using D = decltype(d_tag);
      convert_kernel<S, D><<<grid_for(n), kThreads, 0, st>>>(dptr<const S>(src), dptr<D>(dst), n);
    });
  });
  DS_CUDA_LAUNCH_CHECK();
}

}  // namespace ds::cuda
