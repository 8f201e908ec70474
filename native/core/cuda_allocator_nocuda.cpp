// core/cuda_allocator.h for builds without CUDA.
#include "core/cuda_allocator.h"
#include "core/error.h"

namespace ds::cuda {

Allocator& device_allocator(int device) {
  DS_FAIL("device cuda:", device, " requested but this build of detseg3d has no CUDA support; use device 'cpu'");
}
PoolStats allocator_stats(int) { return PoolStats{}; }
void reset_peak(int) {}
void empty_cache(int) {}
void set_poison_allocations(bool) {}
bool poison_allocations() { return false; }

}  // namespace ds::cuda
