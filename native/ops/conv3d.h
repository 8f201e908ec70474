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
// Stride-1 layers with <= 24 output channels (>= 32 in, >= 8 taps) use the
// few-output-channel path (conv3d_narrow.h) for forward and grad weight;
// DETSEG3D_CONV_NARROW=0 disables it.
#pragma once
#include <array>
#include <memory>

#include "core/tensor.h"

namespace ds {

namespace winograd {
class WeightCache;
}

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

// While an object of this class lives, the float32 CPU Winograd convolutions
// called on the constructing thread keep their transformed weights (per
// weight data pointer, tile shape and pass: forward / grad input) and reuse
// them, e.g. a layer applied to every pyramid level. Each call computes what
// it would compute without the scope, except the tile choice: since the
// weight transform is shared, smaller problems also use Winograd, with the
// mixed tiles when those weights are already cached (their rounding, ~10x
// the GEMM path's; see conv3d_winograd.h). The caller guarantees that the weights used inside the
// scope are not modified or freed while it lives. Scopes nest (the innermost
// one applies); CUDA tensors are unaffected. DETSEG3D_WINOGRAD_REUSE=0 (read
// when the scope is created) disables the reuse.
class Conv3dWeightReuse {
 public:
  Conv3dWeightReuse();
  ~Conv3dWeightReuse();
  Conv3dWeightReuse(const Conv3dWeightReuse&) = delete;
  Conv3dWeightReuse& operator=(const Conv3dWeightReuse&) = delete;

 private:
  std::unique_ptr<winograd::WeightCache> cache_;
  winograd::WeightCache* prev_ = nullptr;
  bool active_ = false;
};

}  // namespace ds
