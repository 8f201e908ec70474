// ReLU. The backward needs only the forward output (y > 0 marks where the
// gradient passes), so networks keep y, never the input.
#pragma once
#include "core/tensor.h"

namespace ds::nn {

Tensor relu_forward(const Tensor& x);
// dx = dy where y > 0, else 0.
Tensor relu_backward(const Tensor& y, const Tensor& dy);

}  // namespace ds::nn
