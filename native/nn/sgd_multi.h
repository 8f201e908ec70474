// SGD over a list of tensors in one call (torch.optim.SGD's update, as
// nn/sgd.h), with what mixed precision needs:
//   * grads may be float32 master-weight gradients or 16-bit gradients of the
//     compute copy; they are multiplied by grad_scale (1 / loss scale) first;
//   * after the update a 16-bit compute copy of each parameter can be written
//     (the weights the float16 / bfloat16 forward pass uses).
// On the GPU everything is one kernel launch over all parameters (a table of
// tensor pointers and chunk descriptors), because a typical network has a few
// hundred small parameter tensors and one launch each would be launch-bound.
// The CPU version is the reference of the parity tests and the CPU path.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "nn/sgd.h"

namespace ds::nn {

struct SgdMultiArgs {
  std::vector<Tensor> params;   // float32 or float64 (the master weights), updated in place
  std::vector<Tensor> grads;    // like params, or float16/bfloat16 (params float32)
  std::vector<Tensor> bufs;     // momentum buffers like params; undefined = first step (allocated here)
  std::vector<Tensor> compute;  // optional: float16/bfloat16 copies written from the updated params
  SGDOptions opt;
  double grad_scale = 1.0;      // gradients are multiplied by this first (1 / loss scale)
};

// Validates the lists and runs the step on the params' device.
void sgd_multi_step(SgdMultiArgs& a);
// CPU implementation (reference); a must be validated.
void sgd_multi_step_cpu(SgdMultiArgs& a);
// Throws ds::Error when the lists are inconsistent (lengths, shapes, dtypes, devices).
void check_sgd_multi_args(const SgdMultiArgs& a);

}  // namespace ds::nn
