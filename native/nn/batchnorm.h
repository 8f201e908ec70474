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
// SyncBatchNorm (BatchNormOptions::sync, training only): the statistics are
// those of the union of every rank's batch. Forward combines the ranks'
// per-channel (count, mean, M2) in float64 with Chan's pairwise formula (one
// all-reduce of W*(2C+1) doubles), the running variance uses the global
// unbiased variance; backward all-reduces (sum dy, sum dy*xhat, count) (2C+1
// doubles), so dL/dx is that of the batch union. dgamma / dbeta stay this
// rank's own sums (the gradient reducer averages them, as torch's
// SyncBatchNorm under DDP). With one rank it is plain BatchNorm.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "nn/batchnorm_sync.h"

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
  // Non-null in training mode: SyncBatchNorm over the ranks of this group
  // (CPU: fused; CUDA: composed, see below). Backward must get the same
  // object as its forward.
  BatchNormSync* sync = nullptr;
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

// SyncBatchNorm through the device's unsynchronised kernels (two BatchNorm
// passes each way; batchnorm_sync.cpp). Tensors on a CUDA device take this
// path when o.sync is set in training mode; it works for CPU tensors too (the
// tests compare it with the fused CPU path). Needs o.training and o.sync.
Tensor sync_batchnorm_forward_composed(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var, const Tensor& residual,
                                       const BatchNormOptions& o, BatchNormSaved* saved);
NormGrads sync_batchnorm_backward_composed(const Tensor& x, const Tensor& y, const Tensor& gamma,
                                           const BatchNormSaved& saved, const Tensor& dy, const BatchNormOptions& o,
                                           bool want_grad_pre);
// Replaces this rank's per-channel (count, mean, M2 = sum of squared
// deviations) by those of every rank's batch together: one all-reduce of
// W*(2C+1) doubles, then Chan's pairwise combination in rank order.
void combine_batchnorm_stats(BatchNormSync& s, double& count, std::vector<double>& mean, std::vector<double>& m2);

}  // namespace ds::nn
