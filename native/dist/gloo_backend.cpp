#include "dist/gloo_backend.h"

#include "core/error.h"

#if defined(DETSEG3D_WITH_GLOO) && DETSEG3D_WITH_GLOO
#include <gloo/allgatherv.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <cstring>
#include <mutex>

#include "dist/store_client.h"

namespace ds::dist {
namespace {

// gloo::rendezvous::Store over our TCP store, every key under `prefix`.
class StoreAdapter : public gloo::rendezvous::Store {
 public:
  StoreAdapter(std::shared_ptr<StoreClient> c, std::string prefix, std::chrono::milliseconds timeout)
      : c_(std::move(c)), prefix_(std::move(prefix)), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { c_->set(prefix_ + key, data); }
  std::vector<char> get(const std::string& key) override { return c_->get(prefix_ + key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> k;
    for (auto& s : keys) k.push_back(prefix_ + s);
    c_->wait(k, timeout);
  }

 private:
  std::shared_ptr<StoreClient> c_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

template <class T>
ReduceFn reduce_fn(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg: return &gloo::sum<T>;
    case ReduceOp::Max: return &gloo::max<T>;
    case ReduceOp::Min: return &gloo::min<T>;
  }
  return nullptr;
}

class GlooBackend final : public Backend {
 public:
  GlooBackend(std::shared_ptr<gloo::Context> ctx, int rank, int size) : ctx_(std::move(ctx)), rank_(rank), size_(size) {}
  const char* name() const override { return "gloo"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool host_memory() const override { return true; }

  void all_reduce(void* data, size_t count, DType dtype, ReduceOp op, uint32_t tag, bool device_ptr) override {
    DS_CHECK(!device_ptr, "the gloo backend works on CPU memory only; use backend 'nccl' for GPU tensors");
    if (op == ReduceOp::Avg)
      DS_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "allReduce 'avg' needs float32 or float64 data, got ",
               dtype_name(dtype), "; use 'sum' for integers");
    if (count == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (size_ > 1) {
      gloo::AllreduceOptions o(ctx_);
      o.setTag(tag);
      switch (dtype) {
        case DType::Float32: run_allreduce(o, static_cast<float*>(data), count, reduce_fn<float>(op)); break;
        case DType::Float64: run_allreduce(o, static_cast<double*>(data), count, reduce_fn<double>(op)); break;
        case DType::Int32: run_allreduce(o, static_cast<int32_t*>(data), count, reduce_fn<int32_t>(op)); break;
        case DType::Int64: run_allreduce(o, static_cast<int64_t*>(data), count, reduce_fn<int64_t>(op)); break;
        default:
          DS_FAIL("gloo allReduce supports float32, float64, int32 and int64, got ", dtype_name(dtype),
                  "; convert 16-bit values to float32 first");
      }
    }
    if (op == ReduceOp::Avg) {
      if (dtype == DType::Float32) {
        float* p = static_cast<float*>(data);
        const float inv = 1.0f / float(size_);
        for (size_t i = 0; i < count; ++i) p[i] *= inv;
      } else {
        double* p = static_cast<double*>(data);
        for (size_t i = 0; i < count; ++i) p[i] /= double(size_);
      }
    }
  }

  void broadcast(void* data, size_t bytes, int root, uint32_t tag, bool device_ptr) override {
    DS_CHECK(!device_ptr, "the gloo backend works on CPU memory only");
    DS_CHECK(root >= 0 && root < size_, "broadcast root ", root, " is not a rank of this group of ", size_);
    if (size_ == 1 || bytes == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    guarded("broadcast", [&] {
      gloo::BroadcastOptions o(ctx_);
      o.setTag(tag);
      o.setRoot(root);
      o.setOutput(static_cast<uint8_t*>(data), bytes);
      gloo::broadcast(o);
    });
  }

  std::vector<std::vector<uint8_t>> all_gather_bytes(const std::vector<uint8_t>& in, uint32_t tag) override {
    if (size_ == 1) return {in};
    std::lock_guard<std::mutex> lock(mu_);
    // Lengths first (one int64 per rank), then the payloads. Each payload
    // carries one extra byte so no rank contributes an empty buffer.
    std::vector<int64_t> lens(size_);
    int64_t mine = int64_t(in.size()) + 1;
    guarded("allGather", [&] {
      gloo::AllgathervOptions o(ctx_);
      o.setTag(tag);
      o.setInput(&mine, 1);
      o.setOutput(lens.data(), std::vector<size_t>(size_, 1));
      gloo::allgatherv(o);
    });
    std::vector<size_t> counts(size_);
    size_t total = 0;
    for (int r = 0; r < size_; ++r) total += counts[r] = size_t(lens[r]);
    std::vector<uint8_t> send(in);
    send.push_back(0);
    std::vector<uint8_t> all(total);
    guarded("allGather", [&] {
      gloo::AllgathervOptions o(ctx_);
      o.setTag(tag);
      o.setInput(send.data(), send.size());
      o.setOutput(all.data(), counts);
      gloo::allgatherv(o);
    });
    std::vector<std::vector<uint8_t>> out(size_);
    size_t pos = 0;
    for (int r = 0; r < size_; ++r) {
      out[r].assign(all.begin() + pos, all.begin() + pos + counts[r] - 1);
      pos += counts[r];
    }
    return out;
  }

  void barrier(uint32_t tag) override {
    if (size_ == 1) return;
    std::lock_guard<std::mutex> lock(mu_);
    guarded("barrier", [&] {
      gloo::BarrierOptions o(ctx_);
      o.setTag(tag);
      gloo::barrier(o);
    });
  }

 private:
  template <class T>
  void run_allreduce(gloo::AllreduceOptions& o, T* p, size_t count, ReduceFn fn) {
    guarded("allReduce", [&] {
      o.setOutput(p, count);
      o.setReduceFunction(fn);
      gloo::allreduce(o);
    });
  }
  template <class F>
  void guarded(const char* op, F&& f) {
    try {
      f();
    } catch (const ds::Error&) {
      throw;
    } catch (const std::exception& e) {  // gloo::IoException, EnforceNotMet, system errors
      throw Error(collective_error(*this, op, e.what()));
    }
  }

  std::shared_ptr<gloo::Context> ctx_;
  int rank_, size_;
  std::mutex mu_;
};

}  // namespace

bool gloo_compiled() { return true; }

std::shared_ptr<Backend> make_gloo_backend(const GlooOptions& opts) {
  DS_CHECK(opts.size >= 1 && opts.rank >= 0 && opts.rank < opts.size, "gloo: rank ", opts.rank,
           " is not in [0, world size ", opts.size, ")");
  if (opts.size == 1) return make_single_process_backend();
  auto ctx = std::make_shared<gloo::rendezvous::Context>(opts.rank, opts.size);
  ctx->setTimeout(opts.timeout);
  gloo::transport::tcp::attr attr;
  if (!opts.iface.empty()) attr.iface = opts.iface;
  else attr.hostname = opts.hostname;
  std::shared_ptr<gloo::transport::Device> dev;
  try {
    dev = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    DS_FAIL("gloo: cannot create the TCP transport on ",
            opts.iface.empty() ? "host '" + (opts.hostname.empty() ? std::string("<own host name>") : opts.hostname) + "'"
                               : "interface '" + opts.iface + "'",
            " (", e.what(), "); set GLOO_SOCKET_IFNAME to the network interface to use");
  }
  auto client = std::make_shared<StoreClient>(opts.store_host, opts.store_port, std::chrono::milliseconds(30000));
  StoreAdapter store(client, opts.prefix, opts.timeout);
  try {
    ctx->connectFullMesh(store, dev);
  } catch (const ds::Error&) {
    throw;  // the store's own message (which key / rank is missing)
  } catch (const std::exception& e) {
    DS_FAIL("gloo: rank ", opts.rank, " of ", opts.size, " could not connect to its peers: ", e.what());
  }
  return std::make_shared<GlooBackend>(ctx, opts.rank, opts.size);
}

}  // namespace ds::dist

#else  // built without Gloo

namespace ds::dist {

bool gloo_compiled() { return false; }

std::shared_ptr<Backend> make_gloo_backend(const GlooOptions& opts) {
  if (opts.size == 1) return make_single_process_backend();
  DS_FAIL("detseg3d was built without Gloo, so multi-process CPU training (backend 'gloo') is unavailable. "
          "Install Gloo's development files (Debian/Ubuntu: `apt-get install libgloo-dev`) and rebuild "
          "(`npm run build`); `detseg3d info` then reports gloo: yes.");
}

}  // namespace ds::dist

#endif
