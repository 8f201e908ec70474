// CPU thread pool. One pool per process; its size comes from the environment
// variable DETSEG3D_NUM_THREADS (default: the hardware concurrency) and can
// be changed with set_num_threads(). The calling thread takes part in the
// work. A parallel_for issued from inside a parallel region runs serially, so
// nested parallelism never oversubscribes the cores.
#pragma once
#include <cstdint>
#include <functional>

namespace ds {

int num_threads();
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint sub-ranges covering [begin, end). Each
// sub-range holds at least `grain` items (except possibly the last).
void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Runs fn(tid, nthreads) once on each of nthreads threads (nthreads <= num_threads()),
// for algorithms that want per-thread buffers.
void parallel_run(int nthreads, const std::function<void(int, int)>& fn);

// True while the calling thread executes inside parallel_for / parallel_run.
bool in_parallel_region();

}  // namespace ds
