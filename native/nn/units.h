// The building units of the network, bound to named entries of a ParamStore:
//   ConvUnit  conv3d with optional bias ("<prefix>.weight", "<prefix>.bias")
//   NormUnit  BatchNorm3d or GroupNorm with fused residual add and ReLU
//             ("<prefix>.weight", ".bias", and for BatchNorm the buffers
//             ".running_mean", ".running_var", ".num_batches_tracked")
// Units hold no activations; the modules that use them keep what backward
// needs. Backward passes add parameter gradients into ParamEntry::grad.
#pragma once
#include <array>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "nn/param_store.h"
#include "ops/conv3d.h"

namespace ds::nn {

using Triple = std::array<int64_t, 3>;

class ConvUnit {
 public:
  ConvUnit() = default;
  ConvUnit(ParamStore& ps, const std::string& prefix, int64_t cin, int64_t cout, const Triple& kernel,
           const Triple& stride, const Triple& padding, bool bias);
  Tensor forward(const Tensor& x) const;
  // Accumulates dL/dweight (and dL/dbias); returns dL/dx when need_dx, else an undefined tensor.
  Tensor backward(const Tensor& x, const Tensor& dy, bool need_dx) const;
  // backward when the weight has a 16-bit compute copy (float32 master gradients).
  Tensor backward_mixed(const Tensor& x, const Tensor& dy, bool need_dx) const;

  ParamEntry* weight = nullptr;
  ParamEntry* bias = nullptr;
  Conv3dParams params;
  int64_t cin = 0, cout = 0;
};

enum class NormKind { Batch, Group };

class BatchNormSync;  // nn/batchnorm_sync.h

struct NormSaved {
  Tensor mean, scale;  // BatchNorm: [C] mean, invstd; GroupNorm: [N, G] mean, rstd
  bool training = true;
  std::shared_ptr<BatchNormSync> sync;  // SyncBatchNorm object the forward used (backward uses it too)
};

class NormUnit {
 public:
  NormUnit() = default;
  NormUnit(ParamStore& ps, const std::string& prefix, int64_t channels, NormKind kind, int64_t groups);
  // y = relu?(norm(x) + residual?). training selects batch statistics (BatchNorm only).
  Tensor forward(const Tensor& x, const Tensor& residual, bool relu, bool training, NormSaved* saved) const;
  // Accumulates dL/dgamma, dL/dbeta; returns dL/dx. grad_pre (optional) receives
  // the gradient after the ReLU mask, i.e. the residual's gradient.
  Tensor backward(const Tensor& x, const Tensor& y, const NormSaved& saved, const Tensor& dy, bool relu,
                  Tensor* grad_pre) const;
  // The output of a forward without residual again, from x and the saved
  // statistics (GroupNorm only), for modules that drop y after forward.
  Tensor recompute(const Tensor& x, const NormSaved& saved, bool relu) const;

  NormKind kind = NormKind::Batch;
  int64_t groups = 1, channels = 0;
  double eps = 1e-5, momentum = 0.1;
  ParamEntry* gamma = nullptr;
  ParamEntry* beta = nullptr;
  ParamEntry* running_mean = nullptr;
  ParamEntry* running_var = nullptr;
  ParamEntry* num_batches = nullptr;
  // BatchNorm only: when set, training-mode statistics are over every rank's
  // batch (SyncBatchNorm, nn/batchnorm.h); null = this process's batch.
  std::shared_ptr<BatchNormSync> sync;
};

}  // namespace ds::nn
