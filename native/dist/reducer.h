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
// run_ordered() runs another collective (SyncBatchNorm's) on the same
// communication thread, queued behind the buckets launched so far: since
// backward launches buckets and calls run_ordered at the same points of its
// program on every rank, every rank issues the collectives in one order (two
// threads issuing collectives on one backend could interleave differently on
// different ranks and deadlock).
//
// Each bucket owns one flat buffer; bucket_views() returns, per gradient, a
// view into it. A trainer that accumulates gradients directly into those
// views (use_views_as_gradients) avoids the copy in and out; other tensors
// are copied in at mark_ready and the reduced values copied back.
//
// Device buckets (ReducerOptions::device = cuda:i, backend NCCL): the flat
// buffers are device memory (allocated once, from the caching allocator,
// members aligned to 256 bytes: bucket_plan.h). mark_ready copies the
// gradient into its slot on the compute stream (cudaMemcpyAsync); when a
// bucket is complete an event is recorded on the compute stream, and the
// communication thread enqueues its all-reduce on the NCCL stream behind that
// event (Backend::all_reduce_device), so communication overlaps the rest of
// backward and the host never waits. wait() waits (on the host) only until
// every bucket's collective is *enqueued*, then makes the compute stream wait
// for each bucket's completion event (no host synchronisation) and, unless
// the views are the gradients, copies the results back on the compute stream.
// run_ordered tasks (SyncBatchNorm, host buffers) go through the same queue
// and the backend stages them on the same NCCL stream, behind the buckets
// already launched.
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "dist/backend.h"
#include "dist/bucket_plan.h"

namespace ds::dist {

struct ReducerOptions {
  size_t bucket_bytes = size_t(25) << 20;
  bool average = true;  // divide the sum by the world size (DDP semantics)
  // Where the buckets live: the CPU (any backend: NCCL stages host memory) or
  // a CUDA device (backend with device_collectives(), i.e. NCCL, on that device).
  Device device = Device::cpu();
  // The bucket views are the gradients from the start (as use_views_as_gradients());
  // the registered tensors then only give shapes and dtypes and may live anywhere.
  bool in_place = false;
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
  bool on_device() const { return !opts_.device.is_cpu(); }
  Device device() const { return opts_.device; }
  // Progress of the current step (tests, diagnostics): buckets handed to the
  // communication thread, and buckets whose collective it has issued.
  int buckets_launched();
  int buckets_issued();
  void wait();
  // Runs fn(backend) on the communication thread after every collective
  // queued before it; blocks until it returns and rethrows its exception (the
  // reducer then stays failed: the ranks are out of step). Throws at once if
  // the reducer has already failed.
  void run_ordered(const std::function<void(Backend&)>& fn);
  const std::shared_ptr<Backend>& backend() const { return pg_; }
  const std::vector<std::vector<int>>& buckets() const { return members_; }
  std::vector<Tensor> bucket_views() const;
  size_t num_grads() const { return grads_.size(); }

 private:
  struct Bucket {
    Tensor flat;
    int pending = 0;
  };
  void copy_in(int index, const Tensor& g);
  void copy_slot(const Tensor& dst, const Tensor& src) const;
  struct Task {
    const std::function<void(Backend&)>* fn;
    bool done = false;
    std::exception_ptr error;
  };
  struct Item {
    int bucket;  // -1: task
    Task* task;
  };
  void comm_loop();
  void launch_ready_locked();
  void run_task(Task& t);

  std::shared_ptr<Backend> pg_;
  std::vector<Tensor> grads_;
  ReducerOptions opts_;
  std::vector<Bucket> buckets_;
  std::vector<std::vector<int>> members_;
  std::vector<int> bucket_of_;  // per gradient
  std::vector<Tensor> views_;
  std::vector<char> marked_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  int next_launch_ = 0, done_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace ds::dist
