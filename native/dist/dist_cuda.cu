#include <cuda_runtime.h>
#include <algorithm>

#include "core/cuda_runtime.h"
#include "core/error.h"
#include "dist/dist_cuda.h"

namespace ds::dist {
namespace {

template <class T>
__global__ void scale_kernel(T* __restrict__ d, size_t n, T f) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) d[i] *= f;
}

}  // namespace

void scale_on_stream(void* data, size_t count, DType dtype, double factor, void* stream) {
  if (count == 0) return;
  DS_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "average of ", dtype_name(dtype),
           " data is not supported by this NCCL (older than 2.10): use float32 or float64, or NCCL >= 2.10");
  const int threads = 256;
  const int blocks = int(std::min<size_t>((count + threads - 1) / threads, 4096));
  auto s = static_cast<cudaStream_t>(stream);
  if (dtype == DType::Float32)
    scale_kernel<float><<<blocks, threads, 0, s>>>(static_cast<float*>(data), count, float(factor));
  else
    scale_kernel<double><<<blocks, threads, 0, s>>>(static_cast<double*>(data), count, factor);
  DS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ds::dist
