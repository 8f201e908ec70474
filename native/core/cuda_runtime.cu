// CUDA implementation of core/cuda_runtime.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace ds::cuda {
namespace {

constexpr size_t kStagingChunk = size_t(4) << 20;  // bytes per pinned staging buffer (two of them)
constexpr size_t kStagingThreshold = size_t(1) << 20;

struct DeviceState {
  std::once_flag stream_once;
  cudaStream_t stream = nullptr;
  std::mutex staging_mu;
  void* staging[2] = {nullptr, nullptr};
  cudaEvent_t staging_ev[2] = {nullptr, nullptr};
};

struct Runtime {
  int count = 0;
  std::string why;
  std::vector<std::unique_ptr<DeviceState>> devices;
};

Runtime& runtime() {
  static Runtime* rt = [] {
    auto* r = new Runtime();  // never destroyed: streams must outlive static tensors
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      r->why = std::string("CUDA runtime: ") + cudaGetErrorString(e);
      cudaGetLastError();
      n = 0;
    } else if (n == 0) {
      r->why = "CUDA runtime found no GPU";
    }
    r->count = n;
    for (int i = 0; i < n; ++i) r->devices.emplace_back(new DeviceState());
    return r;
  }();
  return *rt;
}

DeviceState& state(int device) {
  Runtime& r = runtime();
  DS_CHECK(device >= 0 && device < r.count, "CUDA device ", device, " does not exist: ",
           r.count ? std::to_string(r.count) + " GPU(s) visible" : r.why);
  return *r.devices[size_t(device)];
}

cudaStream_t stream_of(int device) { return static_cast<cudaStream_t>(stream(device)); }

// Allocates the pinned staging buffers of a device (caller holds staging_mu).
void ensure_staging(DeviceState& s, int device) {
  if (s.staging[0]) return;
  DeviceGuard g(device);
  for (int i = 0; i < 2; ++i) {
    DS_CUDA_CHECK(cudaHostAlloc(&s.staging[i], kStagingChunk, cudaHostAllocDefault));
    DS_CUDA_CHECK(cudaEventCreateWithFlags(&s.staging_ev[i], cudaEventDisableTiming));
  }
}

}  // namespace

bool compiled() { return true; }

int device_count() { return runtime().count; }

std::string unavailable_reason() { return runtime().why; }

void check_device(Device d) {
  DS_CHECK(d.kind == Device::CUDA, "internal: ", d.str(), " is not a CUDA device");
  Runtime& r = runtime();
  DS_CHECK(r.count > 0, "device ", d.str(), " requested but no GPU is usable (", r.why,
           "); use device 'cpu' or check the NVIDIA driver with nvidia-smi");
  DS_CHECK(d.index >= 0 && d.index < r.count, "device ", d.str(), " does not exist: ", r.count,
           " GPU(s) visible (cuda:0 .. cuda:", r.count - 1, ")");
}

// Devices that some guard has made current (so their primary context exists).
// A thread that never chose a device reports device 0; restoring that would
// create a context on GPU 0 (since CUDA 12, cudaSetDevice initialises it) in
// every rank of a multi-GPU node, so only devices already in use are restored.
static std::atomic<uint64_t> g_devices_used{0};

DeviceGuard::DeviceGuard(int index) {
  state(index);  // validates
  int cur = -1;
  DS_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != index) {
    DS_CUDA_CHECK(cudaSetDevice(index));
    if (cur >= 0 && cur < 64 && ((g_devices_used.load(std::memory_order_relaxed) >> cur) & 1u)) prev_ = cur;
  }
  if (index < 64) g_devices_used.fetch_or(uint64_t(1) << index, std::memory_order_relaxed);
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) cudaSetDevice(prev_);
}

void* stream(int device) {
  DeviceState& s = state(device);
  std::call_once(s.stream_once, [&] {
    DeviceGuard g(device);
    DS_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  });
  return s.stream;
}

void synchronize(int device) {
  DeviceGuard g(device);
  DS_CUDA_CHECK(cudaStreamSynchronize(stream_of(device)));
}

size_t staging_threshold() { return kStagingThreshold; }

void copy_h2d(void* dst, const void* src, size_t bytes, int device) {
  if (!bytes) return;
  DeviceGuard g(device);
  cudaStream_t st = stream_of(device);
  if (bytes <= kStagingThreshold) {
    // From pageable memory the runtime copies into its own staging buffer before returning.
    DS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st));
    return;
  }
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lock(s.staging_mu);
  ensure_staging(s, device);
  const char* in = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  size_t chunk = 0;
  for (size_t off = 0; off < bytes; off += kStagingChunk, ++chunk) {
    const int b = int(chunk & 1);
    const size_t n = std::min(kStagingChunk, bytes - off);
    // Wait until the DMA that last read this buffer is done, then refill it.
    DS_CUDA_CHECK(cudaEventSynchronize(s.staging_ev[b]));
    std::memcpy(s.staging[b], in + off, n);
    DS_CUDA_CHECK(cudaMemcpyAsync(out + off, s.staging[b], n, cudaMemcpyHostToDevice, st));
    DS_CUDA_CHECK(cudaEventRecord(s.staging_ev[b], st));
  }
  // The source has been fully read; the stream orders the DMA before later kernels.
}

void copy_d2h(void* dst, const void* src, size_t bytes, int device) {
  if (!bytes) return;
  DeviceGuard g(device);
  cudaStream_t st = stream_of(device);
  if (bytes <= kStagingThreshold) {
    DS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st));
    DS_CUDA_CHECK(cudaStreamSynchronize(st));
    return;
  }
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lock(s.staging_mu);
  ensure_staging(s, device);
  const char* in = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  const size_t nchunks = (bytes + kStagingChunk - 1) / kStagingChunk;
  auto issue = [&](size_t c) {
    const int b = int(c & 1);
    const size_t off = c * kStagingChunk, n = std::min(kStagingChunk, bytes - off);
    DS_CUDA_CHECK(cudaMemcpyAsync(s.staging[b], in + off, n, cudaMemcpyDeviceToHost, st));
    DS_CUDA_CHECK(cudaEventRecord(s.staging_ev[b], st));
  };
  issue(0);
  for (size_t c = 0; c < nchunks; ++c) {
    // Buffer (c+1)&1 was drained in iteration c-1, so the next DMA may start now.
    if (c + 1 < nchunks) issue(c + 1);
    const int b = int(c & 1);
    const size_t off = c * kStagingChunk, n = std::min(kStagingChunk, bytes - off);
    DS_CUDA_CHECK(cudaEventSynchronize(s.staging_ev[b]));
    std::memcpy(out + off, s.staging[b], n);
  }
}

void copy_d2d(void* dst, const void* src, size_t bytes, int device) {
  if (!bytes) return;
  DeviceGuard g(device);
  DS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(device)));
}

void memset_async(void* dst, int value, size_t bytes, int device) {
  if (!bytes) return;
  DeviceGuard g(device);
  DS_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, stream_of(device)));
}

Event::Event(int device) : device_(device) {
  DeviceGuard g(device);
  cudaEvent_t e = nullptr;
  DS_CUDA_CHECK(cudaEventCreate(&e));
  ev_ = e;
}

Event::~Event() {
  if (ev_) cudaEventDestroy(static_cast<cudaEvent_t>(ev_));
}

void Event::record() {
  DeviceGuard g(device_);
  DS_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(ev_), stream_of(device_)));
}

void Event::synchronize() { DS_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(ev_))); }

bool Event::query() const {
  cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(ev_));
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  DS_CUDA_CHECK(e);
  return true;
}

float Event::elapsed_ms(const Event& start) const {
  float ms = 0;
  DS_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.ev_), static_cast<cudaEvent_t>(ev_)));
  return ms;
}

void mem_info(int device, size_t* free_bytes, size_t* total_bytes) {
  DeviceGuard g(device);
  size_t f = 0, t = 0;
  DS_CUDA_CHECK(cudaMemGetInfo(&f, &t));
  if (free_bytes) *free_bytes = f;
  if (total_bytes) *total_bytes = t;
}

std::string error_string(int err) {
  const cudaError_t e = static_cast<cudaError_t>(err);
  return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
}

void throw_error(int err, const char* expr, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the process can go on
  const char* base = std::strrchr(file, '/');
  std::string msg = "CUDA error " + error_string(err) + " in " + expr + " at " + (base ? base + 1 : file) + ":" +
                    std::to_string(line);
  if (err == int(cudaErrorMemoryAllocation))
    msg += "; the GPU is out of memory: reduce the batch or patch size, or call emptyCache()";
  else if (err == int(cudaErrorIllegalAddress) || err == int(cudaErrorLaunchFailure))
    msg += "; the CUDA context is now unusable: restart the process (and report this as a bug)";
  throw Error(msg);
}

}  // namespace ds::cuda
