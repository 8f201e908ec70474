// CUDA versions of the layers in native/nn, with the CPU functions'
// signatures and semantics (see their headers); they are called by the CPU
// entry points when the input lives on a CUDA device. Implemented in
// native/nn/*_cuda.cu; in builds without CUDA, nn_cuda_nocuda.cpp provides
// stubs that throw (no CUDA tensor can exist there).
//
// dtypes: float32 and float64 like the CPU, plus float16 / bfloat16
// activations for mixed precision. With 16-bit activations the per-channel
// parameters and statistics (gamma, beta, running stats, saved mean/invstd)
// are float32, and every reduction accumulates in float32 (double for float64).
#pragma once
#include <array>
#include <vector>

#include "core/tensor.h"
#include "nn/batchnorm.h"
#include "nn/groupnorm.h"
#include "nn/maxpool.h"
#include "nn/sgd.h"

namespace ds::nn {

// elementwise.h / activation.h
Tensor add_cuda(const Tensor& a, const Tensor& b);
void axpy_cuda_(Tensor& dst, double alpha, const Tensor& src);
Tensor relu_forward_cuda(const Tensor& x);
Tensor relu_backward_cuda(const Tensor& y, const Tensor& dy);

// batchnorm.h
Tensor batchnorm_forward_cuda(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                              const Tensor& running_var, const Tensor& residual, const BatchNormOptions& o,
                              BatchNormSaved* saved);
NormGrads batchnorm_backward_cuda(const Tensor& x, const Tensor& y, const Tensor& gamma, const BatchNormSaved& saved,
                                  const Tensor& dy, const BatchNormOptions& o, bool want_grad_pre);

// groupnorm.h
Tensor groupnorm_forward_cuda(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps,
                              bool relu, GroupNormSaved* saved);
NormGrads groupnorm_backward_cuda(const Tensor& x, const Tensor& y, const Tensor& gamma, int64_t groups,
                                  const GroupNormSaved& saved, const Tensor& dy, bool relu);

// maxpool.h / upsample.h
Tensor maxpool3d_forward_cuda(const Tensor& x, const MaxPoolParams& p, Tensor* argmax);
Tensor maxpool3d_backward_cuda(const Tensor& dy, const Tensor& argmax, const Shape& input_shape);
Tensor upsample_nearest_forward_cuda(const Tensor& x, const std::array<int64_t, 3>& size);
Tensor upsample_nearest_backward_cuda(const Tensor& dy, const Shape& input_shape);

// sgd.h: one fused launch over every parameter (see nn/sgd_multi.h).
struct SgdMultiArgs;
void sgd_multi_step_cuda(SgdMultiArgs& a);

}  // namespace ds::nn
