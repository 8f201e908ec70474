// Whole-tensor reductions used by training (gradient norms, loss-scale
// overflow checks, statistics in logs). Any float dtype, CPU or CUDA; the
// result is a double on the host. Accumulation in double on both devices; the
// CPU sums in fixed chunks, the GPU in a fixed two-pass tree, so each is
// deterministic (they differ from each other by rounding only).
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace ds::nn {

double sum(const Tensor& t);
double sum_squares(const Tensor& t);
// Largest |x| (NaN when any element is NaN); 0 for an empty tensor.
double max_abs(const Tensor& t);
// Number of NaN or infinite elements.
int64_t count_nonfinite(const Tensor& t);

// Device implementations (reduce.cpp / reduce_cuda.cu; stubs without CUDA).
double sum_cpu(const Tensor& t);
double sum_squares_cpu(const Tensor& t);
double max_abs_cpu(const Tensor& t);
int64_t count_nonfinite_cpu(const Tensor& t);
double sum_cuda(const Tensor& t);
double sum_squares_cuda(const Tensor& t);
double max_abs_cuda(const Tensor& t);
int64_t count_nonfinite_cuda(const Tensor& t);

}  // namespace ds::nn
