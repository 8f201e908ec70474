// GPU memory controls for JS: gpuMemoryStats(device?), emptyCache(device?),
// resetGpuPeakMemory(device?), gpuSynchronize(device?). Safe to call on a
// machine without a GPU (statistics are zero, emptyCache does nothing).
#include "core/cuda_allocator.h"
#include "core/cuda_runtime.h"
#include "napi/common.h"

namespace ds::napi {
namespace {

int device_arg(const Napi::CallbackInfo& info, int fallback) {
  if (info.Length() < 1 || info[0].IsUndefined() || info[0].IsNull()) return fallback;
  const int64_t d = int_arg(info[0], "device index");
  DS_CHECK(d >= 0 && d < 1024, "device index must be >= 0, got ", d);
  return int(d);
}

Napi::Value GpuMemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dev = device_arg(info, 0);
  PoolStats s = cuda::allocator_stats(dev);
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", dev);
  o.Set("allocatedBytes", double(s.allocated_bytes));
  o.Set("requestedBytes", double(s.requested_bytes));
  o.Set("reservedBytes", double(s.reserved_bytes));
  o.Set("peakAllocatedBytes", double(s.peak_allocated_bytes));
  o.Set("peakReservedBytes", double(s.peak_reserved_bytes));
  o.Set("numAllocs", double(s.num_allocs));
  o.Set("numCudaMallocs", double(s.num_raw_allocs));
  o.Set("numCudaFrees", double(s.num_raw_frees));
  o.Set("cacheHits", double(s.num_cache_hits));
  o.Set("oomRetries", double(s.num_oom_retries));
  o.Set("cachedBlocks", double(s.cached_blocks));
  if (dev < cuda::device_count()) {
    size_t f = 0, t = 0;
    cuda::mem_info(dev, &f, &t);
    o.Set("deviceFreeBytes", double(f));
    o.Set("deviceTotalBytes", double(t));
  }
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  cuda::empty_cache(device_arg(info, -1));
  return info.Env().Undefined();
}

Napi::Value ResetGpuPeakMemory(const Napi::CallbackInfo& info) {
  cuda::reset_peak(device_arg(info, 0));
  return info.Env().Undefined();
}

Napi::Value GpuSynchronize(const Napi::CallbackInfo& info) {
  const int dev = device_arg(info, 0);
  cuda::check_device(Device::cuda(dev));
  cuda::synchronize(dev);
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "gpuMemoryStats", GpuMemoryStats);
  export_fn(env, exports, "emptyCache", EmptyCache);
  export_fn(env, exports, "resetGpuPeakMemory", ResetGpuPeakMemory);
  export_fn(env, exports, "gpuSynchronize", GpuSynchronize);
}

}  // namespace

DS_NAPI_REGISTER(cuda_device, Init);

}  // namespace ds::napi
