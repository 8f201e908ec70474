// 3D ResNet backbone with MONAI's options (monai.networks.nets.ResNet):
//   stem   conv1 (kernel conv1_size, stride conv1_stride, padding size//2, no bias)
//          -> bn1 -> ReLU -> [MaxPool3d(3, stride 2, padding 1)]
//   layer1..layer4 of basic (depth 10/18/34) or bottleneck (50/101/152/200)
//          blocks with widths w1..w4 (bottleneck output = 4*w); layer1 has
//          stride 1, layers 2-4 stride 2 (in the first block: on conv1 for
//          basic blocks, on the 3x3x3 conv2 for bottlenecks).
//   shortcut type B: a 1x1x1 conv (with bias, MONAI's bias_downsample=True)
//          + norm when the shape changes.
// Only layers 1..num_layers are built and computed (the FPN's body stops
// after its last returned layer; the classifier head is never built).
// Parameter names: "<prefix>.conv1.weight", "<prefix>.layer2.0.downsample.1.running_mean", ...
// All per-axis values are in tensor order (D1, D2, D3).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/init.h"
#include "nn/units.h"

namespace ds::nn {

struct ResNetConfig {
  int depth = 50;
  int64_t in_channels = 1;
  Triple conv1_size{7, 7, 7};
  Triple conv1_stride{1, 2, 2};
  std::array<int64_t, 4> widths{64, 128, 256, 512};
  bool max_pool = true;
  NormKind norm = NormKind::Batch;
  int64_t norm_groups = 32;  // GroupNorm only
  int num_layers = 4;        // build layer1..layer<num_layers>
};

struct ResNetSpec {
  bool bottleneck;
  std::array<int, 4> blocks;
};
// Throws ds::Error for depths other than 10, 18, 34, 50, 101, 152, 200.
ResNetSpec resnet_spec(int depth);
int64_t resnet_expansion(int depth);

class ResBlock;

class ResNet {
 public:
  ResNet(ParamStore& ps, const std::string& prefix, const ResNetConfig& cfg, Rng& rng);
  ~ResNet();
  // Output channels of layer l (1-based).
  int64_t layer_channels(int l) const;
  // Total stride of layer l's output relative to the input, per axis.
  Triple layer_stride(int l) const;
  // Outputs of layer1..layer<num_layers>. save: keep what backward needs.
  std::vector<Tensor> forward(const Tensor& x, bool training, bool save);
  // Called during backward with the parameters (weights, biases, norm
  // gamma/beta; trainable or not: callers filter) of one module whose gradients have just become final: each residual
  // block as soon as its own backward is done, last block of the last layer
  // first, down to layer1's first block, then the stem (conv1, bn1). Every
  // entry of the backbone is in exactly one call per backward.
  using ReadyFn = std::function<void(const std::vector<ParamEntry*>&)>;
  // grads[l-1]: gradient of layer l's output (undefined = none); the last must be defined.
  // Returns dL/dx when need_dx. Frees the saved activations as it goes.
  Tensor backward(const std::vector<Tensor>& grads, bool need_dx, const ReadyFn& on_ready = {});
  void clear_saved();
  // SyncBatchNorm: every BatchNorm layer's training statistics over the
  // ranks of `sync` (null: per-process statistics again). No effect on GroupNorm.
  // Returns the number of BatchNorm layers affected.
  int set_batchnorm_sync(const std::shared_ptr<BatchNormSync>& sync);

 private:
  ResNetConfig cfg_;
  ResNetSpec spec_;
  ConvUnit conv1_;
  NormUnit bn1_;
  std::vector<std::vector<std::unique_ptr<ResBlock>>> layers_;
  // saved stem activations
  Tensor x_, z0_, y0_, argmax_;
  NormSaved s0_;
  bool saved_ = false;
  std::vector<NormUnit*> norms();  // every norm layer of the backbone
};

}  // namespace ds::nn
