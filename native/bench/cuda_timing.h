// Timing of GPU work for the CUDA benchmarks: the median of CUDA-event times.
#pragma once
#include <algorithm>
#include <functional>
#include <vector>

#include "core/cuda_runtime.h"

namespace ds::bench {

// Median milliseconds of fn on device `dev` over `reps` runs, after `warmup`
// untimed runs (which also let autotuners settle).
inline double cuda_median_ms(const std::function<void()>& fn, int reps, int warmup = 1, int dev = 0) {
  for (int i = 0; i < warmup; ++i) fn();
  cuda::synchronize(dev);
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    cuda::Event a(dev), b(dev);
    a.record();
    fn();
    b.record();
    b.synchronize();
    ms.push_back(b.elapsed_ms(a));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace ds::bench
