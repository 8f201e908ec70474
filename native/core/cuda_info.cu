#include <cuda_runtime.h>

#include "core/cuda_info.h"

namespace ds {

bool cuda_compiled() { return true; }

int cuda_runtime_version() { return CUDART_VERSION; }

std::vector<GpuInfo> cuda_devices(std::string* why) {
  std::vector<GpuInfo> out;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = std::string("CUDA runtime: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    GpuInfo g;
    g.index = i;
    g.name = p.name;
    g.total_memory = int64_t(p.totalGlobalMem);
    g.major = p.major;
    g.minor = p.minor;
    g.multiprocessors = p.multiProcessorCount;
    out.push_back(g);
  }
  if (out.empty() && why) *why = "CUDA runtime found no GPU";
  return out;
}

}  // namespace ds
