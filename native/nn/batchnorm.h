// BatchNorm3d over channels-last activations [N, D1, D2, D3, C], with an
// optional fused residual add and ReLU:
//   y = act(gamma * (x - mean) * invstd + beta + residual)
// Training: mean/var are the batch statistics over N*D1*D2*D3 values per
// channel (biased variance for normalising); the running estimates are
// updated as r = (1 - momentum) * r + momentum * stat, with the unbiased
// variance for running_var (torch.nn.BatchNorm3d semantics).
// Eval: mean = running_mean, var = running_var.
// What backward needs: x (the pre-norm input), y (only for the ReLU mask)
// and the per-channel mean / invstd returned in BatchNormSaved.
#pragma once
#include "core/tensor.h"

namespace ds::nn {

struct BatchNormSaved {
  Tensor mean;    // [C] statistics actually used to normalise
  Tensor invstd;  // [C] 1 / sqrt(var + eps)
};

struct BatchNormOptions {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
  bool relu = false;
};

// running_mean / running_var are updated in place in training mode (their
// storage is shared with the caller's tensors). residual may be undefined.
Tensor batchnorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                         const Tensor& running_var, const Tensor& residual, const BatchNormOptions& o,
                         BatchNormSaved* saved);

struct NormGrads {
  Tensor grad_input;  // like x
  Tensor grad_gamma;  // [C]
  Tensor grad_beta;   // [C]
  Tensor grad_pre;    // gradient after the ReLU mask = gradient of the residual (when requested)
};

// y is needed only when o.relu (may be undefined otherwise).
NormGrads batchnorm_backward(const Tensor& x, const Tensor& y, const Tensor& gamma, const BatchNormSaved& saved,
                             const Tensor& dy, const BatchNormOptions& o, bool want_grad_pre);

}  // namespace ds::nn
