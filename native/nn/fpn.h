// Feature pyramid on top of the backbone's returned layers, as MONAI's
// resnet_fpn_feature_extractor / FeaturePyramidNetwork:
//   inner_blocks[i]  1x1x1 conv (bias) C_i -> out_channels   (lateral)
//   layer_blocks[i]  3x3x3 conv (bias, padding 1) out -> out (output)
//   top-down: m_last = inner(x_last); m_i = inner(x_i) + nearest_resize(m_{i+1}, size of x_i)
//   P_i = layer(m_i); extra coarsest level = MaxPool3d(kernel 1, stride 2)(P_last)
// So k returned layers give k + 1 feature maps, finest first.
// Init: kaiming_uniform(a=1) weights, zero biases.
#pragma once
#include <string>
#include <vector>

#include "nn/init.h"
#include "nn/units.h"

namespace ds::nn {

class FPN {
 public:
  FPN(ParamStore& ps, const std::string& prefix, const std::vector<int64_t>& in_channels, int64_t out_channels,
      Rng& rng);
  std::vector<Tensor> forward(const std::vector<Tensor>& xs, bool save);
  // grads: one per output level (k + 1). Returns the gradients of the k inputs.
  std::vector<Tensor> backward(const std::vector<Tensor>& grads);
  void clear_saved();

 private:
  std::vector<ConvUnit> inner_, layer_;
  std::vector<Tensor> xs_, merged_;
  Tensor argmax_;
  Shape last_shape_;
  bool saved_ = false;
};

}  // namespace ds::nn
