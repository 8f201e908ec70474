#include "dist/batchnorm_sync.h"

#include "core/error.h"

namespace ds::dist {
namespace {

class BackendSync : public nn::BatchNormSync {
 public:
  explicit BackendSync(std::shared_ptr<Backend> pg) : pg_(std::move(pg)) {
    DS_CHECK(pg_ != nullptr, "SyncBatchNorm: no process group");
  }
  int rank() const override { return pg_->rank(); }
  int world_size() const override { return pg_->size(); }
  void all_reduce_sum(double* data, size_t count) override {
    pg_->all_reduce(data, count, DType::Float64, ReduceOp::Sum, kSyncBatchNormTag);
    pg_->synchronize();  // NCCL: the host buffer is read right after
  }

 private:
  std::shared_ptr<Backend> pg_;
};

class ReducerSync : public nn::BatchNormSync {
 public:
  explicit ReducerSync(std::shared_ptr<Reducer> r) : r_(std::move(r)) {
    DS_CHECK(r_ != nullptr, "SyncBatchNorm: no gradient reducer");
  }
  int rank() const override { return r_->backend()->rank(); }
  int world_size() const override { return r_->backend()->size(); }
  void all_reduce_sum(double* data, size_t count) override {
    r_->run_ordered([data, count](Backend& pg) {
      pg.all_reduce(data, count, DType::Float64, ReduceOp::Sum, kSyncBatchNormTag);
      pg.synchronize();
    });
  }

 private:
  std::shared_ptr<Reducer> r_;
};

}  // namespace

std::shared_ptr<nn::BatchNormSync> make_batchnorm_sync(std::shared_ptr<Backend> pg) {
  return std::make_shared<BackendSync>(std::move(pg));
}

std::shared_ptr<nn::BatchNormSync> make_batchnorm_sync(std::shared_ptr<Reducer> reducer) {
  return std::make_shared<ReducerSync>(std::move(reducer));
}

}  // namespace ds::dist
