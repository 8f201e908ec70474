// core/cuda_runtime.h for builds without CUDA: there is never a GPU.
#include "core/cuda_runtime.h"
#include "core/error.h"

namespace ds::cuda {
namespace {
[[noreturn]] void no_cuda(const char* what) {
  DS_FAIL(what, ": this build of detseg3d has no CUDA support (nvcc was not found or DETSEG3D_CUDA=OFF); "
                "use device 'cpu' or rebuild with CUDA");
}
}  // namespace

bool compiled() { return false; }
int device_count() { return 0; }
std::string unavailable_reason() { return "built without CUDA (nvcc was not found or DETSEG3D_CUDA=OFF)"; }
void check_device(Device d) { no_cuda(d.str().c_str()); }
DeviceGuard::DeviceGuard(int) { no_cuda("CUDA device"); }
DeviceGuard::~DeviceGuard() {}
void* stream(int) { no_cuda("CUDA stream"); }
void synchronize(int) { no_cuda("CUDA synchronize"); }
void copy_h2d(void*, const void*, size_t, int) { no_cuda("copy to GPU"); }
void copy_d2h(void*, const void*, size_t, int) { no_cuda("copy from GPU"); }
void copy_d2d(void*, const void*, size_t, int) { no_cuda("GPU copy"); }
void memset_async(void*, int, size_t, int) { no_cuda("GPU memset"); }
size_t staging_threshold() { return 0; }
Event::Event(int) { no_cuda("CUDA event"); }
Event::~Event() {}
void Event::record() { no_cuda("CUDA event"); }
void Event::synchronize() { no_cuda("CUDA event"); }
bool Event::query() const { no_cuda("CUDA event"); }
float Event::elapsed_ms(const Event&) const { no_cuda("CUDA event"); }
void mem_info(int, size_t*, size_t*) { no_cuda("GPU memory info"); }
std::string error_string(int err) { return "CUDA error " + std::to_string(err); }
void throw_error(int err, const char* expr, const char* file, int line) {
  DS_FAIL("CUDA error ", err, " in ", expr, " at ", file, ":", line);
}

}  // namespace ds::cuda
