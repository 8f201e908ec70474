// What the CUDA runtime can see. Compiled from cuda_info.cu when the build
// found nvcc, and from cuda_info_nocuda.cpp otherwise. The runtime is linked
// statically, so a machine without a GPU or driver loads the library and just
// sees zero devices (with the runtime's reason).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ds {

struct GpuInfo {
  int index = 0;
  std::string name;
  int64_t total_memory = 0;
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
};

bool cuda_compiled();
// CUDA runtime version this library was built with (e.g. 13000), 0 without CUDA.
int cuda_runtime_version();
// Visible GPUs; when there are none, *why says why (no driver, no device, not compiled).
std::vector<GpuInfo> cuda_devices(std::string* why);

}  // namespace ds
