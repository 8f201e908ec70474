#include "dist/reducer.h"

#include <cstring>

#include "core/error.h"

namespace ds::dist {

Reducer::Reducer(std::shared_ptr<Backend> pg, std::vector<Tensor> grads, ReducerOptions opts)
    : pg_(std::move(pg)), grads_(std::move(grads)), opts_(opts) {
  DS_CHECK(pg_ != nullptr, "reducer: no process group");
  DS_CHECK(!grads_.empty(), "reducer: the list of gradient tensors is empty");
  DS_CHECK(opts_.bucket_bytes > 0, "reducer: bucket size must be positive");
  const int n = int(grads_.size());
  bucket_of_.assign(n, -1);
  slot_of_.assign(n, -1);
  for (int i = 0; i < n; ++i) {
    DS_CHECK(grads_[i].defined(), "reducer: gradient ", i, " is undefined");
    check_cpu(grads_[i], "reducer gradient");
    if (opts_.average)
      DS_CHECK(grads_[i].dtype() == DType::Float32 || grads_[i].dtype() == DType::Float64, "reducer: gradient ", i,
               " is ", dtype_name(grads_[i].dtype()), "; averaging needs float32 or float64 gradients");
  }
  // Reverse order; a new bucket when the dtype changes or the current one is full.
  std::vector<std::vector<int>> groups;
  size_t cur_bytes = 0;
  for (int i = n - 1; i >= 0; --i) {
    bool fresh = groups.empty() || cur_bytes >= opts_.bucket_bytes ||
                 grads_[groups.back().front()].dtype() != grads_[i].dtype();
    if (fresh) {
      groups.emplace_back();
      cur_bytes = 0;
    }
    groups.back().push_back(i);
    cur_bytes += grads_[i].nbytes();
  }
  views_.resize(n);
  for (size_t b = 0; b < groups.size(); ++b) {
    Bucket bk;
    int64_t total = 0;
    for (int i : groups[b]) {
      bk.offsets.push_back(total);
      total += grads_[i].numel();
    }
    bk.flat = Tensor::zeros({std::max<int64_t>(total, 1)}, grads_[groups[b].front()].dtype());
    for (size_t s = 0; s < groups[b].size(); ++s) {
      int i = groups[b][s];
      bucket_of_[i] = int(b);
      slot_of_[i] = int(s);
      int64_t off = bk.offsets[s];
      views_[i] = bk.flat.slice0(off, off + grads_[i].numel()).reshape(grads_[i].shape());
    }
    bk.pending = int(groups[b].size());
    buckets_.push_back(std::move(bk));
  }
  members_ = std::move(groups);
  marked_.assign(n, 0);
  thread_ = std::thread([this] { comm_loop(); });
}

Reducer::~Reducer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
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
  const Tensor& v = views_[index];
  if (value) {
    check_cpu(*value, "reducer gradient");
    DS_CHECK(value->dtype() == v.dtype() && value->numel() == v.numel(), "reducer.markReady: gradient ", index,
             " must be ", v.describe(), ", got ", value->describe());
  }
  if (g.raw() != v.raw()) std::memcpy(v.raw(), g.raw(), v.nbytes());
  marked_[index] = 1;
  if (--buckets_[bucket_of_[index]].pending == 0) launch_ready_locked();
}

// Queues every consecutive complete bucket starting at next_launch_.
void Reducer::launch_ready_locked() {
  bool any = false;
  while (next_launch_ < int(buckets_.size()) && buckets_[next_launch_].pending == 0) {
    queue_.push_back(next_launch_++);
    any = true;
  }
  if (any) cv_.notify_all();
}

void Reducer::comm_loop() {
  for (;;) {
    int b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      b = queue_.front();
      queue_.pop_front();
    }
    Bucket& bk = buckets_[b];
    bool failed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      failed = error_ != nullptr;  // after a failure the ranks are out of step: do not wait on peers again
    }
    if (!failed) try {
      // Tags keep the reducer's collectives apart from the user's (Gloo).
      pg_->all_reduce(bk.flat.raw(), size_t(bk.flat.numel()), bk.flat.dtype(),
                      opts_.average ? ReduceOp::Avg : ReduceOp::Sum, 0x100000u + uint32_t(b));
      for (int i : members_[b]) {
        const Tensor& g = grads_[i];
        if (g.raw() != views_[i].raw()) std::memcpy(g.raw(), views_[i].raw(), g.nbytes());
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
      pg_->synchronize();
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
