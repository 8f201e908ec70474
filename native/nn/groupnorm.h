// GroupNorm over channels-last activations [N, D1, D2, D3, C] with affine
// per-channel weight/bias and an optional fused ReLU:
//   y = act(gamma_c * (x - mean_{n,g}) * rstd_{n,g} + beta_c)
// The C channels form `groups` consecutive groups of C/groups channels;
// statistics are per sample and group over D1*D2*D3*C/groups values (biased
// variance), as torch.nn.GroupNorm. Same in training and eval.
#pragma once
#include "core/tensor.h"
#include "nn/batchnorm.h"  // NormGrads

namespace ds::nn {

struct GroupNormSaved {
  Tensor mean;  // [N, groups]
  Tensor rstd;  // [N, groups]
};

Tensor groupnorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps,
                         bool relu, GroupNormSaved* saved);

// The forward output again from the saved statistics (bit-identical to
// groupnorm_forward's y on the CPU), so callers can drop y after forward.
// eps is used only where the statistics have to be recomputed (CUDA).
Tensor groupnorm_recompute(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps,
                           const GroupNormSaved& saved, bool relu);

// y is needed only when relu (the mask); may be undefined otherwise.
NormGrads groupnorm_backward(const Tensor& x, const Tensor& y, const Tensor& gamma, int64_t groups,
                             const GroupNormSaved& saved, const Tensor& dy, bool relu);

}  // namespace ds::nn
