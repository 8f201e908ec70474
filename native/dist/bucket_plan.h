// How the gradient reducer groups gradients into flat buckets (pure layout
// logic, shared by the CPU and the device buckets and tested on its own).
//   * Reverse registration order: backward produces the last layers'
//     gradients first, so bucket 0 is complete first.
//   * A new bucket starts when the current one holds >= bucket_bytes or the
//     dtype changes (a bucket is one collective of one dtype).
//   * Each member starts at a multiple of `align` elements within its bucket.
//     CPU buckets use 1 (packed); device buckets 64 (256 bytes for float32),
//     so that every gradient view handed to the optimizer's kernels and to
//     NCCL is as aligned as a fresh allocation. The padding is zero and stays
//     zero (a sum or average of zeros).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace ds::dist {

struct GradSpec {
  int64_t numel = 0;
  DType dtype = DType::Float32;
};

struct BucketPlan {
  std::vector<std::vector<int>> members;       // gradient indices per bucket, in launch order
  std::vector<std::vector<int64_t>> offsets;   // element offset of each member in its bucket
  std::vector<int64_t> numel;                  // elements per bucket (padding included, >= 1)
  std::vector<int> bucket_of, slot_of;         // per gradient: its bucket and position in it
};

BucketPlan plan_buckets(const std::vector<GradSpec>& grads, size_t bucket_bytes, int64_t align);

// Elements to align device bucket members to (see above).
constexpr int64_t kDeviceBucketAlign = 64;

}  // namespace ds::dist
