// 3D convolution on channels-last tensors (groups = 1).
//   x      [N, D1, D2, D3, Cin]
//   w      [Cout, k1, k2, k3, Cin]
//   bias   [Cout] or undefined
//   y      [N, O1, O2, O3, Cout],  Oi = (Di + 2*pad_i - dil_i*(k_i - 1) - 1) / stride_i + 1
// float32 and float64 on the CPU; tensors on a CUDA device dispatch to
// ops/conv3d_cuda.h (float16 / bfloat16 there too). Every argument problem
// throws ds::Error.
// float32 3x3x3 stride-1 dilation-1 layers with >= 64 channels in and out (and
// enough positions) use Winograd on AVX2/AVX-512 (conv3d_winograd.h): F(2,3)
// tiles, or F(2,3) x F(4,3) x F(4,3) where the output has >= 16 positions
// along D2 and D3; rounding error up to ~2x (F(2,3)) resp. ~10x the GEMM
// path's. DETSEG3D_WINOGRAD=0 disables it, =1 forces it for every eligible
// shape, DETSEG3D_WINOGRAD_TILE=2|4 forces a tile shape (read per call).
#pragma once
#include <array>

#include "core/tensor.h"

namespace ds {

struct Conv3dParams {
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> padding{0, 0, 0};
  std::array<int64_t, 3> dilation{1, 1, 1};
};

// Validates shapes and parameters and returns (O1, O2, O3).
std::array<int64_t, 3> conv3d_output_size(const Tensor& x, const Tensor& w, const Conv3dParams& p);

Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p);

struct Conv3dGrads {
  Tensor grad_input;   // like x   (undefined unless requested)
  Tensor grad_weight;  // like w   (undefined unless requested)
  Tensor grad_bias;    // [Cout]   (undefined unless requested)
};

Conv3dGrads conv3d_backward(const Tensor& x, const Tensor& w, const Tensor& grad_out, const Conv3dParams& p,
                            bool need_input = true, bool need_weight = true, bool need_bias = false);

// Into preallocated tensors (no allocation, no page faults on fresh memory):
// y must be [N, O1, O2, O3, Cout] of x's dtype; with accumulate, y += conv(x, w) + bias.
// The outputs must not overlap the inputs.
void conv3d_forward_into(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dParams& p, Tensor& y,
                         bool accumulate = false);
// Fills the defined members of `grads` (each shaped like x, w, [Cout]); with
// accumulate the gradients are added to their contents (gradient accumulation).
void conv3d_backward_into(const Tensor& x, const Tensor& w, const Tensor& grad_out, const Conv3dParams& p,
                          Conv3dGrads& grads, bool accumulate = false);

}  // namespace ds
