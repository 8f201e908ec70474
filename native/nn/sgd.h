// Stochastic gradient descent over all trainable parameters of a ParamStore,
// with exactly torch.optim.SGD's update (dampening 0 by default):
//   g = grad + weight_decay * p
//   buf = g (first step) | momentum * buf + (1 - dampening) * g
//   g = nesterov ? g + momentum * buf : buf     (when momentum != 0)
//   p -= lr * g
// Momentum buffers are kept per parameter name (for checkpoints).
#pragma once
#include <string>
#include <vector>

#include "nn/param_store.h"

namespace ds::nn {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD {
 public:
  SGD(ParamStore& store, const SGDOptions& o);
  // One update. Gradients are multiplied by grad_scale first (1 / loss scale
  // under float16 mixed precision). Parameters on a GPU, or with 16-bit
  // compute copies (ParamEntry::compute), go through the fused multi-tensor
  // step (nn/sgd_multi.h), which also rewrites the compute copies from the
  // updated masters in the same kernel: one launch for the conv weights, one
  // for the rest. Plain CPU parameters keep the per-tensor loop below.
  void step(double grad_scale = 1.0);
  // Moves the momentum buffers to dev (call with the model's to()).
  void to(Device dev);
  SGDOptions& options() { return opt_; }
  // Momentum buffers by parameter name (undefined before the first step), on the parameters' device.
  std::vector<std::pair<std::string, Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& s);

 private:
  ParamStore& store_;
  SGDOptions opt_;
  std::vector<ParamEntry*> params_;
  std::vector<Tensor> bufs_;
};

void validate_sgd_options(const SGDOptions& o);

}  // namespace ds::nn
