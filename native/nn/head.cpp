#include "nn/head.h"

namespace ds::nn {

Head::Head(ParamStore& ps, const std::string& prefix, int64_t C, int64_t out_channels, int64_t groups,
           const std::string& final_name, double final_bias, Rng& rng) {
  const Triple one{1, 1, 1}, three{3, 3, 3};
  for (int j = 0; j < kDepth; ++j) {
    convs_.emplace_back(ps, prefix + ".conv." + std::to_string(3 * j), C, C, three, one, one, true);
    norms_.emplace_back(ps, prefix + ".conv." + std::to_string(3 * j + 1), C, NormKind::Group, groups);
  }
  final_ = ConvUnit(ps, prefix + "." + final_name, C, out_channels, three, one, one, true);
  for (auto& c : convs_) {
    init_normal(c.weight->value, rng, 0.01);
    c.bias->value.zero_();
  }
  init_normal(final_.weight->value, rng, 0.01);
  final_.bias->value.fill_(final_bias);
}

// Levels run layer by layer (every level through tower conv j, then j + 1):
// inside one layer a Conv3dWeightReuse scope lets the CPU Winograd path
// transform the layer's weights once for all levels of a tile shape. Each
// level's arithmetic is exactly the level-by-level one, and parameter
// gradients still accumulate over the levels in level order.
std::vector<Tensor> Head::forward(const std::vector<Tensor>& levels, bool save) {
  clear_saved();
  const size_t L = levels.size();
  std::vector<Saved> s(L);
  std::vector<Tensor> cur(levels);
  for (size_t l = 0; l < L; ++l) s[l].x = levels[l];
  for (int j = 0; j < kDepth; ++j) {
    Conv3dWeightReuse reuse;  // CPU float32 Winograd only; a no-op for CUDA tensors
    for (size_t l = 0; l < L; ++l) {
      Tensor z = convs_[j].forward(cur[l]);
      cur[l] = norms_[j].forward(z, Tensor(), true, true, &s[l].s[j]);
      // Only the pre-norm z is kept: backward recomputes y = relu(gn(z)) from
      // the saved statistics, which halves the tower's activation memory.
      if (save) s[l].z[j] = z;
    }
  }
  std::vector<Tensor> outs;
  for (size_t l = 0; l < L; ++l) {
    outs.push_back(final_.forward(cur[l]));
    cur[l] = Tensor();
  }
  if (save) saved_ = std::move(s);
  return outs;
}

std::vector<Tensor> Head::backward(const std::vector<Tensor>& grads) {
  DS_CHECK(saved_.size() == grads.size(), "head backward: ", grads.size(), " level gradients for ", saved_.size(),
           " saved levels (run forward with gradients enabled first)");
  const size_t L = grads.size();
  const int last = kDepth - 1;
  std::vector<Tensor> y(L), d(L);
  for (size_t l = 0; l < L; ++l) {
    y[l] = norms_[last].recompute(saved_[l].z[last], saved_[l].s[last], true);
    d[l] = final_.backward(y[l], grads[l], true);
  }
  for (int j = last; j >= 0; --j) {
    Conv3dWeightReuse reuse;  // grad input's transformed weights, shared by the levels
    for (size_t l = 0; l < L; ++l) {
      Saved& s = saved_[l];
      // y is this unit's output (ReLU mask); the conv's input is the previous unit's output.
      Tensor dz = norms_[j].backward(s.z[j], y[l], s.s[j], d[l], true, nullptr);
      s.z[j] = Tensor();
      d[l] = Tensor();
      y[l] = j > 0 ? norms_[j - 1].recompute(s.z[j - 1], s.s[j - 1], true) : s.x;
      d[l] = convs_[j].backward(y[l], dz, true);  // y[l] stays: norm j-1's output, the next mask
    }
  }
  clear_saved();
  return d;
}

void Head::clear_saved() { saved_.clear(); }

}  // namespace ds::nn
