#include "nn/units.h"

#include "nn/activation.h"
#include "nn/batchnorm.h"
#include "nn/elementwise.h"
#include "nn/groupnorm.h"

namespace ds::nn {

ConvUnit::ConvUnit(ParamStore& ps, const std::string& prefix, int64_t cin_, int64_t cout_, const Triple& k,
                   const Triple& stride, const Triple& padding, bool has_bias)
    : cin(cin_), cout(cout_) {
  Shape ws{cout, k[0], k[1], k[2], cin};
  weight = ps.add_param(prefix + ".weight", ws, monai_conv_shape(ws), ps.dtype());
  if (has_bias) bias = ps.add_param(prefix + ".bias", {cout}, {cout}, ps.dtype());
  params.stride = stride;
  params.padding = padding;
}

// Mixed precision: the conv runs on the 16-bit compute copy of the weight
// (ParamEntry::compute, refreshed by the optimizer step); the bias stays the
// float32 master (the conv accepts a float32 bias with 16-bit activations).
static const Tensor& conv_weight(const ParamEntry* w) { return w->compute.defined() ? w->compute : w->value; }

Tensor ConvUnit::forward(const Tensor& x) const {
  return conv3d_forward(x, conv_weight(weight), bias ? bias->value : Tensor(), params);
}

// Mixed precision: dL/dw (and dL/db) go straight into float32 master
// gradients (the conv accumulates them in float32 from 16-bit x and dy).
Tensor ConvUnit::backward_mixed(const Tensor& x, const Tensor& dy, bool need_dx) const {
  const bool need_w = weight->trainable, need_b = bias && bias->trainable;
  Conv3dGrads g;
  bool accumulate = false;
  if (need_w || need_b) {
    const bool set_w = need_w && weight->grad_set, set_b = need_b && bias->grad_set;
    accumulate = set_w || set_b;
    for (ParamEntry* e : {need_w ? weight : nullptr, need_b ? bias : nullptr}) {
      if (!e) continue;
      if (accumulate) {
        ParamStore::grad(*e);  // zeros when only the other one has a gradient yet
      } else {
        e->grad = Tensor::empty(e->value.shape(), e->value.dtype(), e->value.device());
        e->grad_set = true;
      }
    }
    if (need_w) g.grad_weight = weight->grad;
    if (need_b) g.grad_bias = bias->grad;
  }
  // grad_input cannot share an accumulating call (it would be added to).
  if (need_dx && !accumulate) g.grad_input = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (g.grad_weight.defined() || g.grad_bias.defined() || g.grad_input.defined())
    conv3d_backward_into(x, conv_weight(weight), dy, params, g, accumulate);
  if (need_dx && accumulate)
    return conv3d_backward(x, conv_weight(weight), dy, params, true, false, false).grad_input;
  return need_dx ? g.grad_input : Tensor();
}

Tensor ConvUnit::backward(const Tensor& x, const Tensor& dy, bool need_dx) const {
  if (weight->compute.defined()) return backward_mixed(x, dy, need_dx);
  const bool need_b = bias && bias->trainable;
  // A layer applied more than once per step (the shared head convs run once
  // per pyramid level) adds its later weight gradients straight into the
  // stored gradient: no fresh multi-MiB tensor (page faults) and no extra add pass.
  if (weight->trainable && weight->grad_set && (!need_b || bias->grad_set)) {
    Conv3dGrads acc;
    acc.grad_weight = weight->grad;
    if (need_b) acc.grad_bias = bias->grad;
    conv3d_backward_into(x, weight->value, dy, params, acc, /*accumulate=*/true);
    if (!need_dx) return Tensor();
    return conv3d_backward(x, weight->value, dy, params, true, false, false).grad_input;
  }
  Conv3dGrads g = conv3d_backward(x, weight->value, dy, params, need_dx, weight->trainable, need_b);
  if (g.grad_weight.defined()) ParamStore::accumulate_grad(*weight, g.grad_weight);
  if (g.grad_bias.defined()) ParamStore::accumulate_grad(*bias, g.grad_bias);
  return g.grad_input;
}

NormUnit::NormUnit(ParamStore& ps, const std::string& prefix, int64_t c, NormKind k, int64_t g)
    : kind(k), groups(g), channels(c) {
  const DType dt = ps.dtype();
  gamma = ps.add_param(prefix + ".weight", {c}, {c}, dt);
  beta = ps.add_param(prefix + ".bias", {c}, {c}, dt);
  gamma->value.fill_(1.0);
  if (kind == NormKind::Batch) {
    running_mean = ps.add_buffer(prefix + ".running_mean", {c}, dt);
    running_var = ps.add_buffer(prefix + ".running_var", {c}, dt);
    running_var->value.fill_(1.0);
    // A 0-dim counter in PyTorch; kept as a float scalar here (exact up to 2^24 steps in float32).
    num_batches = ps.add_buffer(prefix + ".num_batches_tracked", {}, dt);
  } else {
    DS_CHECK(groups >= 1 && c % groups == 0, "GroupNorm at ", prefix, ": ", groups,
             " groups do not divide ", c, " channels; choose a group count that divides every width");
  }
}

Tensor NormUnit::forward(const Tensor& x, const Tensor& residual, bool relu, bool training, NormSaved* saved) const {
  if (kind == NormKind::Batch) {
    BatchNormOptions o;
    o.training = training;
    o.momentum = momentum;
    o.eps = eps;
    o.relu = relu;
    o.sync = training ? sync.get() : nullptr;
    BatchNormSaved s;
    Tensor y = batchnorm_forward(x, gamma->value, beta->value, running_mean->value, running_var->value, residual, o, &s);
    if (training) {
      Tensor& nb = num_batches->value;
      if (nb.device().is_cpu())
        nb.fill_(nb.to(DType::Float64).data<double>()[0] + 1.0);
      else  // on a GPU: += 1 by a kernel on the compute stream (no host read, no sync)
        axpy_(nb, 1.0, Tensor::full({}, 1.0, nb.dtype(), nb.device()));
    }
    if (saved) *saved = {s.mean, s.invstd, training, training ? sync : nullptr};
    return y;
  }
  GroupNormSaved s;
  Tensor y;
  if (residual.defined()) {
    y = groupnorm_forward(x, gamma->value, beta->value, groups, eps, false, &s);
    add_(y, residual);
    if (relu) y = relu_forward(y);
  } else {
    y = groupnorm_forward(x, gamma->value, beta->value, groups, eps, relu, &s);
  }
  if (saved) *saved = {s.mean, s.rstd, training, nullptr};
  return y;
}

Tensor NormUnit::recompute(const Tensor& x, const NormSaved& saved, bool relu) const {
  DS_CHECK(kind == NormKind::Group, "internal: NormUnit::recompute supports GroupNorm only");
  return groupnorm_recompute(x, gamma->value, beta->value, groups, eps, {saved.mean, saved.scale}, relu);
}

Tensor NormUnit::backward(const Tensor& x, const Tensor& y, const NormSaved& saved, const Tensor& dy, bool relu,
                          Tensor* grad_pre) const {
  NormGrads g;
  if (kind == NormKind::Batch) {
    BatchNormOptions o;
    o.training = saved.training;
    o.eps = eps;
    o.relu = relu;
    o.sync = saved.sync.get();
    g = batchnorm_backward(x, y, gamma->value, {saved.mean, saved.scale}, dy, o, grad_pre != nullptr);
    if (grad_pre) *grad_pre = g.grad_pre;
  } else {
    if (grad_pre) {
      *grad_pre = relu ? relu_backward(y, dy) : dy;
      g = groupnorm_backward(x, Tensor(), gamma->value, groups, {saved.mean, saved.scale}, *grad_pre, false);
    } else {
      g = groupnorm_backward(x, y, gamma->value, groups, {saved.mean, saved.scale}, dy, relu);
    }
  }
  if (gamma->trainable) ParamStore::accumulate_grad(*gamma, g.grad_gamma);
  if (beta->trainable) ParamStore::accumulate_grad(*beta, g.grad_beta);
  return g.grad_input;
}

}  // namespace ds::nn
