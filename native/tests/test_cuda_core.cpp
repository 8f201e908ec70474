// Device support in the core: the caching allocator's bucketing and reuse
// policy (CPU, with a fake backend), clean errors without a GPU, and on a GPU
// the real allocator, copies (including the pinned staging path) and events.
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "core/caching_pool.h"
#include "core/cuda_allocator.h"
#include "core/cuda_runtime.h"
#include "core/device_copy.h"
#include "core/tensor.h"
#include "tests/harness.h"

using namespace ds;

namespace {

// Backend with a byte capacity that counts calls; memory is plain malloc.
class FakeBackend : public PoolBackend {
 public:
  explicit FakeBackend(size_t capacity) : capacity_(capacity) {}
  void* raw_alloc(size_t bytes) override {
    if (used_ + bytes > capacity_) return nullptr;
    used_ += bytes;
    ++allocs;
    return std::malloc(bytes);
  }
  void raw_free(void* p, size_t bytes) override {
    used_ -= bytes;
    ++frees;
    std::free(p);
  }
  size_t used() const { return used_; }
  int allocs = 0, frees = 0;

 private:
  size_t capacity_, used_ = 0;
};

bool throws_with(const std::function<void()>& f, const char* needle) {
  try {
    f();
  } catch (const Error& e) {
    return std::strstr(e.what(), needle) != nullptr;
  }
  return false;
}

}  // namespace

DS_TEST(caching_pool_round_size) {
  DS_EXPECT(CachingPool::round_size(0) == 512, "0 -> 512");
  DS_EXPECT(CachingPool::round_size(1) == 512, "1 -> 512");
  DS_EXPECT(CachingPool::round_size(513) == 1024, "513 -> 1024");
  DS_EXPECT(CachingPool::round_size(1 << 20) == (1u << 20), "1 MiB stays");
  // Above 1 MiB: quarters of the power of two: 1 MiB + 1 -> 1.25 MiB; 3 MiB + 1 -> 3.5 MiB.
  DS_EXPECT(CachingPool::round_size((1 << 20) + 1) == (5u << 18), "1 MiB + 1 -> 1.25 MiB");
  DS_EXPECT(CachingPool::round_size((3 << 20) + 1) == (7u << 19), "3 MiB + 1 -> 3.5 MiB, got ",
            CachingPool::round_size((3 << 20) + 1));
  std::mt19937_64 r(7);
  for (int i = 0; i < 20000; ++i) {
    const size_t b = size_t(r() % (size_t(1) << (r() % 36)));
    const size_t s = CachingPool::round_size(b);
    DS_EXPECT(s >= b && s >= 512, "bucket ", s, " < request ", b);
    DS_EXPECT(s <= b + b / 4 + 512, "bucket ", s, " wastes more than 25% of ", b);
    DS_EXPECT(CachingPool::round_size(s) == s, "bucket ", s, " is not a fixed point");
  }
}

DS_TEST(caching_pool_reuses_per_stream_and_bucket) {
  FakeBackend be(size_t(1) << 30);
  CachingPool pool(&be);
  void* a = pool.allocate(1000, 1);
  pool.deallocate(a);
  void* b = pool.allocate(900, 1);  // same 1024-byte bucket, same stream: reused
  DS_EXPECT(b == a && be.allocs == 1, "same bucket and stream reuse the block");
  void* c = pool.allocate(900, 2);  // other stream: a new block
  DS_EXPECT(c != a && be.allocs == 2, "another stream never gets the block");
  pool.deallocate(b);
  void* d = pool.allocate(2000, 1);  // other bucket
  DS_EXPECT(d != a && be.allocs == 3, "another bucket does not reuse");
  PoolStats s = pool.stats();
  DS_EXPECT(s.allocated_bytes == 1024 + 2048 && s.requested_bytes == 900 + 2000, "allocated ", s.allocated_bytes,
            " requested ", s.requested_bytes);
  DS_EXPECT(s.reserved_bytes == 1024 + 1024 + 2048 && s.cached_blocks == 1, "reserved ", s.reserved_bytes);
  DS_EXPECT(s.num_cache_hits == 1 && s.num_allocs == 4, "hits ", s.num_cache_hits, " allocs ", s.num_allocs);
  // Live bytes went 1024, 0, 1024, 2048, 1024, 3072.
  DS_EXPECT(s.peak_allocated_bytes == 3072, "peak ", s.peak_allocated_bytes);
  pool.empty_cache();
  s = pool.stats();
  DS_EXPECT(s.reserved_bytes == 1024 + 2048 && s.cached_blocks == 0 && be.frees == 1, "empty_cache frees the cached block");
  pool.deallocate(c);
  pool.deallocate(d);
  pool.deallocate(nullptr);
  s = pool.stats();
  DS_EXPECT(s.allocated_bytes == 0 && s.requested_bytes == 0, "everything returned");
  pool.reset_peak();
  DS_EXPECT(pool.stats().peak_allocated_bytes == 0, "reset_peak");
}

DS_TEST(caching_pool_flushes_cache_on_oom) {
  FakeBackend be(4096);
  CachingPool pool(&be);
  void* a = pool.allocate(2048, 0);
  pool.deallocate(a);                // cached: 2048 of 4096 bytes held
  void* b = pool.allocate(3000, 0);  // 3072 does not fit next to the cached block
  DS_EXPECT(b != nullptr, "the cache is flushed and the request retried");
  DS_EXPECT(pool.stats().num_oom_retries == 1 && be.frees == 1, "one flush");
  void* c = pool.allocate(8192, 0);
  DS_EXPECT(c == nullptr, "a request above the capacity fails");
  pool.deallocate(b);
  DS_EXPECT(pool.stats().allocated_bytes == 0, "nothing live");
}

DS_TEST(caching_pool_threads) {
  FakeBackend be(size_t(1) << 30);
  CachingPool pool(&be);
  auto work = [&](uintptr_t stream) {
    std::mt19937_64 r(stream);
    std::vector<void*> live;
    for (int i = 0; i < 2000; ++i) {
      if (live.size() < 8 && (r() & 1)) {
        live.push_back(pool.allocate(size_t(r() % 5000), stream));
      } else if (!live.empty()) {
        pool.deallocate(live.back());
        live.pop_back();
      }
    }
    for (void* p : live) pool.deallocate(p);
  };
  std::thread t1(work, 1), t2(work, 2);
  t1.join();
  t2.join();
  PoolStats s = pool.stats();
  DS_EXPECT(s.allocated_bytes == 0 && s.requested_bytes == 0, "balanced after concurrent use: ", s.allocated_bytes);
  DS_EXPECT(size_t(s.reserved_bytes) == be.used(), "reserved ", s.reserved_bytes, " vs backend ", be.used());
}

DS_TEST(device_names_and_no_gpu_errors) {
  DS_EXPECT(device_from_name("cpu") == Device::cpu(), "cpu");
  DS_EXPECT(device_from_name("cuda") == Device::cuda(0), "cuda");
  DS_EXPECT(device_from_name("cuda:3") == Device::cuda(3), "cuda:3");
  DS_EXPECT(throws_with([] { device_from_name("gpu0"); }, "unknown device"), "bad name");
  Tensor t = Tensor::full({3}, 1.5, DType::Float32);
  DS_EXPECT(to_device(t, Device::cpu()).raw() == t.raw(), "cpu -> cpu is a no-op");
  if (cuda::available()) DS_SKIP("a GPU is present: covered by cuda_core_on_gpu");
  // Without a GPU every CUDA request is a clean ds::Error naming the device.
  DS_EXPECT(throws_with([&] { to_device(t, Device::cuda(0)); }, "cuda:0"), "to_device(cuda:0) throws");
  DS_EXPECT(throws_with([] { Tensor::empty({4}, DType::Float32, Device::cuda(0)); }, "cuda:0"), "empty on cuda throws");
  DS_EXPECT(cuda::allocator_stats(0).num_allocs == 0, "no allocator was created");
  cuda::empty_cache();  // no-op
  DS_EXPECT(!cuda::unavailable_reason().empty(), "a reason is given");
}

DS_TEST(cuda_core_on_gpu) {
  if (!cuda::available()) DS_SKIP("no GPU (", cuda::unavailable_reason(), ")");
  const Device g = Device::cuda(0);
  std::mt19937_64 r(3);
  // Round trips: empty, tiny, exactly the staging threshold, odd multi-chunk sizes.
  const size_t thr = cuda::staging_threshold();
  for (size_t bytes : {size_t(0), size_t(1), size_t(1000), thr, thr + 3, size_t(9) * (1 << 20) + 7}) {
    Tensor h = Tensor::empty({int64_t(bytes)}, DType::UInt8);
    for (size_t i = 0; i < bytes; ++i) h.data<uint8_t>()[i] = uint8_t(r());
    Tensor d = h.to(g);
    DS_EXPECT(d.device() == g, "on the GPU");
    Tensor d2 = d.clone();  // device-to-device
    Tensor back = d2.to(Device::cpu());
    DS_EXPECT(bytes == 0 || std::memcmp(back.raw(), h.raw(), bytes) == 0, "round trip of ", bytes, " bytes");
  }
  // fill_, zero_, conversions.
  Tensor f = Tensor::empty({1001}, DType::Float32, g);
  f.fill_(2.5);
  Tensor fh = f.to(DType::Float16).to(Device::cpu());
  for (int i = 0; i < 1001; ++i) DS_EXPECT(half_to_float(fh.data_u16()[i]) == 2.5f, "fill + cast at ", i);
  f.zero_();
  Tensor fz = f.to(Device::cpu());
  for (int i = 0; i < 1001; ++i) DS_EXPECT(fz.data<float>()[i] == 0.f, "zero_ at ", i);
  // Caching: the same size again comes from the cache, without cudaMalloc.
  cuda::empty_cache(0);
  { Tensor a = Tensor::empty({1 << 18}, DType::Float32, g); }
  PoolStats s0 = cuda::allocator_stats(0);
  { Tensor b = Tensor::empty({1 << 18}, DType::Float32, g); }
  PoolStats s1 = cuda::allocator_stats(0);
  DS_EXPECT(s1.num_raw_allocs == s0.num_raw_allocs && s1.num_cache_hits == s0.num_cache_hits + 1,
            "cached block reused (raw allocs ", s0.num_raw_allocs, " -> ", s1.num_raw_allocs, ")");
  cuda::empty_cache(0);
  DS_EXPECT(cuda::allocator_stats(0).reserved_bytes == cuda::allocator_stats(0).allocated_bytes, "empty_cache");
  // Out of memory: a ds::Error with the size and the allocator's statistics; the device stays usable.
  DS_EXPECT(throws_with([&] { Tensor::empty({int64_t(1) << 48}, DType::Float32, g); }, "out of memory"),
            "OOM is a ds::Error");
  DS_EXPECT(throws_with([&] { Tensor::empty({int64_t(1) << 48}, DType::Float32, g); }, "reserved"),
            "OOM message carries the statistics");
  Tensor ok = Tensor::full({16}, 1.0, DType::Float64, g);
  DS_EXPECT(ok.to(Device::cpu()).data<double>()[15] == 1.0, "usable after OOM");
  // Events time work on the compute stream.
  cuda::Event e0(0), e1(0);
  e0.record();
  Tensor big = Tensor::zeros({1 << 22}, DType::Float32, g);
  e1.record();
  e1.synchronize();
  DS_EXPECT(e1.query() && e1.elapsed_ms(e0) >= 0.f, "event timing");
}
