// Used when the library is built without CUDA (no nvcc found, or DETSEG3D_CUDA=OFF).
#include "core/cuda_info.h"

namespace ds {

bool cuda_compiled() { return false; }
int cuda_runtime_version() { return 0; }
std::vector<GpuInfo> cuda_devices(std::string* why) {
  if (why) *why = "built without CUDA (nvcc was not found or DETSEG3D_CUDA=OFF)";
  return {};
}

}  // namespace ds
