// Helpers for the CUDA kernels of the core, nn and detection (include from .cu
// files only): element types, float accumulation, launch configuration and
// dtype dispatch. 16-bit floats are stored in tensors as raw bits and viewed
// as __half / __nv_bfloat16 here; conversions round to nearest even like the
// CPU ones in core/dtype.h.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_runtime.h"
#include "core/error.h"
#include "core/tensor.h"

namespace ds::cuda {

// Num<T>: accumulation type (float for 16-bit types and float, double for
// double) and conversions.
template <class T> struct Num;
template <> struct Num<float> {
  using acc = float;
  __device__ __forceinline__ static float load(float v) { return v; }
  __device__ __forceinline__ static float store(float v) { return v; }
};
template <> struct Num<double> {
  using acc = double;
  __device__ __forceinline__ static double load(double v) { return v; }
  __device__ __forceinline__ static double store(double v) { return v; }
};
template <> struct Num<__half> {
  using acc = float;
  __device__ __forceinline__ static float load(__half v) { return __half2float(v); }
  __device__ __forceinline__ static __half store(float v) { return __float2half_rn(v); }
};
template <> struct Num<__nv_bfloat16> {
  using acc = float;
  __device__ __forceinline__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ __forceinline__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

template <class T> using acc_t = typename Num<T>::acc;

// Typed device pointer of a tensor (16-bit floats viewed as CUDA types).
template <class T>
inline T* dptr(const Tensor& t) {
  return static_cast<T*>(t.raw());
}

inline cudaStream_t stream_for(const Tensor& t) { return static_cast<cudaStream_t>(stream(t.device().index)); }

constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n elements: enough to fill any current
// GPU (132 SMs x 16 blocks of 256 threads on an H100 is ~2100), capped so a
// huge n still launches.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 8192) b = 8192;
  return unsigned(b);
}

// Throws ds::Error when the last kernel launch failed (bad configuration etc.).
#define DS_CUDA_LAUNCH_CHECK() DS_CUDA_CHECK(cudaGetLastError())

// Calls f(T{}) for the floating dtypes the GPU kernels support.
template <class F>
void dispatch_gpu_float(DType dt, const char* what, F&& f) {
  switch (dt) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Float16: f(__half{}); return;
    case DType::BFloat16: f(__nv_bfloat16{}); return;
    default: DS_FAIL(what, ": expects a floating-point tensor (float32, float64, float16, bfloat16), got ", dtype_name(dt));
  }
}

// Calls f(T{}) for every dtype.
template <class F>
void dispatch_gpu_all(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Float16: f(__half{}); return;
    case DType::BFloat16: f(__nv_bfloat16{}); return;
    case DType::Int32: f(int32_t{}); return;
    case DType::Int64: f(int64_t{}); return;
    case DType::UInt8: f(uint8_t{}); return;
  }
}

// Throws unless t is defined and on a CUDA device; sets nothing.
inline void check_cuda_tensor(const Tensor& t, const char* what) {
  DS_CHECK(t.defined(), what, " is missing (undefined tensor)");
  DS_CHECK(t.device().kind == Device::CUDA, what, " is on ", t.device().str(),
           " but this operation runs on the GPU: move it with .to('cuda')");
}
inline void check_same_device(const Tensor& a, const Tensor& b, const char* wa, const char* wb) {
  DS_CHECK(a.device() == b.device(), wa, " and ", wb, " must be on the same device, got ", a.device().str(), " and ",
           b.device().str());
}

}  // namespace ds::cuda

namespace ds::cuda {

// Grid-stride loop index helpers.
__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

struct SumOp {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  // NaN wins, so a NaN anywhere shows in the result.
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return (a != a || a > b) ? a : b; }
};

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reduction over a 1-D block whose size is a multiple of 32
// (<= 1024). Every thread must call it; the result is valid in thread 0.
// Safe to call several times in a row (the leading barrier protects the
// shared scratch from the previous call).
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T scratch[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int nwarps = int(blockDim.x + 31) >> 5;
  v = int(threadIdx.x) < nwarps ? scratch[lane] : identity;
  if (warp == 0) v = warp_reduce(v, op);
  return v;
}

// Welford / Chan running statistics (count, mean, sum of squared deviations)
// in A = float (float32 and 16-bit inputs) or double (float64): numerically
// stable for large counts and large means, unlike sum / sum of squares.
template <class A>
struct Welford {
  A n = A(0), mean = A(0), m2 = A(0);
  __device__ __forceinline__ void add(A x) {
    n += A(1);
    const A d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
  }
  __device__ __forceinline__ void merge(const Welford& o) {
    if (o.n == A(0)) return;
    if (n == A(0)) {
      *this = o;
      return;
    }
    const A nt = n + o.n, d = o.mean - mean, w = o.n / nt;
    mean += d * w;
    m2 += o.m2 + d * d * n * w;
    n = nt;
  }
};

template <class A>
__device__ __forceinline__ Welford<A> shfl_down(const Welford<A>& w, int o) {
  Welford<A> r;
  r.n = __shfl_down_sync(0xffffffffu, w.n, o);
  r.mean = __shfl_down_sync(0xffffffffu, w.mean, o);
  r.m2 = __shfl_down_sync(0xffffffffu, w.m2, o);
  return r;
}

// Block-wide Welford merge (1-D block, multiple of 32 threads); valid in thread 0.
template <class A>
__device__ Welford<A> block_welford(Welford<A> w) {
  __shared__ A sn[32], sm[32], s2[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) w.merge(shfl_down(w, o));
  __syncthreads();
  if (lane == 0) {
    sn[warp] = w.n;
    sm[warp] = w.mean;
    s2[warp] = w.m2;
  }
  __syncthreads();
  const int nwarps = int(blockDim.x + 31) >> 5;
  Welford<A> r;
  if (int(threadIdx.x) < nwarps) {
    r.n = sn[lane];
    r.mean = sm[lane];
    r.m2 = s2[lane];
  }
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) r.merge(shfl_down(r, o));
  return r;
}

}  // namespace ds::cuda
