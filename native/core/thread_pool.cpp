#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

namespace ds {
namespace {

thread_local bool t_in_parallel = false;

int default_threads() {
  if (const char* e = std::getenv("DETSEG3D_NUM_THREADS")) {
    int n = std::atoi(e);
    if (n > 0) return std::min(n, 1024);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? int(hc) : 1;
}

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop_workers(); }

  int size() const { return size_; }

  void resize(int n) {
    std::lock_guard<std::mutex> submit(submit_mu_);
    stop_workers();
    size_ = std::max(1, n);
    stopping_ = false;
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  }

  // Runs fn(tid, n) for tid in [0, n) with n <= size(); tid 0 is the caller.
  void run(int n, const std::function<void(int, int)>& fn) {
    n = std::max(1, std::min(n, size_));
    if (n == 1) {
      run_one(fn, 0, 1);
      rethrow();
      return;
    }
    std::lock_guard<std::mutex> submit(submit_mu_);  // one parallel job at a time
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      job_threads_ = n;
      pending_ = n - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    run_one(fn, 0, n);
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    job_ = nullptr;
    lk.unlock();
    rethrow();
  }

 private:
  void run_one(const std::function<void(int, int)>& fn, int tid, int n) {
    bool prev = t_in_parallel;
    t_in_parallel = true;
    try {
      fn(tid, n);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_parallel = prev;
  }

  void rethrow() {
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> lk(err_mu_);
      e = error_;
      error_ = nullptr;
    }
    if (e) std::rethrow_exception(e);
  }

  void worker_loop(int tid) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int, int)>* job;
      int n;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || (generation_ != seen && job_ != nullptr); });
        if (stopping_) return;
        seen = generation_;
        job = job_;
        n = job_threads_;
      }
      if (tid < n) {
        run_one(*job, tid, n);
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) done_cv_.notify_all();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex submit_mu_, mu_, err_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process
  // exit (or addon unload) can deadlock.
  static Pool* p = new Pool(default_threads());
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  DS_CHECK(n >= 1 && n <= 1024, "number of threads must be between 1 and 1024, got ", n);
  DS_CHECK(!t_in_parallel, "set_num_threads cannot be called inside a parallel region");
  pool().resize(n);
}

bool in_parallel_region() { return t_in_parallel; }

void parallel_run(int nthreads, const std::function<void(int, int)>& fn) {
  if (t_in_parallel || nthreads <= 1) {
    fn(0, 1);
    return;
  }
  pool().run(nthreads, fn);
}

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n = end - begin;
  const int64_t chunks = (n + grain - 1) / grain;
  const int nt = int(std::min<int64_t>(chunks, num_threads()));
  if (t_in_parallel || nt <= 1) {
    fn(begin, end);
    return;
  }
  // Dynamic scheduling over chunks of about n / (4 * nt) items (at least grain)
  // balances uneven work without much overhead.
  const int64_t step = std::max(grain, (n + 4 * nt - 1) / (4 * nt));
  std::atomic<int64_t> next{begin};
  pool().run(nt, [&](int, int) {
    for (;;) {
      int64_t b = next.fetch_add(step);
      if (b >= end) break;
      fn(b, std::min(end, b + step));
    }
  });
}

}  // namespace ds
