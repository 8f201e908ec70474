// Multi-tensor inf/NaN check and unscale for the loss scaler (nn/loss_scaler.h):
// one launch per gradient dtype over a table of chunks (as the fused SGD);
// any thread that sees a non-finite value stores 1 into a device flag (all
// writers store the same value, so the race is benign), read back once.
#include <cstring>
#include <vector>

#include "core/cuda_kernels.cuh"
#include "core/device_copy.h"
#include "nn/loss_scaler.h"

namespace ds::nn {
namespace {
using namespace ds::cuda;

constexpr int64_t kChunk = 16384;

struct Chunk {
  void* p;
  int64_t n;  // elements in this chunk
};

template <class T>
__global__ void scale_check_kernel(const Chunk* __restrict__ chunks, acc_t<T> factor, int scale, int* __restrict__ found) {
  const Chunk ch = chunks[blockIdx.x];
  T* p = static_cast<T*>(ch.p);
  bool bad = false;
  for (int64_t i = threadIdx.x; i < ch.n; i += blockDim.x) {
    const acc_t<T> v = Num<T>::load(p[i]);
    bad |= !isfinite(v);
    if (scale) p[i] = Num<T>::store(v * factor);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) *found = 1;
}

}  // namespace

bool scale_and_check_nonfinite_cuda_(std::vector<Tensor>& grads, double factor) {
  const Device dev = grads[0].device();
  check_cuda_tensor(grads[0], "gradient");
  DeviceGuard guard(dev.index);
  Tensor flag = Tensor::zeros({1}, DType::Int32, dev);
  cudaStream_t st = stream_for(grads[0]);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    std::vector<Chunk> chunks;
    const size_t es = dtype_size(dt);
    for (Tensor& g : grads)
      if (g.dtype() == dt)
        for (int64_t b = 0; b < g.numel(); b += kChunk)
          chunks.push_back(Chunk{static_cast<char*>(g.raw()) + size_t(b) * es, std::min(kChunk, g.numel() - b)});
    if (chunks.empty()) continue;
    Tensor host = Tensor::empty({int64_t(chunks.size() * sizeof(Chunk))}, DType::UInt8);
    std::memcpy(host.raw(), chunks.data(), chunks.size() * sizeof(Chunk));
    Tensor table = to_device(host, dev);
    dispatch_gpu_float(dt, "gradient check", [&](auto tag) {
      using T = decltype(tag);
      scale_check_kernel<T><<<unsigned(chunks.size()), kThreads, 0, st>>>(
          static_cast<const Chunk*>(table.raw()), acc_t<T>(factor), factor != 1.0 ? 1 : 0, dptr<int>(flag));
    });
    DS_CUDA_LAUNCH_CHECK();
  }
  int found = 0;
  copy_d2h(&found, flag.raw(), sizeof(int), dev.index);
  return found != 0;
}

}  // namespace ds::nn
