// CUDA emulator: runtime API on the CPU. Device memory is host memory with
// guard bytes on both sides (checked after every kernel and at cudaFree) and
// filled with 0xff bytes (NaN in every float format) when allocated, so a
// kernel that reads what nothing wrote is likely to produce NaN. Copies are
// checked against the allocations they touch. Everything is synchronous:
// streams and events only keep time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define DS_EMU_ASAN 1
#else
#define DS_EMU_ASAN 0
#endif

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};

namespace detseg3d_emu {
namespace {

constexpr size_t kGuard = 256;  // bytes before and after every device allocation
constexpr unsigned char kGuardByte = 0xa5;

struct Alloc {
  size_t bytes;
  bool device;
};

struct State {
  std::mutex mu;
  std::map<uintptr_t, Alloc> allocs;  // user pointer -> allocation
  size_t device_bytes = 0;
};
State& st() {
  static State* s = new State();
  return *s;
}

thread_local cudaError_t t_last = cudaSuccess;
thread_local std::string t_last_msg;
thread_local int t_device = 0;

int device_count_env() {
  const char* s = std::getenv("DETSEG3D_EMU_DEVICES");
  int n = s ? std::atoi(s) : 1;
  return n < 0 ? 0 : n;
}

cudaError_t err(cudaError_t e, const std::string& msg) {
  set_last_error(e, msg);
  return e;
}

// The allocation containing [p, p + n), or nullptr.
const Alloc* find(const void* p, size_t n, uintptr_t* base) {
  auto& s = st();
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = s.allocs.upper_bound(a);
  if (it == s.allocs.begin()) return nullptr;
  --it;
  if (a < it->first || a + n > it->first + it->second.bytes) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}
bool is_device(const void* p) {
  uintptr_t b;
  const Alloc* a = find(p, 0, &b);
  return a && a->device;
}

std::string check_guards(uintptr_t base, const Alloc& a) {
  if (DS_EMU_ASAN) return "";  // the guards are poisoned: ASan reports any access at once
  const unsigned char* lo = reinterpret_cast<const unsigned char*>(base) - kGuard;
  const unsigned char* hi = reinterpret_cast<const unsigned char*>(base) + a.bytes;
  for (size_t i = 0; i < kGuard; ++i) {
    if (lo[i] != kGuardByte)
      return "write at byte " + std::to_string(kGuard - i) + " before the start of a device allocation of " +
             std::to_string(a.bytes) + " bytes";
    if (hi[i] != kGuardByte)
      return "write at byte " + std::to_string(i) + " after the end of a device allocation of " +
             std::to_string(a.bytes) + " bytes";
  }
  return "";
}

cudaError_t copy_check(void* dst, const void* src, size_t n, cudaMemcpyKind k, const char* what) {
  if (n == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lk(st().mu);
  auto in_device = [&](const void* p) {
    const Alloc* a = find(p, n, nullptr);
    return a && a->device;
  };
  const bool dd = in_device(dst), sd = in_device(src);
  const bool want_dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
  const bool want_sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
  if (k != cudaMemcpyDefault) {
    if (want_dd && !dd)
      return err(cudaErrorInvalidValue, std::string(what) + ": destination [" + std::to_string(n) +
                                            " bytes] is not inside one device allocation");
    if (want_sd && !sd)
      return err(cudaErrorInvalidValue,
                 std::string(what) + ": source [" + std::to_string(n) + " bytes] is not inside one device allocation");
    if (!want_dd && is_device(dst))
      return err(cudaErrorInvalidValue, std::string(what) + ": host destination expected, got device memory");
    if (!want_sd && is_device(src))
      return err(cudaErrorInvalidValue, std::string(what) + ": host source expected, got device memory");
  }
  return cudaSuccess;
}

}  // namespace

const DeviceModel& device_model() {
  static DeviceModel m = [] {
    std::string cc = std::getenv("DETSEG3D_EMU_CC") ? std::getenv("DETSEG3D_EMU_CC") : "9.0";
    DeviceModel d{"", 9, 0, 132, 232448, size_t(80) << 30};
    if (cc == "8.0") d = {"", 8, 0, 108, 166912, size_t(80) << 30};
    else if (cc == "8.6") d = {"", 8, 6, 84, 101376, size_t(24) << 30};
    else if (cc == "8.9") d = {"", 8, 9, 128, 101376, size_t(24) << 30};
    d.name = "detseg3d CUDA emulator (sm_" + std::to_string(d.major) + std::to_string(d.minor) + " on the CPU)";
    if (const char* mb = std::getenv("DETSEG3D_EMU_MEM_MB")) d.memory = size_t(std::atoll(mb)) << 20;
    // Fewer SMs make kernels that size their grids by the SM count (split
    // reductions) launch fewer blocks: faster to emulate, same code.
    if (const char* sms = std::getenv("DETSEG3D_EMU_SMS")) d.sms = std::max(1, std::atoi(sms));
    return d;
  }();
  return m;
}

void set_last_error(cudaError_t e, const std::string& message) {
  t_last = e;
  t_last_msg = message;
}

void kernel_failed(const std::string& message) {
  std::fprintf(stderr, "detseg3d CUDA emulator: %s\n", message.c_str());
  set_last_error(cudaErrorLaunchFailure, message);
}

void after_kernel(const std::string& config) {
  auto& s = st();
  std::lock_guard<std::mutex> lk(s.mu);
  for (auto& [base, a] : s.allocs) {
    if (!a.device) continue;
    std::string bad = check_guards(base, a);
    if (!bad.empty()) {
      // Re-arm the guard so one overrun is reported once.
      std::memset(reinterpret_cast<unsigned char*>(base) - kGuard, kGuardByte, kGuard);
      std::memset(reinterpret_cast<unsigned char*>(base) + a.bytes, kGuardByte, kGuard);
      std::fprintf(stderr, "detseg3d CUDA emulator: %s: out-of-bounds %s\n", config.c_str(), bad.c_str());
      set_last_error(cudaErrorIllegalAddress, config + ": out-of-bounds " + bad);
      return;
    }
  }
}

}  // namespace detseg3d_emu

using namespace detseg3d_emu;

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
// The CUDA string for the code, followed by the emulator's detail for the
// last error of this thread when it has that code.
const char* cudaGetErrorString(cudaError_t e) {
  thread_local std::string s;
  s = cudaGetErrorName(e);
  if (e != cudaSuccess && !t_last_msg.empty()) s += " (emulator: " + t_last_msg + ")";
  return s.c_str();
}
cudaError_t cudaGetLastError() {
  cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return t_last; }
cudaError_t cudaGetDeviceCount(int* n) {
  *n = device_count_env();
  return *n ? cudaSuccess : err(cudaErrorNoDevice, "DETSEG3D_EMU_DEVICES=0");
}
cudaError_t cudaGetDevice(int* d) {
  *d = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= device_count_env()) return err(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(d) + ")");
  t_device = d;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d < 0 || d >= device_count_env()) return err(cudaErrorInvalidDevice, "cudaGetDeviceProperties");
  const DeviceModel& m = device_model();
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "%s", m.name.c_str());
  p->totalGlobalMem = m.memory;
  p->sharedMemPerBlock = 48 << 10;
  p->sharedMemPerBlockOptin = m.smem_optin;
  p->major = m.major;
  p->minor = m.minor;
  p->multiProcessorCount = m.sms;
  p->maxThreadsPerBlock = 1024;
  p->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
  if (d < 0 || d >= device_count_env()) return err(cudaErrorInvalidDevice, "cudaDeviceGetAttribute");
  const DeviceModel& m = device_model();
  switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = 48 << 10; break;
    case cudaDevAttrMultiProcessorCount: *v = m.sms; break;
    case cudaDevAttrComputeCapabilityMajor: *v = m.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = m.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = int(m.smem_optin); break;
    default: return err(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lk(st().mu);
  *total_bytes = device_model().memory;
  *free_bytes = *total_bytes - std::min(*total_bytes, st().device_bytes);
  return cudaSuccess;
}

static cudaError_t alloc(void** p, size_t bytes, bool device) {
  auto& s = st();
  std::lock_guard<std::mutex> lk(s.mu);
  if (device && s.device_bytes + bytes > device_model().memory) {
    *p = nullptr;
    return err(cudaErrorMemoryAllocation, "out of emulated device memory (DETSEG3D_EMU_MEM_MB)");
  }
  const size_t n = bytes ? bytes : 1;
  unsigned char* raw = static_cast<unsigned char*>(std::aligned_alloc(256, (n + 2 * kGuard + 255) / 256 * 256));
  if (!raw) return err(cudaErrorMemoryAllocation, "host allocation failed");
  std::memset(raw, kGuardByte, kGuard);
  std::memset(raw + kGuard, 0xff, n);
  std::memset(raw + kGuard + n, kGuardByte, kGuard);
#if DS_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(raw, kGuard);
  ASAN_POISON_MEMORY_REGION(raw + kGuard + n, kGuard);
#endif
  *p = raw + kGuard;
  s.allocs[reinterpret_cast<uintptr_t>(*p)] = Alloc{n, device};
  if (device) s.device_bytes += n;
  return cudaSuccess;
}
static cudaError_t release(void* p, bool device) {
  if (!p) return cudaSuccess;
  auto& s = st();
  std::lock_guard<std::mutex> lk(s.mu);
  auto it = s.allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == s.allocs.end() || it->second.device != device)
    return err(cudaErrorInvalidValue, device ? "cudaFree of a pointer cudaMalloc did not return"
                                             : "cudaFreeHost of a pointer cudaHostAlloc did not return");
  std::string bad = device ? check_guards(it->first, it->second) : "";
  const size_t it_bytes = it->second.bytes;
  if (device) s.device_bytes -= it_bytes;
  s.allocs.erase(it);
#if DS_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(static_cast<unsigned char*>(p) - kGuard, it_bytes + 2 * kGuard);
#endif
  std::free(static_cast<unsigned char*>(p) - kGuard);
  if (!bad.empty()) {
    std::fprintf(stderr, "detseg3d CUDA emulator: cudaFree: out-of-bounds %s\n", bad.c_str());
    return err(cudaErrorIllegalAddress, "out-of-bounds " + bad);
  }
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) { return alloc(p, bytes, true); }
cudaError_t cudaFree(void* p) { return release(p, true); }
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) { return alloc(p, bytes, false); }
cudaError_t cudaMallocHost(void** p, size_t bytes) { return alloc(p, bytes, false); }
cudaError_t cudaFreeHost(void* p) { return release(p, false); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind k) {
  return cudaMemcpyAsync(dst, src, bytes, k, nullptr);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind k, cudaStream_t) {
  cudaError_t e = copy_check(dst, src, bytes, k, "cudaMemcpy");
  if (e != cudaSuccess) return e;
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t bytes) { return cudaMemsetAsync(p, v, bytes, nullptr); }
cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t) {
  if (!bytes) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lk(st().mu);
    const Alloc* a = find(p, bytes, nullptr);
    if (!a || !a->device)
      return err(cudaErrorInvalidValue, "cudaMemset: [" + std::to_string(bytes) + " bytes] not inside one device allocation");
  }
  std::memset(p, v, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
  return e ? cudaSuccess : err(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent on a null event");
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  if (!e) return err(cudaErrorInvalidResourceHandle, "cudaEventRecord on a null event");
  e->t = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b || !a->recorded || !b->recorded)
    return err(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime on an event never recorded");
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
