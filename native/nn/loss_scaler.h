// Dynamic loss scaling for float16 mixed-precision training (the policy of
// torch.cuda.amp.GradScaler):
//   * the loss (i.e. the seed of the backward pass) is multiplied by scale(),
//     initially 2^16, so that small float16 gradients do not flush to zero;
//   * before the optimizer step the gradients are checked for inf/NaN (and
//     unscaled, either in place or by passing 1/scale to the fused SGD);
//   * update(found_inf): on inf/NaN the step is skipped and the scale halved;
//     after growth_interval (2000) consecutive clean steps it is doubled.
// The state (scale, clean-step counter) goes into checkpoints. With
// enabled = false (bfloat16, whose range matches float32) scale() is 1 and
// update() only counts. Works for CPU and CUDA gradients alike.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ds::nn {

struct LossScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
};

struct LossScalerState {
  double scale = 65536.0;
  int64_t growth_tracker = 0;  // consecutive clean steps since the last change
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& o = {});
  double scale() const { return opt_.enabled ? st_.scale : 1.0; }
  double scale_loss(double loss) const { return loss * scale(); }
  // Multiplies every gradient by 1 / scale() in place; returns true when any
  // element of any gradient is inf or NaN (then the step must be skipped).
  bool unscale_and_check(std::vector<Tensor>& grads) const;
  // Only the inf/NaN check (for a fused optimizer that unscales itself).
  bool check(const std::vector<Tensor>& grads) const;
  // Applies the policy after a step attempt; returns true when the step should
  // be (was) applied, i.e. !found_inf.
  bool update(bool found_inf);
  LossScalerState state() const { return st_; }
  void load_state(const LossScalerState& s);
  const LossScalerOptions& options() const { return opt_; }

 private:
  LossScalerOptions opt_;
  LossScalerState st_;
};

// grads *= factor (when factor != 1) and returns whether any element is
// inf/NaN (checked before scaling). Dispatches on the tensors' device (all
// must be on one device). Float dtypes only.
bool scale_and_check_nonfinite_(std::vector<Tensor>& grads, double factor);
bool scale_and_check_nonfinite_cpu_(std::vector<Tensor>& grads, double factor);
bool scale_and_check_nonfinite_cuda_(std::vector<Tensor>& grads, double factor);

}  // namespace ds::nn
