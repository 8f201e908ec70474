#include "core/caching_pool.h"

#include <algorithm>

namespace ds {

size_t CachingPool::round_size(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  if (bytes <= kSmallLimit) return (bytes + kMinBlock - 1) / kMinBlock * kMinBlock;
  // 4 buckets per power of two: step = 2^(floor(log2(bytes)) - 2).
  int lg = 63;
  while (!(bytes >> lg)) --lg;
  const size_t step = size_t(1) << (lg - 2);
  return (bytes + step - 1) / step * step;
}

CachingPool::~CachingPool() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

void* CachingPool::allocate(size_t bytes, uintptr_t stream) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.find({stream, size});
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) free_.erase(it);
    --st_.cached_blocks;
    ++st_.num_cache_hits;
  } else {
    p = backend_->raw_alloc(size);
    if (!p) {
      // Out of memory: give the cache back and try once more.
      ++st_.num_oom_retries;
      release_cached_locked();
      p = backend_->raw_alloc(size);
      if (!p) return nullptr;
    }
    ++st_.num_raw_allocs;
    st_.reserved_bytes += int64_t(size);
    st_.peak_reserved_bytes = std::max(st_.peak_reserved_bytes, st_.reserved_bytes);
  }
  live_[p] = Block{size, bytes, stream};
  st_.allocated_bytes += int64_t(size);
  st_.requested_bytes += int64_t(bytes);
  st_.peak_allocated_bytes = std::max(st_.peak_allocated_bytes, st_.allocated_bytes);
  ++st_.num_allocs;
  return p;
}

void CachingPool::deallocate(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;  // not ours (or double free): ignore rather than corrupt the lists
  const Block b = it->second;
  live_.erase(it);
  st_.allocated_bytes -= int64_t(b.size);
  st_.requested_bytes -= int64_t(b.requested);
  free_[{b.stream, b.size}].push_back(p);
  ++st_.cached_blocks;
}

void CachingPool::release_cached_locked() {
  for (auto& kv : free_) {
    for (void* p : kv.second) {
      backend_->raw_free(p, kv.first.second);
      st_.reserved_bytes -= int64_t(kv.first.second);
      ++st_.num_raw_frees;
    }
  }
  free_.clear();
  st_.cached_blocks = 0;
}

void CachingPool::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

PoolStats CachingPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return st_;
}

void CachingPool::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  st_.peak_allocated_bytes = st_.allocated_bytes;
  st_.peak_reserved_bytes = st_.reserved_bytes;
}

size_t CachingPool::block_size(void* p) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  return it == live_.end() ? 0 : it->second.size;
}

}  // namespace ds
