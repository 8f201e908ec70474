#include "dist/nccl_backend.h"

#include "core/error.h"

#if defined(DETSEG3D_WITH_CUDA) && DETSEG3D_WITH_CUDA
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

#include "core/cuda_runtime.h"
#include "dist/dist_cuda.h"

namespace ds::dist {
namespace {

// ---- the part of nccl.h we use (ABI stable since NCCL 2.0; ncclAvg since 2.10) ----
// The minimum is 2.4 (2019); without ncclAvg (< 2.10) an average is a sum
// followed by a scale kernel on the same stream.
struct ncclComm;
using ncclComm_t = ncclComm*;
struct ncclUniqueId_ {
  char internal[kNcclUniqueIdBytes];
};
using ncclResult_t = int;  // 0 = ncclSuccess
enum ncclDataType_t : int { ncclInt32 = 2, ncclInt64 = 4, ncclUint8 = 1, ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 };
enum ncclRedOp_t : int { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };

struct NcclApi {
  ncclResult_t (*GetVersion)(int*) = nullptr;
  ncclResult_t (*GetUniqueId)(ncclUniqueId_*) = nullptr;
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId_, int) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*Broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*AllGather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
  int version = 0;  // major*10000 + minor*100 + patch
  bool has_avg() const { return version >= 21000; }
};

template <class F>
void resolve(void* h, const char* sym, F*& out, const std::string& path) {
  out = reinterpret_cast<F*>(::dlsym(h, sym));
  DS_CHECK(out != nullptr, "NCCL library ", path, " has no symbol ", sym, "; NCCL >= 2.4 is needed");
}

// Loads libnccl once per process; throws (every time) when it cannot.
const NcclApi& api() {
  static std::mutex mu;
  static NcclApi a;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded) return a;
  const char* env = std::getenv("DETSEG3D_NCCL_PATH");
  std::string path = env && *env ? env : "libnccl.so.2";
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = ::dlerror();
    DS_FAIL("cannot load NCCL (", path, "): ", why ? why : "unknown error",
            ". Install NCCL 2 (e.g. `apt-get install libnccl2`, or the nvidia-nccl-cu12 wheel) or point "
            "DETSEG3D_NCCL_PATH at libnccl.so.2; CPU training uses backend 'gloo' instead");
  }
  NcclApi t;
  resolve(h, "ncclGetVersion", t.GetVersion, path);
  resolve(h, "ncclGetUniqueId", t.GetUniqueId, path);
  resolve(h, "ncclCommInitRank", t.CommInitRank, path);
  resolve(h, "ncclAllReduce", t.AllReduce, path);
  resolve(h, "ncclBroadcast", t.Broadcast, path);
  resolve(h, "ncclAllGather", t.AllGather, path);
  resolve(h, "ncclCommDestroy", t.CommDestroy, path);
  resolve(h, "ncclGetErrorString", t.GetErrorString, path);
  int v = 0;
  t.GetVersion(&v);
  // NCCL < 2.9 encodes major*1000 + minor*100 + patch, later major*10000 + minor*100 + patch.
  const int code = v >= 10000 ? v : (v / 1000) * 10000 + v % 1000;
  DS_CHECK(code >= 20400, "NCCL ", v, " at ", path, " is too old: detseg3d needs NCCL >= 2.4");
  t.version = code;
  a = t;
  loaded = true;  // the handle stays open for the life of the process
  return a;
}

void nccl_check(ncclResult_t r, const char* what) {
  if (r != 0) DS_FAIL("NCCL ", what, " failed: ", api().GetErrorString(r), " (code ", r, ")");
}
void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) DS_FAIL("CUDA error in ", what, ": ", cudaGetErrorString(e));
}

ncclDataType_t nccl_dtype(DType d) {
  switch (d) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::Float16: return ncclFloat16;
    case DType::BFloat16: return ncclBfloat16;
    case DType::Int32: return ncclInt32;
    case DType::Int64: return ncclInt64;
    case DType::UInt8: return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  return ncclSum;
}

class NcclBackend final : public Backend {
 public:
  NcclBackend(const NcclOptions& o) : rank_(o.rank), size_(o.size), device_(o.device) {
    cuda_check(cudaSetDevice(device_), "cudaSetDevice(LOCAL_RANK)");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda_check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
    // Every op on a CUDA tensor runs on the device's compute stream (core/cuda_runtime.h),
    // a non-blocking stream: the legacy default stream would not order after it.
    compute_ = static_cast<cudaStream_t>(ds::cuda::stream(device_));
    ncclUniqueId_ id;
    std::memcpy(id.internal, o.id.data(), kNcclUniqueIdBytes);
    nccl_check(api().CommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclBackend() override {
    cudaSetDevice(device_);
    if (comm_) api().CommDestroy(comm_);
    if (staging_) cudaFree(staging_);
    for (auto& s : slots_) {
      cudaEventDestroy(s.ready);
      cudaEventDestroy(s.done);
    }
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool host_memory() const override { return false; }
  void set_compute_stream(void* s) { compute_ = s ? static_cast<cudaStream_t>(s) : static_cast<cudaStream_t>(ds::cuda::stream(device_)); }
  bool device_collectives() const override { return true; }
  int device_index() const override { return device_; }

  // Called by the thread running backward: no lock (only the slot table's
  // growth is guarded), no host synchronisation.
  void device_ready(int slot) override {
    ds::cuda::DeviceGuard g(device_);
    Slot& s = slot_at(slot);
    cuda_check(cudaEventRecord(s.ready, compute_), "cudaEventRecord (bucket ready)");
  }

  void all_reduce_device(int slot, void* data, size_t count, DType dtype, ReduceOp op) override {
    std::lock_guard<std::mutex> lock(mu_);
    ds::cuda::DeviceGuard g(device_);
    Slot& s = slot_at(slot);
    cuda_check(cudaStreamWaitEvent(stream_, s.ready, 0), "cudaStreamWaitEvent (bucket ready)");
    if (count > 0) reduce_on_stream(data, count, dtype, op);
    cuda_check(cudaEventRecord(s.done, stream_), "cudaEventRecord (bucket reduced)");
  }

  void device_wait(int slot) override {
    ds::cuda::DeviceGuard g(device_);
    Slot& s = slot_at(slot);
    cuda_check(cudaStreamWaitEvent(compute_, s.done, 0), "cudaStreamWaitEvent (bucket reduced)");
  }

  void all_reduce(void* data, size_t count, DType dtype, ReduceOp op, uint32_t, bool device_ptr) override {
    if (count == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    const size_t bytes = count * dtype_size(dtype);
    if (device_ptr) {
      order_after_compute();
      reduce_on_stream(data, count, dtype, op);
      return;  // asynchronous: synchronize() or a stream wait orders later use
    }
    void* d = staging(bytes);
    cuda_check(cudaMemcpyAsync(d, data, bytes, cudaMemcpyHostToDevice, stream_), "copy to GPU");
    reduce_on_stream(d, count, dtype, op);
    cuda_check(cudaMemcpyAsync(data, d, bytes, cudaMemcpyDeviceToHost, stream_), "copy from GPU");
    cuda_check(cudaStreamSynchronize(stream_), "ncclAllReduce (stream synchronize)");
  }

  void broadcast(void* data, size_t bytes, int root, uint32_t, bool device_ptr) override {
    DS_CHECK(root >= 0 && root < size_, "broadcast root ", root, " is not a rank of this group of ", size_);
    if (bytes == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    if (device_ptr) {
      order_after_compute();
      nccl_check(api().Broadcast(data, data, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast");
      return;
    }
    void* d = staging(bytes);
    cuda_check(cudaMemcpyAsync(d, data, bytes, cudaMemcpyHostToDevice, stream_), "copy to GPU");
    nccl_check(api().Broadcast(d, d, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast");
    cuda_check(cudaMemcpyAsync(data, d, bytes, cudaMemcpyDeviceToHost, stream_), "copy from GPU");
    cuda_check(cudaStreamSynchronize(stream_), "ncclBroadcast (stream synchronize)");
  }

  std::vector<std::vector<uint8_t>> all_gather_bytes(const std::vector<uint8_t>& in, uint32_t) override {
    std::lock_guard<std::mutex> lock(mu_);
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    // NCCL gathers equal-sized blocks: lengths first, then payloads padded to the longest.
    std::vector<int64_t> lens(size_);
    int64_t mine = int64_t(in.size());
    auto* d = static_cast<int64_t*>(staging(sizeof(int64_t) * (size_ + 1)));
    cuda_check(cudaMemcpyAsync(d + size_, &mine, sizeof mine, cudaMemcpyHostToDevice, stream_), "copy to GPU");
    nccl_check(api().AllGather(d + size_, d, 1, ncclInt64, comm_, stream_), "ncclAllGather");
    cuda_check(cudaMemcpyAsync(lens.data(), d, sizeof(int64_t) * size_, cudaMemcpyDeviceToHost, stream_), "copy from GPU");
    cuda_check(cudaStreamSynchronize(stream_), "ncclAllGather");
    size_t block = 1;
    for (auto l : lens) block = std::max(block, size_t(l));
    auto* buf = static_cast<uint8_t*>(staging(block * (size_ + 1)));
    std::vector<uint8_t> padded(in);
    padded.resize(block);
    cuda_check(cudaMemcpyAsync(buf + block * size_, padded.data(), block, cudaMemcpyHostToDevice, stream_), "copy to GPU");
    nccl_check(api().AllGather(buf + block * size_, buf, block, ncclUint8, comm_, stream_), "ncclAllGather");
    std::vector<uint8_t> all(block * size_);
    cuda_check(cudaMemcpyAsync(all.data(), buf, all.size(), cudaMemcpyDeviceToHost, stream_), "copy from GPU");
    cuda_check(cudaStreamSynchronize(stream_), "ncclAllGather");
    std::vector<std::vector<uint8_t>> out(size_);
    for (int r = 0; r < size_; ++r) out[r].assign(all.begin() + r * block, all.begin() + r * block + lens[r]);
    return out;
  }

  void barrier(uint32_t tag) override {
    int32_t one = 1;
    all_reduce(&one, 1, DType::Int32, ReduceOp::Sum, tag, false);
  }

  double time_all_reduce(size_t count, int iters) override {
    DS_CHECK(iters >= 1, "time_all_reduce: iters must be >= 1");
    void* d = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cuda_check(cudaSetDevice(device_), "cudaSetDevice");
      cuda_check(cudaMalloc(&d, std::max<size_t>(count, 1) * sizeof(float)), "cudaMalloc (benchmark buffer)");
      cuda_check(cudaMemset(d, 0, std::max<size_t>(count, 1) * sizeof(float)), "cudaMemset");
    }
    std::vector<double> t;
    try {
      all_reduce(d, count, DType::Float32, ReduceOp::Sum, 0, true);  // warm-up
      synchronize();
      for (int i = 0; i < iters; ++i) {
        barrier(0);
        auto t0 = std::chrono::steady_clock::now();
        all_reduce(d, count, DType::Float32, ReduceOp::Sum, 0, true);
        synchronize();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    } catch (...) {
      cudaFree(d);
      throw;
    }
    cudaFree(d);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }

  void synchronize() override {
    std::lock_guard<std::mutex> lock(mu_);
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    cuda_check(cudaStreamSynchronize(stream_), "NCCL stream synchronize");
  }

 private:
  struct Slot {
    cudaEvent_t ready = nullptr, done = nullptr;
  };
  // Slots live in a deque (stable addresses) and are only appended.
  Slot& slot_at(int slot) {
    DS_CHECK(slot >= 0, "internal: negative collective slot ", slot);
    std::lock_guard<std::mutex> lock(slots_mu_);
    while (int(slots_.size()) <= slot) {
      Slot s;
      cuda_check(cudaEventCreateWithFlags(&s.ready, cudaEventDisableTiming), "cudaEventCreate");
      cuda_check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
      slots_.push_back(s);
    }
    return slots_[size_t(slot)];
  }
  // In place on the NCCL stream; an average without ncclAvg is a sum, then a scale.
  void reduce_on_stream(void* d, size_t count, DType dtype, ReduceOp op) {
    const bool emulate_avg = op == ReduceOp::Avg && !api().has_avg();
    nccl_check(api().AllReduce(d, d, count, nccl_dtype(dtype), nccl_op(emulate_avg ? ReduceOp::Sum : op), comm_, stream_),
               "ncclAllReduce");
    if (emulate_avg) scale_on_stream(d, count, dtype, 1.0 / size_, stream_);
  }
  // The NCCL stream waits for the compute stream's queued work (the gradients).
  void order_after_compute() {
    cuda_check(cudaEventRecord(ready_, compute_), "cudaEventRecord");
    cuda_check(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
  }
  void* staging(size_t bytes) {
    if (bytes > staging_bytes_) {
      cuda_check(cudaStreamSynchronize(stream_), "synchronize");
      if (staging_) cudaFree(staging_);
      staging_ = nullptr;
      cuda_check(cudaMalloc(&staging_, bytes), "cudaMalloc (NCCL staging buffer)");
      staging_bytes_ = bytes;
    }
    return staging_;
  }

  int rank_, size_, device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaStream_t compute_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  std::mutex mu_;
  std::mutex slots_mu_;
  std::deque<Slot> slots_;
};

}  // namespace

bool nccl_compiled() { return true; }

std::string nccl_version() {
  const int v = api().version;  // major*10000 + minor*100 + patch
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

NcclUniqueId nccl_unique_id() {
  ncclUniqueId_ id;
  nccl_check(api().GetUniqueId(&id), "ncclGetUniqueId");
  NcclUniqueId out;
  std::memcpy(out.data(), id.internal, kNcclUniqueIdBytes);
  return out;
}

std::shared_ptr<Backend> make_nccl_backend(const NcclOptions& o) {
  DS_CHECK(o.size >= 1 && o.rank >= 0 && o.rank < o.size, "nccl: rank ", o.rank, " is not in [0, world size ",
           o.size, ")");
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  DS_CHECK(e == cudaSuccess && n > 0, "nccl: no usable GPU (", e == cudaSuccess ? "0 devices" : cudaGetErrorString(e),
           "); use --device cpu (backend 'gloo') on machines without GPUs");
  DS_CHECK(o.device >= 0 && o.device < n, "nccl: LOCAL_RANK ", o.device, " has no GPU: this node has ", n,
           " visible GPU(s); start at most that many processes per node (--nproc_per_node ", n, ")");
  return std::make_shared<NcclBackend>(o);
}

void nccl_set_compute_stream(Backend& b, void* s) {
  auto* n = dynamic_cast<NcclBackend*>(&b);
  DS_CHECK(n != nullptr, "setComputeStream applies to the nccl backend only (this group uses ", b.name(), ")");
  n->set_compute_stream(s);
}

}  // namespace ds::dist

#else  // no CUDA

namespace ds::dist {

namespace {
[[noreturn]] void no_cuda() {
  DS_FAIL("backend 'nccl' needs a CUDA build of detseg3d (this one was built without CUDA: nvcc was not found "
          "or DETSEG3D_CUDA=OFF); use backend 'gloo' with --device cpu, or rebuild with the CUDA toolkit installed");
}
}  // namespace

bool nccl_compiled() { return false; }
std::string nccl_version() { no_cuda(); }
NcclUniqueId nccl_unique_id() { no_cuda(); }
std::shared_ptr<Backend> make_nccl_backend(const NcclOptions&) { no_cuda(); }
void nccl_set_compute_stream(Backend&, void*) { no_cuda(); }

}  // namespace ds::dist

#endif
