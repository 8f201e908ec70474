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

std::vector<Tensor> Head::forward(const std::vector<Tensor>& levels, bool save) {
  clear_saved();
  std::vector<Tensor> outs;
  for (const Tensor& x : levels) {
    Saved s;
    s.x = x;
    Tensor cur = x;
    for (int j = 0; j < kDepth; ++j) {
      Tensor z = convs_[j].forward(cur);
      cur = norms_[j].forward(z, Tensor(), true, true, &s.s[j]);
      // Only the pre-norm z is kept: backward recomputes y = relu(gn(z)) from
      // the saved statistics, which halves the tower's activation memory.
      if (save) s.z[j] = z;
    }
    outs.push_back(final_.forward(cur));
    if (save) saved_.push_back(std::move(s));
  }
  return outs;
}

std::vector<Tensor> Head::backward(const std::vector<Tensor>& grads) {
  DS_CHECK(saved_.size() == grads.size(), "head backward: ", grads.size(), " level gradients for ", saved_.size(),
           " saved levels (run forward with gradients enabled first)");
  std::vector<Tensor> dxs;
  for (size_t l = 0; l < grads.size(); ++l) {
    Saved& s = saved_[l];
    const int last = kDepth - 1;
    Tensor y = norms_[last].recompute(s.z[last], s.s[last], true);
    Tensor d = final_.backward(y, grads[l], true);
    for (int j = last; j >= 0; --j) {
      // y is this unit's output (ReLU mask); the conv's input is the previous unit's output.
      Tensor dz = norms_[j].backward(s.z[j], y, s.s[j], d, true, nullptr);
      s.z[j] = Tensor();
      d = Tensor();
      y = j > 0 ? norms_[j - 1].recompute(s.z[j - 1], s.s[j - 1], true) : s.x;
      d = convs_[j].backward(y, dz, true);
    }
    dxs.push_back(d);
    s = Saved();
  }
  clear_saved();
  return dxs;
}

void Head::clear_saved() { saved_.clear(); }

}  // namespace ds::nn
