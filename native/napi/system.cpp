// info(), thread count and SIMD level controls, allocator statistics.
#include "core/allocator.h"
#include "core/build_info.h"
#include "core/cpu_features.h"
#include "core/cuda_info.h"
#include "core/thread_pool.h"
#include "napi/common.h"

namespace ds::napi {
namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", version());
  o.Set("buildFlags", build_flags());
  o.Set("simd", simd_name(simd_level()));
  o.Set("simdSupported", simd_name(cpu_simd_support()));
  o.Set("threads", num_threads());
  o.Set("cudaCompiled", cuda_compiled());
  o.Set("cudaRuntimeVersion", cuda_runtime_version());
  std::string why;
  auto gpus = cuda_devices(&why);
  Napi::Array arr = Napi::Array::New(env, gpus.size());
  for (size_t i = 0; i < gpus.size(); ++i) {
    Napi::Object g = Napi::Object::New(env);
    g.Set("index", gpus[i].index);
    g.Set("name", gpus[i].name);
    g.Set("totalMemory", double(gpus[i].total_memory));
    g.Set("computeCapability", std::to_string(gpus[i].major) + "." + std::to_string(gpus[i].minor));
    g.Set("multiprocessors", gpus[i].multiprocessors);
    arr.Set(uint32_t(i), g);
  }
  o.Set("gpus", arr);
  o.Set("gpuNote", why);
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  set_num_threads(int(int_arg(info[0], "threads")));
  return info.Env().Undefined();
}

Napi::Value SetSimdLevel(const Napi::CallbackInfo& info) {
  set_simd_level(simd_from_name(string_arg(info[0], "SIMD level")));
  return info.Env().Undefined();
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto s = cpu_allocator().stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("allocatedBytes", double(s.allocated_bytes));
  o.Set("peakBytes", double(s.peak_bytes));
  o.Set("numAllocs", double(s.num_allocs));
  return o;
}

Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  cpu_allocator().reset_peak();
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  export_fn(env, exports, "info", Info);
  export_fn(env, exports, "setNumThreads", SetNumThreads);
  export_fn(env, exports, "setSimdLevel", SetSimdLevel);
  export_fn(env, exports, "memoryStats", MemoryStats);
  export_fn(env, exports, "resetPeakMemory", ResetPeakMemory);
}

}  // namespace

DS_NAPI_REGISTER(system, Init);

}  // namespace ds::napi
