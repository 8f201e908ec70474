#include "dist/reducer.h"

#include <cstring>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace ds::dist {

Reducer::Reducer(std::shared_ptr<Backend> pg, std::vector<Tensor> grads, ReducerOptions opts)
    : pg_(std::move(pg)), grads_(std::move(grads)), opts_(opts) {
  DS_CHECK(pg_ != nullptr, "reducer: no process group");
  DS_CHECK(!grads_.empty(), "reducer: the list of gradient tensors is empty");
  DS_CHECK(opts_.bucket_bytes > 0, "reducer: bucket size must be positive");
  const Device dev = opts_.device;
  if (!dev.is_cpu()) {
    DS_CHECK(pg_->device_collectives(), "reducer: gradients on ", dev.str(), " need a process group that reduces GPU "
             "memory (backend 'nccl'); this one is '", pg_->name(), "'. Use --device cuda (which chooses nccl) or keep "
             "the model on the CPU with backend 'gloo'");
    DS_CHECK(pg_->device_index() == dev.index, "reducer: the gradients are on ", dev.str(),
             " but the nccl process group uses cuda:", pg_->device_index(),
             "; each process must train on its LOCAL_RANK's GPU");
  }
  const int n = int(grads_.size());
  std::vector<GradSpec> specs(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    DS_CHECK(grads_[i].defined(), "reducer: gradient ", i, " is undefined");
    if (!opts_.in_place)
      DS_CHECK(grads_[i].device() == dev, "reducer: gradient ", i, " is on ", grads_[i].device().str(),
               " but the buckets are on ", dev.str(), "; register gradients on the buckets' device (or use in-place "
               "views)");
    if (opts_.average)
      DS_CHECK(grads_[i].dtype() == DType::Float32 || grads_[i].dtype() == DType::Float64, "reducer: gradient ", i,
               " is ", dtype_name(grads_[i].dtype()), "; averaging needs float32 or float64 gradients");
    specs[size_t(i)] = {grads_[i].numel(), grads_[i].dtype()};
  }
  BucketPlan plan = plan_buckets(specs, opts_.bucket_bytes, dev.is_cpu() ? 1 : kDeviceBucketAlign);
  views_.resize(size_t(n));
  for (size_t b = 0; b < plan.members.size(); ++b) {
    Bucket bk;
    // Zeros: the padding between device members must not carry garbage into the sum.
    bk.flat = Tensor::zeros({plan.numel[b]}, grads_[size_t(plan.members[b].front())].dtype(), dev);
    for (size_t s = 0; s < plan.members[b].size(); ++s) {
      const int i = plan.members[b][s];
      const int64_t off = plan.offsets[b][s];
      views_[size_t(i)] = bk.flat.slice0(off, off + grads_[size_t(i)].numel()).reshape(grads_[size_t(i)].shape());
    }
    bk.pending = int(plan.members[b].size());
    buckets_.push_back(std::move(bk));
  }
  bucket_of_ = std::move(plan.bucket_of);
  members_ = std::move(plan.members);
  marked_.assign(size_t(n), 0);
  if (opts_.in_place) grads_ = views_;
  thread_ = std::thread([this] { comm_loop(); });
}

Reducer::~Reducer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (on_device()) {
    // The buckets return to the caching allocator for the compute stream: make
    // that stream wait for any collective still in flight on them first
    // (stream-ordered, the host does not block; a no-op for idle buckets).
    for (size_t b = 0; b < buckets_.size(); ++b) try {
        pg_->device_wait(int(b));
      } catch (...) {
      }
  }
}

std::vector<Tensor> Reducer::bucket_views() const { return views_; }

void Reducer::mark_ready(int index, const Tensor* value) {
  DS_CHECK(index >= 0 && index < int(grads_.size()), "reducer.markReady: index ", index, " is not in [0, ",
           grads_.size(), ")");
  std::unique_lock<std::mutex> lock(mu_);
  if (error_) std::rethrow_exception(error_);
  DS_CHECK(!marked_[index], "reducer.markReady: gradient ", index,
           " was marked ready twice in one step; call wait() once per step after all gradients are marked");
  const Tensor& g = value ? *value : grads_[index];
  if (value) {
    const Tensor& v = views_[index];
    DS_CHECK(value->dtype() == v.dtype() && value->numel() == v.numel(), "reducer.markReady: gradient ", index,
             " must be ", v.describe(), ", got ", value->describe());
  }
  copy_in(index, g);
  marked_[index] = 1;
  const int b = bucket_of_[index];
  if (--buckets_[b].pending == 0) {
    // Device: the bucket's data is complete once the copies queued so far have run.
    if (on_device()) pg_->device_ready(b);
    launch_ready_locked();
  }
}

// The gradient into its bucket slot (see copy_slot).
void Reducer::copy_in(int index, const Tensor& g) {
  const Tensor& v = views_[index];
  DS_CHECK(g.device() == v.device(), "reducer.markReady: gradient ", index, " is on ", g.device().str(),
           " but its bucket is on ", v.device().str());
  copy_slot(v, g);
}

// dst <- src (same byte size, both on the buckets' device); nothing when they
// alias (in-place views). A host copy, or an asynchronous copy on the
// device's compute stream, ordered after the kernels that produced src.
void Reducer::copy_slot(const Tensor& dst, const Tensor& src) const {
  if (dst.raw() == src.raw()) return;
  if (on_device())
    cuda::copy_d2d(dst.raw(), src.raw(), dst.nbytes(), opts_.device.index);
  else
    std::memcpy(dst.raw(), src.raw(), dst.nbytes());
}

int Reducer::buckets_launched() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_launch_;
}

int Reducer::buckets_issued() {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

// Queues every consecutive complete bucket starting at next_launch_.
void Reducer::launch_ready_locked() {
  bool any = false;
  while (next_launch_ < int(buckets_.size()) && buckets_[next_launch_].pending == 0) {
    queue_.push_back({next_launch_++, nullptr});
    any = true;
  }
  if (any) cv_.notify_all();
}

void Reducer::comm_loop() {
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      item = queue_.front();
      queue_.pop_front();
    }
    if (item.task) {
      run_task(*item.task);
      continue;
    }
    const int b = item.bucket;
    Bucket& bk = buckets_[b];
    bool failed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      failed = error_ != nullptr;  // after a failure the ranks are out of step: do not wait on peers again
    }
    const ReduceOp op = opts_.average ? ReduceOp::Avg : ReduceOp::Sum;
    if (!failed) try {
      if (on_device()) {
        // Enqueued behind the bucket's ready event; completes asynchronously (wait()).
        pg_->all_reduce_device(b, bk.flat.raw(), size_t(bk.flat.numel()), bk.flat.dtype(), op);
      } else {
        // Tags keep the reducer's collectives apart from the user's (Gloo).
        // The host copies back per bucket, here; device copies back in wait().
        pg_->all_reduce(bk.flat.raw(), size_t(bk.flat.numel()), bk.flat.dtype(), op, 0x100000u + uint32_t(b));
        for (int i : members_[b]) copy_slot(grads_[i], views_[i]);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++done_;
    }
    cv_.notify_all();
  }
}

void Reducer::run_task(Task& t) {
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lock(mu_);
    err = error_;  // after a failure the ranks are out of step: do not wait on peers again
  }
  if (!err) try {
      (*t.fn)(*pg_);
    } catch (...) {
      err = std::current_exception();
    }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (err && !error_) error_ = err;
    t.error = err;
    t.done = true;
  }
  cv_.notify_all();
}

void Reducer::run_ordered(const std::function<void(Backend&)>& fn) {
  Task t{&fn, false, nullptr};
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (error_) std::rethrow_exception(error_);
    queue_.push_back({-1, &t});
    cv_.notify_all();
    cv_.wait(lock, [&t] { return t.done; });
  }
  if (t.error) std::rethrow_exception(t.error);
}

void Reducer::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!error_) {
    std::vector<int> missing;
    for (size_t i = 0; i < marked_.size(); ++i)
      if (!marked_[i]) missing.push_back(int(i));
    if (!missing.empty()) {
      std::string list;
      for (size_t k = 0; k < missing.size() && k < 10; ++k) list += (k ? ", " : "") + std::to_string(missing[k]);
      if (missing.size() > 10) list += ", ...";
      DS_FAIL("reducer.wait: ", missing.size(), " gradient(s) were never marked ready this step (indices ", list,
              "). Every gradient must be marked each step, also those of parameters unused by this batch "
              "(mark them after zeroing their gradients), or the ranks fall out of step");
    }
  }
  cv_.wait(lock, [this] { return done_ == next_launch_ && queue_.empty(); });
  std::exception_ptr err = error_;
  lock.unlock();
  if (!err) {
    try {
      if (on_device()) {
        // The compute stream waits for every bucket's collective: no host synchronisation.
        for (size_t b = 0; b < buckets_.size(); ++b) pg_->device_wait(int(b));
        for (size_t i = 0; i < grads_.size(); ++i) copy_slot(grads_[i], views_[i]);
      } else {
        pg_->synchronize();
      }
    } catch (...) {
      err = std::current_exception();
    }
  }
  lock.lock();
  if (err) {
    error_ = err;  // the reducer stays failed: the ranks are out of step
    std::rethrow_exception(err);
  }
  // Re-arm for the next step.
  for (size_t b = 0; b < buckets_.size(); ++b) buckets_[b].pending = int(members_[b].size());
  std::fill(marked_.begin(), marked_.end(), 0);
  next_launch_ = 0;
  done_ = 0;
}

}  // namespace ds::dist
