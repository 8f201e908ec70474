// Elementwise tensor arithmetic used by the network (residual and FPN adds,
// gradient accumulation). float32/float64, CPU, identical shapes.
#pragma once
#include "core/tensor.h"

namespace ds::nn {

// a + b into a new tensor.
Tensor add(const Tensor& a, const Tensor& b);
// dst += src in place (dst keeps its storage).
void add_(Tensor& dst, const Tensor& src);
// dst += alpha * src in place.
void axpy_(Tensor& dst, double alpha, const Tensor& src);

}  // namespace ds::nn
