#include "dist/bucket_plan.h"

#include <algorithm>

#include "core/error.h"

namespace ds::dist {

BucketPlan plan_buckets(const std::vector<GradSpec>& grads, size_t bucket_bytes, int64_t align) {
  DS_CHECK(bucket_bytes > 0, "reducer: bucket size must be positive");
  DS_CHECK(align >= 1, "reducer: bucket alignment must be >= 1 element, got ", align);
  const int n = int(grads.size());
  BucketPlan p;
  p.bucket_of.assign(size_t(n), -1);
  p.slot_of.assign(size_t(n), -1);
  size_t cur_bytes = 0;
  for (int i = n - 1; i >= 0; --i) {
    DS_CHECK(grads[size_t(i)].numel >= 0, "reducer: gradient ", i, " has a negative size");
    const bool fresh = p.members.empty() || cur_bytes >= bucket_bytes ||
                       grads[size_t(p.members.back().front())].dtype != grads[size_t(i)].dtype;
    if (fresh) {
      p.members.emplace_back();
      p.offsets.emplace_back();
      p.numel.push_back(0);
      cur_bytes = 0;
    }
    const int b = int(p.members.size()) - 1;
    int64_t& total = p.numel.back();
    const int64_t off = (total + align - 1) / align * align;
    p.bucket_of[size_t(i)] = b;
    p.slot_of[size_t(i)] = int(p.members.back().size());
    p.members.back().push_back(i);
    p.offsets.back().push_back(off);
    total = off + grads[size_t(i)].numel;
    cur_bytes += size_t(grads[size_t(i)].numel) * dtype_size(grads[size_t(i)].dtype);
  }
  for (auto& t : p.numel) t = std::max<int64_t>(t, 1);
  return p;
}

}  // namespace ds::dist
