// The bookkeeping of a caching allocator, independent of CUDA so that it is
// unit-tested on any machine (tests/test_caching_pool.cpp drives it with a
// fake backend). The CUDA allocator (cuda_allocator.cu) plugs cudaMalloc /
// cudaFree in as the backend.
//
// Policy:
//   * sizes are rounded up to a bucket (round_size): multiples of 512 bytes up
//     to 1 MiB, above that 4 buckets per power of two (waste < 25 %);
//   * a freed block goes to the free list of (stream, bucket) and is handed out
//     again only for the same bucket on the same stream: work on one stream is
//     ordered, so the next user cannot run before the previous one finished;
//   * when the backend fails, every cached block is released and the request is
//     retried once; if it still fails allocate() returns nullptr and the caller
//     reports out-of-memory with stats().
// Thread-safe (one mutex).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ds {

class PoolBackend {
 public:
  virtual ~PoolBackend() = default;
  // Returns nullptr when out of memory (other failures may throw).
  virtual void* raw_alloc(size_t bytes) = 0;
  virtual void raw_free(void* p, size_t bytes) = 0;
};

struct PoolStats {
  int64_t allocated_bytes = 0;   // bucket bytes held by live blocks
  int64_t requested_bytes = 0;   // bytes the live blocks were asked for
  int64_t reserved_bytes = 0;    // bytes obtained from the backend (live + cached)
  int64_t peak_allocated_bytes = 0;
  int64_t peak_reserved_bytes = 0;
  int64_t num_allocs = 0;        // allocate() calls that succeeded
  int64_t num_raw_allocs = 0;    // backend allocations
  int64_t num_raw_frees = 0;     // backend frees
  int64_t num_cache_hits = 0;    // allocations served from a free list
  int64_t num_oom_retries = 0;   // cache flushes forced by a failed backend allocation
  int64_t cached_blocks = 0;     // blocks sitting in free lists
};

class CachingPool {
 public:
  explicit CachingPool(PoolBackend* backend) : backend_(backend) {}
  ~CachingPool();  // releases cached blocks (live blocks are the owners' problem)
  CachingPool(const CachingPool&) = delete;
  CachingPool& operator=(const CachingPool&) = delete;

  static constexpr size_t kMinBlock = 512;
  static constexpr size_t kSmallLimit = size_t(1) << 20;
  static size_t round_size(size_t bytes);

  // nullptr when the backend cannot provide the memory even after the cache was flushed.
  void* allocate(size_t bytes, uintptr_t stream);
  // p must come from allocate() and not be freed yet; nullptr is ignored.
  void deallocate(void* p);
  // Returns every cached (free) block to the backend.
  void empty_cache();
  PoolStats stats() const;
  void reset_peak();
  // Bucket size of a live block (0 when p is not live).
  size_t block_size(void* p) const;

 private:
  struct Block {
    size_t size;       // bucket size
    size_t requested;
    uintptr_t stream;
  };
  void release_cached_locked();

  PoolBackend* backend_;
  mutable std::mutex mu_;
  std::unordered_map<void*, Block> live_;
  std::map<std::pair<uintptr_t, size_t>, std::vector<void*>> free_;
  PoolStats st_;
};

}  // namespace ds
