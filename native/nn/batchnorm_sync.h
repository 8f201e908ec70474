// The cross-process reduction SyncBatchNorm needs, as an abstract interface so
// that nn/ does not depend on dist/ (native/dist/batchnorm_sync.h implements
// it on a process group). All calls are collective: every rank makes the same
// calls in the same order with the same counts (the ranks run the same model
// in the same mode, so their BatchNorm layers call it in the same order).
#pragma once
#include <cstddef>
#include <memory>

namespace ds::nn {

class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In place, element-wise sum over the ranks of `count` float64 values in
  // host memory; every rank ends with the same values.
  virtual void all_reduce_sum(double* data, size_t count) = 0;
};

}  // namespace ds::nn
