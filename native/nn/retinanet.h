// The MONAI LUNA16 RetinaNet network: ResNet body + FPN
// ("feature_extractor.body.*", "feature_extractor.fpn.*") and the shared
// classification / regression heads ("classification_head.*",
// "regression_head.*"). Outputs per FPN level, finest first:
//   class logits [N, D1', D2', D3', A*num_classes] (channel a*num_classes + c)
//   box deltas   [N, D1', D2', D3', A*6]           (channel a*6 + j)
// One forward may be in flight at a time; the saved activations of the last
// forward (with save = true) are consumed by backward.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "nn/fpn.h"
#include "nn/head.h"
#include "nn/param_store.h"
#include "nn/resnet.h"

namespace ds::nn {

struct RetinaNetConfig {
  ResNetConfig backbone;               // num_layers is derived from returned_layers
  std::vector<int> returned_layers{1, 2};
  int64_t num_classes = 1;
  int64_t num_anchors = 3;
  int64_t fpn_channels = 256;
  int64_t head_groups = 8;
  uint64_t seed = 0;
  DType dtype = DType::Float32;
};

class RetinaNet {
 public:
  explicit RetinaNet(const RetinaNetConfig& cfg);
  ~RetinaNet();

  struct Output {
    std::vector<Tensor> cls, box;
  };
  // save: keep the activations backward needs (normally = training mode).
  Output forward(const Tensor& x, bool save);
  // Gradients of the class logits and box deltas (one per level, shaped like
  // the outputs). Adds into the parameter gradients; returns dL/dx when need_dx.
  Tensor backward(const std::vector<Tensor>& cls_grads, const std::vector<Tensor>& box_grads, bool need_dx);

  // Moves every parameter, buffer, gradient and compute copy to `dev`
  // (cpu or cuda:i; see core/cuda_runtime.h). Optimizer state lives in the
  // optimizer: SGD::to moves it. Moving to the CPU ends 16-bit mixed
  // precision (the CPU computes in the model's dtype): compute_dtype() is
  // then the model's dtype again.
  void to(Device dev);
  Device device() const { return device_; }
  // Compute precision: the model's dtype (the default), or float16 / bfloat16
  // mixed precision (float32 models on a GPU only): conv weights get a 16-bit
  // compute copy (ParamEntry::compute) that forward/backward use, activations
  // and head outputs are 16-bit, norms keep float32 gamma/beta/statistics, and
  // gradients land in the float32 masters. The input and the output gradients
  // must then be of the compute dtype.
  void set_precision(DType compute);
  DType compute_dtype() const { return compute_dtype_; }
  // Re-creates the compute copies from the masters (after the masters were
  // set from outside, e.g. a checkpoint load). The SGD step refreshes them itself.
  void refresh_compute_copies();
  void set_training(bool t) { training_ = t; }
  bool training() const { return training_; }
  ParamStore& store() { return store_; }
  const RetinaNetConfig& config() const { return cfg_; }
  // Per axis (D1, D2, D3): input sizes must be multiples of this (the stride of the coarsest level).
  Triple size_divisible() const;
  size_t num_levels() const { return cfg_.returned_layers.size() + 1; }
  // Serialises operations on this model (N-API jobs lock it).
  std::mutex& mutex() { return mu_; }

  // Gradient-ready hook (data-parallel training): backward calls it, on the
  // thread running backward, with the trainable parameters whose gradients
  // have just become final for this backward, module by module in backward
  // order: the regression head (after all levels: head weights are shared, so
  // they are final only after the last level's backward), the classification
  // head, the FPN, then the backbone one residual block at a time as each
  // block's backward finishes (the last block of the deepest layer first,
  // layer1's first block last), then the stem (conv1, bn1). Every trainable
  // parameter is reported exactly once per backward, in an order that matches
  // the reducer's reverse-registration buckets. An exception thrown by the
  // hook aborts backward.
  using GradReadyHook = std::function<void(const std::vector<ParamEntry*>&)>;
  void set_grad_ready_hook(GradReadyHook hook) { hook_ = std::move(hook); }
  bool has_grad_ready_hook() const { return bool(hook_); }
  // SyncBatchNorm (data-parallel training): the backbone's BatchNorm layers
  // take training statistics over every rank of `sync` (null: per-process
  // again). Returns the number of BatchNorm layers (0 with GroupNorm).
  int set_batchnorm_sync(const std::shared_ptr<BatchNormSync>& sync) { return body_->set_batchnorm_sync(sync); }

 private:
  RetinaNetConfig cfg_;
  ParamStore store_;
  std::unique_ptr<ResNet> body_;
  std::unique_ptr<FPN> fpn_;
  std::unique_ptr<Head> cls_head_, box_head_;
  bool training_ = true;
  bool saved_ = false;
  Device device_ = Device::cpu();
  DType compute_dtype_ = DType::Float32;
  std::vector<Shape> cls_shapes_, box_shapes_;
  std::mutex mu_;
  GradReadyHook hook_;
  // Trainable parameters per module, in the order backward finishes them.
  std::vector<std::vector<ParamEntry*>> ready_groups_;
  void notify_ready(size_t group);
  // Drops the activations saved for backward (all modules).
  void clear_saved();
};

}  // namespace ds::nn
