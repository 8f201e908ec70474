// Nearest-neighbour resize of channels-last activations to a given spatial
// size, as torch.nn.functional.interpolate(mode="nearest", size=...):
// output index o on an axis reads input index floor(o * in / out).
// Used by the FPN top-down path.
#pragma once
#include <array>

#include "core/tensor.h"

namespace ds::nn {

Tensor upsample_nearest_forward(const Tensor& x, const std::array<int64_t, 3>& size);
// Sums each output gradient into the input position it was read from.
Tensor upsample_nearest_backward(const Tensor& dy, const Shape& input_shape);

}  // namespace ds::nn
