// Allocator interface. The CPU allocator returns 64-byte aligned memory (one
// cache line, one AVX-512 register) and keeps statistics so benchmarks can
// report peak memory. A caching CUDA allocator implements the same interface.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace ds {

struct AllocatorStats {
  int64_t allocated_bytes = 0;  // currently held by live tensors
  int64_t peak_bytes = 0;       // high-water mark since the last reset
  int64_t reserved_bytes = 0;   // held from the system (>= allocated for caching allocators)
  int64_t num_allocs = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual Device device() const = 0;
};

Allocator& cpu_allocator();
// The allocator for a device; throws ds::Error for devices this build cannot use.
Allocator& allocator_for(Device d);

}  // namespace ds
