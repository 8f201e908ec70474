#include "nn/fpn.h"

#include "nn/elementwise.h"
#include "nn/maxpool.h"
#include "nn/upsample.h"

namespace ds::nn {

FPN::FPN(ParamStore& ps, const std::string& prefix, const std::vector<int64_t>& in_channels, int64_t out, Rng& rng) {
  DS_CHECK(!in_channels.empty(), "FPN: at least one input level is needed");
  DS_CHECK(out >= 1, "FPN: output channels must be >= 1, got ", out);
  const Triple one{1, 1, 1}, three{3, 3, 3}, zero{0, 0, 0};
  // Registration order follows MONAI: all inner_blocks, then all layer_blocks.
  for (size_t i = 0; i < in_channels.size(); ++i)
    inner_.emplace_back(ps, prefix + ".inner_blocks." + std::to_string(i), in_channels[i], out, one, one, zero, true);
  for (size_t i = 0; i < in_channels.size(); ++i)
    layer_.emplace_back(ps, prefix + ".layer_blocks." + std::to_string(i), out, out, three, one, one, true);
  for (auto* v : {&inner_, &layer_})
    for (auto& c : *v) {
      init_kaiming_uniform(c.weight->value, rng, 1.0);
      c.bias->value.zero_();
    }
}

std::vector<Tensor> FPN::forward(const std::vector<Tensor>& xs, bool save) {
  clear_saved();
  const size_t k = inner_.size();
  DS_CHECK(xs.size() == k, "internal: FPN expects ", k, " inputs, got ", xs.size());
  std::vector<Tensor> outs(k), merged(k);
  Tensor m = inner_[k - 1].forward(xs[k - 1]);
  merged[k - 1] = m;
  outs[k - 1] = layer_[k - 1].forward(m);
  for (int i = int(k) - 2; i >= 0; --i) {
    Tensor lat = inner_[i].forward(xs[i]);
    Tensor td = upsample_nearest_forward(m, {lat.size(1), lat.size(2), lat.size(3)});
    add_(lat, td);
    m = lat;
    merged[i] = m;
    outs[i] = layer_[i].forward(m);
    if (!save) merged[i + 1] = Tensor();
  }
  MaxPoolParams mp;
  mp.stride = {2, 2, 2};
  Tensor argmax;
  outs.push_back(maxpool3d_forward(outs[k - 1], mp, save ? &argmax : nullptr));
  if (save) {
    xs_ = xs, merged_ = merged, argmax_ = argmax, last_shape_ = outs[k - 1].shape();
    saved_ = true;
  }
  return outs;
}

std::vector<Tensor> FPN::backward(const std::vector<Tensor>& grads) {
  DS_CHECK(saved_, "FPN backward: no saved forward pass (run forward with gradients enabled first)");
  const size_t k = inner_.size();
  DS_CHECK(grads.size() == k + 1, "internal: FPN backward expects ", k + 1, " level gradients, got ", grads.size());
  std::vector<Tensor> dP(grads.begin(), grads.begin() + k);
  Tensor dextra = maxpool3d_backward(grads[k], argmax_, last_shape_);
  if (dP[k - 1].defined())
    add_(dP[k - 1], dextra);
  else
    dP[k - 1] = dextra;
  std::vector<Tensor> dxs(k);
  // m_i feeds P_i and (resized) m_{i-1}: go from the finest level up.
  Tensor dm_prev;
  for (size_t i = 0; i < k; ++i) {
    Tensor dm;
    if (dP[i].defined()) dm = layer_[i].backward(merged_[i], dP[i], true);
    if (i > 0) {
      Tensor up = upsample_nearest_backward(dm_prev, merged_[i].shape());
      if (dm.defined())
        add_(dm, up);
      else
        dm = up;
    }
    DS_CHECK(dm.defined(), "internal: FPN level ", i, " received no gradient");
    dxs[i] = inner_[i].backward(xs_[i], dm, true);
    if (i > 0) merged_[i - 1] = Tensor();
    dm_prev = dm;
  }
  clear_saved();
  return dxs;
}

void FPN::clear_saved() {
  xs_.clear();
  merged_.clear();
  argmax_ = Tensor();
  saved_ = false;
}

}  // namespace ds::nn
