// MaxPool3d on channels-last activations [N, D1, D2, D3, C] (ceil_mode off,
// implicit -inf padding, as torch.nn.MaxPool3d):
//   O_i = (D_i + 2*pad_i - kernel_i) / stride_i + 1
// Forward records, per output value, the flat input position
// (d1*D2 + d2)*D3 + d3 of the winning tap (first maximum in scan order);
// backward routes each output gradient to it.
#pragma once
#include <array>

#include "core/tensor.h"

namespace ds::nn {

struct MaxPoolParams {
  std::array<int64_t, 3> kernel{1, 1, 1};
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> padding{0, 0, 0};
};

std::array<int64_t, 3> maxpool3d_output_size(const Tensor& x, const MaxPoolParams& p);

// argmax (optional) receives an int32 tensor shaped like the output.
Tensor maxpool3d_forward(const Tensor& x, const MaxPoolParams& p, Tensor* argmax);
// input_shape: the forward input's shape; dy and argmax shaped like the output.
Tensor maxpool3d_backward(const Tensor& dy, const Tensor& argmax, const Shape& input_shape);

}  // namespace ds::nn
