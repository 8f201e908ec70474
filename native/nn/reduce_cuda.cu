// Whole-tensor reductions on the GPU: pass 1, a grid-stride loop per thread
// (double accumulation) and a block tree give one partial per block; pass 2,
// one block combines the partials in a fixed order. Deterministic.
#include "core/cuda_kernels.cuh"
#include "nn/reduce.h"

namespace ds::nn {
namespace {
using namespace ds::cuda;

constexpr int kBlocks = 1024;  // partials of pass 1 (>= 4 blocks per SM on an H100)

enum class Kind { Sum, SumSq, MaxAbs, NonFinite };

template <Kind K>
__device__ __forceinline__ double elem(double v) {
  if (K == Kind::Sum) return v;
  if (K == Kind::SumSq) return v * v;
  if (K == Kind::MaxAbs) return fabs(v);
  return isfinite(v) ? 0.0 : 1.0;
}

template <Kind K>
__device__ __forceinline__ double combine(double a, double b) {
  if (K == Kind::MaxAbs) return MaxOp()(a, b);
  return a + b;
}

template <Kind K>
struct CombineOp {
  __device__ __forceinline__ double operator()(double a, double b) const { return combine<K>(a, b); }
};

template <Kind K, class T>
__global__ void reduce_pass1(const T* __restrict__ x, int64_t n, double* __restrict__ partial) {
  double a = 0.0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) a = combine<K>(a, elem<K>(double(Num<T>::load(x[i]))));
  a = block_reduce(a, CombineOp<K>(), 0.0);
  if (threadIdx.x == 0) partial[blockIdx.x] = a;
}

template <Kind K>
__global__ void reduce_pass2(const double* __restrict__ partial, int n, double* __restrict__ out) {
  double a = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) a = combine<K>(a, partial[i]);
  a = block_reduce(a, CombineOp<K>(), 0.0);
  if (threadIdx.x == 0) *out = a;
}

template <Kind K>
double run(const Tensor& t) {
  check_cuda_tensor(t, "reduction input");
  const int64_t n = t.numel();
  if (!n) return 0.0;
  DeviceGuard g(t.device().index);
  const unsigned blocks = std::min<unsigned>(grid_for(n), kBlocks);
  Tensor partial = Tensor::empty({int64_t(blocks) + 1}, DType::Float64, t.device());
  double* pp = dptr<double>(partial);
  cudaStream_t st = stream_for(t);
  dispatch_gpu_float(t.dtype(), "reduction", [&](auto tag) {
    using T = decltype(tag);
    reduce_pass1<K, T><<<blocks, kThreads, 0, st>>>(dptr<const T>(t), n, pp);
  });
  DS_CUDA_LAUNCH_CHECK();
  reduce_pass2<K><<<1, kThreads, 0, st>>>(pp, int(blocks), pp + blocks);
  DS_CUDA_LAUNCH_CHECK();
  double r = 0;
  copy_d2h(&r, pp + blocks, sizeof(double), t.device().index);
  return r;
}

}  // namespace

double sum_cuda(const Tensor& t) { return run<Kind::Sum>(t); }
double sum_squares_cuda(const Tensor& t) { return run<Kind::SumSq>(t); }
double max_abs_cuda(const Tensor& t) { return run<Kind::MaxAbs>(t); }
int64_t count_nonfinite_cuda(const Tensor& t) { return int64_t(run<Kind::NonFinite>(t)); }

}  // namespace ds::nn
