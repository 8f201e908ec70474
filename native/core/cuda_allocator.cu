#include <cuda_runtime.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <vector>

#include "core/cuda_allocator.h"
#include "core/cuda_runtime.h"
#include "core/error.h"

namespace ds::cuda {
namespace {

std::atomic<bool> g_poison{false};

class CudaBackend final : public PoolBackend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  void* raw_alloc(size_t bytes) override {
    DeviceGuard g(device_);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it and let the pool flush its cache
      return nullptr;
    }
    DS_CUDA_CHECK(e);
    return p;
  }
  void raw_free(void* p, size_t) override {
    DeviceGuard g(device_);
    // cudaFree waits for the device, so no queued kernel still uses p.
    DS_CUDA_CHECK(cudaFree(p));
  }

 private:
  int device_;
};

std::string mib(int64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1 << 20));
  return buf;
}

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device) : device_(device), backend_(device), pool_(&backend_) {}

  void* allocate(size_t bytes) override {
    const uintptr_t st = reinterpret_cast<uintptr_t>(stream(device_));
    void* p = pool_.allocate(bytes, st);
    if (!p) {
      PoolStats s = pool_.stats();
      size_t free_b = 0, total_b = 0;
      try {
        mem_info(device_, &free_b, &total_b);
      } catch (const Error&) {
      }
      DS_FAIL("CUDA out of memory on cuda:", device_, ": could not allocate ", mib(int64_t(bytes)), " (",
              bytes, " bytes); allocator: ", mib(s.allocated_bytes), " allocated by tensors, ",
              mib(s.reserved_bytes), " reserved, peak ", mib(s.peak_allocated_bytes), "; device: ",
              mib(int64_t(free_b)), " free of ", mib(int64_t(total_b)),
              ". Reduce the batch or patch size, use --amp, or free tensors and call emptyCache()");
    }
    if (g_poison.load(std::memory_order_relaxed)) {
      DeviceGuard g(device_);
      DS_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, bytes, reinterpret_cast<cudaStream_t>(st)));
    }
    return p;
  }
  void deallocate(void* ptr, size_t) override { pool_.deallocate(ptr); }
  AllocatorStats stats() const override {
    PoolStats p = pool_.stats();
    AllocatorStats s;
    s.allocated_bytes = p.allocated_bytes;
    s.peak_bytes = p.peak_allocated_bytes;
    s.reserved_bytes = p.reserved_bytes;
    s.num_allocs = p.num_allocs;
    return s;
  }
  void reset_peak() override { pool_.reset_peak(); }
  Device device() const override { return Device::cuda(device_); }
  CachingPool& pool() { return pool_; }

 private:
  int device_;
  CudaBackend backend_;
  CachingPool pool_;
};

struct Allocators {
  std::mutex mu;
  std::vector<CudaAllocator*> per_device;  // leaked on purpose: tensors in statics may outlive main
};

Allocators& allocators() {
  static Allocators* a = new Allocators();
  return *a;
}

CudaAllocator* find(int device, bool create) {
  Allocators& a = allocators();
  std::lock_guard<std::mutex> lock(a.mu);
  if (device < 0 || device >= int(a.per_device.size()) || !a.per_device[size_t(device)]) {
    if (!create) return nullptr;
    check_device(Device::cuda(device));
    if (int(a.per_device.size()) <= device) a.per_device.resize(size_t(device) + 1, nullptr);
    a.per_device[size_t(device)] = new CudaAllocator(device);
  }
  return a.per_device[size_t(device)];
}

}  // namespace

void set_poison_allocations(bool on) { g_poison.store(on); }
bool poison_allocations() { return g_poison.load(); }

Allocator& device_allocator(int device) { return *find(device, true); }

PoolStats allocator_stats(int device) {
  CudaAllocator* a = find(device, false);
  return a ? a->pool().stats() : PoolStats{};
}

void reset_peak(int device) {
  if (CudaAllocator* a = find(device, false)) a->pool().reset_peak();
}

void empty_cache(int device) {
  if (device >= 0) {
    if (CudaAllocator* a = find(device, false)) a->pool().empty_cache();
    return;
  }
  for (int d = 0; d < device_count(); ++d)
    if (CudaAllocator* a = find(d, false)) a->pool().empty_cache();
}

}  // namespace ds::cuda
