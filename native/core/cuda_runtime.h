// CUDA device management for the core, usable from plain C++ (no CUDA
// headers here): device discovery, a device guard, one compute stream per
// device, host <-> device copies (large ones through pinned staging buffers),
// events and the error mapping. Implemented in cuda_runtime.cu when the build
// has CUDA and in cuda_runtime_nocuda.cpp otherwise (there every device query
// says "no GPU" and everything that would need one throws ds::Error).
//
// Stream model: every op on a CUDA tensor is enqueued on its device's compute
// stream (created once, non-blocking). Work on one device is therefore
// ordered; host code that reads device memory synchronises that stream
// (copy_d2h does). The caching allocator hands out memory per stream, so a
// freed block may be reused at once by later work on the same stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/allocator.h"
#include "core/device.h"

namespace ds::cuda {

// True when the library was compiled with CUDA (not whether a GPU is present).
bool compiled();
// Number of usable GPUs; 0 (never throws) when there is no driver or device.
int device_count();
inline bool available() { return device_count() > 0; }
// Why there is no GPU ("" when there is one).
std::string unavailable_reason();
// Throws ds::Error unless d is a CUDA device this process can use.
void check_device(Device d);

// Makes `index` the calling thread's current device for the guard's lifetime.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// The compute stream of a device (a cudaStream_t), created on first use.
void* stream(int device);
// Blocks until all work queued on the device's compute stream has finished;
// throws ds::Error with the first asynchronous error (e.g. a kernel fault).
void synchronize(int device);

// Copies. h2d/d2h are synchronous with respect to the host buffer (it may be
// reused when they return); transfers above staging_threshold() bytes go
// through a pair of pinned buffers so that the host copy and the DMA overlap.
void copy_h2d(void* dst, const void* src, size_t bytes, int device);
void copy_d2h(void* dst, const void* src, size_t bytes, int device);
// Asynchronous on the device's compute stream.
void copy_d2d(void* dst, const void* src, size_t bytes, int device);
void memset_async(void* dst, int value, size_t bytes, int device);
size_t staging_threshold();

// A CUDA event on a device's compute stream (timing and host waits).
class Event {
 public:
  explicit Event(int device);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record();          // on the compute stream
  void synchronize();     // host waits until the recorded work is done
  bool query() const;     // true when the recorded work is done
  // Milliseconds between `start` (recorded earlier) and this event; both must be complete.
  float elapsed_ms(const Event& start) const;

 private:
  void* ev_ = nullptr;
  int device_ = 0;
};

// Free / total memory of the device as the driver reports it.
void mem_info(int device, size_t* free_bytes, size_t* total_bytes);

// Error mapping: throws ds::Error "CUDA error <name> (<description>) in <expr>
// at <file>:<line>" for a non-zero cudaError_t value. The macro works from
// plain C++ and .cu files alike (cudaSuccess is 0).
[[noreturn]] void throw_error(int err, const char* expr, const char* file, int line);
// Name and description of a cudaError_t (for messages).
std::string error_string(int err);

}  // namespace ds::cuda

#define DS_CUDA_CHECK(expr)                                                       \
  do {                                                                            \
    const int ds_cuda_err_ = static_cast<int>(expr);                              \
    if (ds_cuda_err_ != 0) ::ds::cuda::throw_error(ds_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)
