// Bucketed gradient all-reduce (the DistributedDataParallel recipe).
//
// Gradients are grouped into buckets of about `bucket_bytes` (25 MB by
// default) in reverse parameter order, because backward produces the last
// layers' gradients first. During backward the trainer calls
// mark_ready(i) as soon as gradient i is final; when every gradient of a
// bucket is ready the bucket is all-reduced on a background communication
// thread while backward continues computing the earlier layers' gradients.
// Buckets are launched strictly in bucket order, so every rank issues the
// same collectives in the same order whatever order its gradients arrive in.
// wait() blocks until all buckets are reduced (averaged by default) and the
// results are back in the gradient tensors, then re-arms for the next step.
//
// Each bucket owns one flat buffer; bucket_views() returns, per gradient, a
// view into it. A trainer that accumulates gradients directly into those
// views (use_views_as_gradients) avoids the copy in and out; other tensors
// are copied in at mark_ready and the reduced values copied back.
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "dist/backend.h"

namespace ds::dist {

struct ReducerOptions {
  size_t bucket_bytes = size_t(25) << 20;
  bool average = true;  // divide the sum by the world size (DDP semantics)
};

class Reducer {
 public:
  Reducer(std::shared_ptr<Backend> pg, std::vector<Tensor> grads, ReducerOptions opts = {});
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Gradient `index` is final for this step. With `value`, that tensor (same
  // shape and dtype) is this step's gradient instead of the registered one.
  void mark_ready(int index, const Tensor* value = nullptr);
  // Makes the bucket views the registered gradients: no copies in or out.
  void use_views_as_gradients() { grads_ = views_; }
  void wait();
  const std::vector<std::vector<int>>& buckets() const { return members_; }
  std::vector<Tensor> bucket_views() const;
  size_t num_grads() const { return grads_.size(); }

 private:
  struct Bucket {
    Tensor flat;
    std::vector<int64_t> offsets;  // element offset of each member in flat
    int pending = 0;
  };
  void comm_loop();
  void launch_ready_locked();

  std::shared_ptr<Backend> pg_;
  std::vector<Tensor> grads_;
  ReducerOptions opts_;
  std::vector<Bucket> buckets_;
  std::vector<std::vector<int>> members_;
  std::vector<int> bucket_of_, slot_of_;  // per gradient
  std::vector<Tensor> views_;
  std::vector<char> marked_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> queue_;
  int next_launch_ = 0, done_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace ds::dist
