// RetinaNet head shared by all FPN levels (MONAI RetinaNetClassificationHead /
// RetinaNetRegressionHead): a tower of 4 x (conv3x3x3 C->C with bias +
// GroupNorm(groups) + ReLU) registered as "<prefix>.conv.{0,1,3,4,6,7,9,10}"
// (index 2, 5, 8, 11 are the parameter-free ReLUs), then a conv3x3x3
// C -> out_channels named "<prefix>.<final_name>".
// Init: every conv weight N(0, 0.01^2), tower biases 0, final bias
// final_bias. The same weights run on every level, so parameter gradients
// accumulate over the levels in backward. Per level only the input and the
// pre-norm conv outputs are kept; backward recomputes the GroupNorm+ReLU
// outputs from them and the saved statistics.
#pragma once
#include <string>
#include <vector>

#include "nn/init.h"
#include "nn/units.h"

namespace ds::nn {

class Head {
 public:
  Head(ParamStore& ps, const std::string& prefix, int64_t channels, int64_t out_channels, int64_t groups,
       const std::string& final_name, double final_bias, Rng& rng);
  std::vector<Tensor> forward(const std::vector<Tensor>& levels, bool save);
  // Returns the gradient of each level's input; frees the saved activations.
  std::vector<Tensor> backward(const std::vector<Tensor>& grads);
  void clear_saved();

 private:
  static constexpr int kDepth = 4;
  struct Saved {
    Tensor x, z[kDepth];  // level input and pre-norm conv outputs
    NormSaved s[kDepth];
  };
  std::vector<ConvUnit> convs_;
  std::vector<NormUnit> norms_;
  ConvUnit final_;
  std::vector<Saved> saved_;
};

}  // namespace ds::nn
