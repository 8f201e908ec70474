#include "nn/reduce.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"

namespace ds::nn {
namespace {

// Calls f(i, value) for every element converted to double, in chunks whose
// partial results are combined in a fixed order by `combine`.
template <class Acc, class Elem, class Combine>
Acc reduce_elements(const Tensor& t, Acc init, Elem elem, Combine combine) {
  check_cpu(t, "reduction input");
  DS_CHECK(dtype_is_float(t.dtype()), "reduction: expects a floating-point tensor, got ", t.describe());
  const int64_t n = t.numel();
  const int64_t chunk = 1 << 16, nchunks = (n + chunk - 1) / chunk;
  std::vector<Acc> part(size_t(std::max<int64_t>(nchunks, 1)), init);
  auto value = [&](int64_t i) -> double {
    switch (t.dtype()) {
      case DType::Float32: return t.data<float>()[i];
      case DType::Float64: return t.data<double>()[i];
      case DType::Float16: return half_to_float(t.data_u16()[i]);
      default: return bf16_to_float(t.data_u16()[i]);
    }
  };
  parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      Acc a = init;
      for (int64_t i = c * chunk, e = std::min(n, (c + 1) * chunk); i < e; ++i) a = elem(a, value(i));
      part[size_t(c)] = a;
    }
  });
  Acc total = init;
  for (auto& p : part) total = combine(total, p);
  return total;
}

}  // namespace

double sum_cpu(const Tensor& t) {
  return reduce_elements<double>(t, 0.0, [](double a, double v) { return a + v; }, [](double a, double b) { return a + b; });
}

double sum_squares_cpu(const Tensor& t) {
  return reduce_elements<double>(t, 0.0, [](double a, double v) { return a + v * v; },
                                 [](double a, double b) { return a + b; });
}

double max_abs_cpu(const Tensor& t) {
  auto mx = [](double a, double b) { return (a != a || a > b) ? a : b; };
  return reduce_elements<double>(t, 0.0, [&](double a, double v) { return mx(a, std::fabs(v)); }, mx);
}

int64_t count_nonfinite_cpu(const Tensor& t) {
  return reduce_elements<int64_t>(t, 0, [](int64_t a, double v) { return a + (std::isfinite(v) ? 0 : 1); },
                                  [](int64_t a, int64_t b) { return a + b; });
}

double sum(const Tensor& t) { return t.device().is_cpu() ? sum_cpu(t) : sum_cuda(t); }
double sum_squares(const Tensor& t) { return t.device().is_cpu() ? sum_squares_cpu(t) : sum_squares_cuda(t); }
double max_abs(const Tensor& t) { return t.device().is_cpu() ? max_abs_cpu(t) : max_abs_cuda(t); }
int64_t count_nonfinite(const Tensor& t) {
  return t.device().is_cpu() ? count_nonfinite_cpu(t) : count_nonfinite_cuda(t);
}

}  // namespace ds::nn
