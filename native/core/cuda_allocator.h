// Caching allocator for GPU memory (one per device). cudaMalloc / cudaFree
// synchronise the device and cost tens of microseconds, so freed blocks are
// kept in size-bucketed, per-stream free lists (policy in core/caching_pool.h)
// and reused; emptyCache() returns them to the driver. Out-of-memory becomes a
// ds::Error naming the requested size, the allocator's statistics and the
// device's free memory.
#pragma once
#include "core/allocator.h"
#include "core/caching_pool.h"

namespace ds::cuda {

// The allocator of CUDA device `device`; throws ds::Error when it is not usable.
Allocator& device_allocator(int device);
// Statistics of a device's pool (all zero when it was never used or there is no CUDA).
PoolStats allocator_stats(int device);
void reset_peak(int device);
// Releases cached blocks of one device (device < 0: every device). No-op without CUDA.
void empty_cache(int device = -1);
// Debugging aid for the parity tests: while on, every block handed out is
// first filled with 0xFF bytes (NaN for every float dtype, -1 for integers),
// so an op that leaves output elements unwritten is caught.
void set_poison_allocations(bool on);
bool poison_allocations();

}  // namespace ds::cuda
