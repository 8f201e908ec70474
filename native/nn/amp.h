// The optimizer step of (mixed-precision) training with dynamic loss scaling:
//   1. one multi-tensor pass checks every trainable parameter's gradient for
//      inf/NaN (on a GPU: one launch per gradient dtype, then one 4-byte read
//      -- the step's only host synchronisation: the host must know whether
//      to skip);
//   2. unless something was non-finite, the SGD step runs with grad_scale =
//      1 / loss scale, i.e. the unscale is fused into the update, which also
//      rewrites the 16-bit compute copies (nn/sgd.h);
//   3. the scaler's policy is applied (halve and skip on inf/NaN, double
//      after growth_interval clean steps).
// Without a scaler (float32 training) it is a plain SGD step.
#pragma once
#include "nn/loss_scaler.h"
#include "nn/param_store.h"
#include "nn/sgd.h"

namespace ds::nn {

struct AmpStepResult {
  bool applied = true;     // false: the step was skipped (non-finite gradients)
  double scale_used = 1;   // the loss scale the gradients carried
};

AmpStepResult amp_optimizer_step(ParamStore& store, SGD& sgd, LossScaler* scaler);

// The trainable parameters' gradients (zeros materialised where none arrived).
std::vector<Tensor> trainable_grads(ParamStore& store);

}  // namespace ds::nn
