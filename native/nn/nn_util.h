// Small helpers shared by the layers in native/nn: dtype dispatch, argument
// checks for channels-last activations and per-channel vectors, and a
// deterministic per-channel row reduction.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace ds::nn {

// Calls f(T{}) with T = float or double according to dt.
template <class F>
void dispatch_float(DType dt, const char* what, F&& f) {
  if (dt == DType::Float32)
    f(float{});
  else if (dt == DType::Float64)
    f(double{});
  else
    DS_FAIL(what, ": expects float32 or float64, got ", dtype_name(dt));
}

// x must be a float32/float64 CPU tensor [N, D1, D2, D3, C].
void check_activation(const Tensor& x, const char* what);
// v must be a CPU vector [n] of dtype dt.
void check_vector(const Tensor& v, int64_t n, DType dt, const char* what);
// a and b must have identical shapes and dtypes.
void check_same_shape(const Tensor& a, const Tensor& b, const char* what_a, const char* what_b);

// Rows x width reduction: fn(r0, r1, acc) adds the contribution of rows
// [r0, r1) into acc[0..width). Rows are cut into chunks whose boundaries
// depend only on `rows` (not on the thread count), and the chunk partials are
// summed in a fixed order, so the result is bit-identical for any number of
// threads.
std::vector<double> reduce_rows(int64_t rows, int64_t width,
                                const std::function<void(int64_t, int64_t, double*)>& fn);

// Like reduce_rows, but fn accumulates into a zeroed local T buffer per
// chunk (fn(r0, r1, T* acc)), which lets the compiler vectorise float loops;
// chunk sums are then added in double. A chunk is at most a few hundred rows,
// so float32 chunk sums lose nothing that matters for normalisation statistics.
template <class T, class F>
std::vector<double> reduce_rows_local(int64_t rows, int64_t width, F&& fn) {
  return reduce_rows(rows, width, [&](int64_t r0, int64_t r1, double* acc) {
    std::vector<T> local(static_cast<size_t>(width), T(0));
    fn(r0, r1, local.data());
    for (int64_t j = 0; j < width; ++j) acc[j] += double(local[j]);
  });
}

}  // namespace ds::nn
