#include "nn/resnet.h"

#include "nn/elementwise.h"
#include "nn/maxpool.h"

namespace ds::nn {

ResNetSpec resnet_spec(int depth) {
  switch (depth) {
    case 10: return {false, {1, 1, 1, 1}};
    case 18: return {false, {2, 2, 2, 2}};
    case 34: return {false, {3, 4, 6, 3}};
    case 50: return {true, {3, 4, 6, 3}};
    case 101: return {true, {3, 4, 23, 3}};
    case 152: return {true, {3, 8, 36, 3}};
    case 200: return {true, {3, 24, 36, 3}};
    default:
      DS_FAIL("ResNet: unknown depth ", depth, "; supported depths are 10, 18, 34 (basic blocks) and 50, 101, 152, 200 "
              "(bottleneck blocks)");
  }
}

int64_t resnet_expansion(int depth) { return resnet_spec(depth).bottleneck ? 4 : 1; }

// One residual block (basic: two 3x3x3 convs; bottleneck: 1x1x1, 3x3x3, 1x1x1).
class ResBlock {
 public:
  ResBlock(ParamStore& ps, const std::string& p, bool bottleneck, int64_t cin, int64_t planes, int64_t stride,
           const ResNetConfig& cfg, Rng& rng)
      : bottleneck_(bottleneck) {
    const Triple one{1, 1, 1}, three{3, 3, 3}, zero{0, 0, 0}, s{stride, stride, stride};
    const int64_t exp = bottleneck ? 4 : 1, cout = planes * exp;
    auto norm = [&](const std::string& name, int64_t c) { return NormUnit(ps, p + "." + name, c, cfg.norm, cfg.norm_groups); };
    if (bottleneck) {
      c1_ = ConvUnit(ps, p + ".conv1", cin, planes, one, one, zero, false);
      n1_ = norm("bn1", planes);
      c2_ = ConvUnit(ps, p + ".conv2", planes, planes, three, s, one, false);
      n2_ = norm("bn2", planes);
      c3_ = ConvUnit(ps, p + ".conv3", planes, cout, one, one, zero, false);
      n3_ = norm("bn3", cout);
    } else {
      c1_ = ConvUnit(ps, p + ".conv1", cin, planes, three, s, one, false);
      n1_ = norm("bn1", planes);
      c2_ = ConvUnit(ps, p + ".conv2", planes, planes, three, one, one, false);
      n2_ = norm("bn2", planes);
    }
    has_ds_ = stride != 1 || cin != cout;
    if (has_ds_) {
      dsc_ = ConvUnit(ps, p + ".downsample.0", cin, cout, one, s, zero, true);
      dsn_ = norm("downsample.1", cout);
    }
    for (ConvUnit* c : {&c1_, &c2_, &c3_, &dsc_}) {
      if (!c->weight) continue;
      init_kaiming_normal_fan_out(c->weight->value, rng);
      if (c->bias) init_conv_bias_default(c->bias->value, c->weight->value, rng);
    }
  }

  Tensor forward(const Tensor& x, bool training, bool save) {
    NormSaved s1, s2, s3, sd;
    Tensor z1 = c1_.forward(x);
    Tensor y1 = n1_.forward(z1, Tensor(), true, training, &s1);
    Tensor z2 = c2_.forward(y1);
    Tensor residual, zd, y2, z3, out;
    if (has_ds_) {
      zd = dsc_.forward(x);
      residual = dsn_.forward(zd, Tensor(), false, training, &sd);
    } else {
      residual = x;
    }
    if (bottleneck_) {
      y2 = n2_.forward(z2, Tensor(), true, training, &s2);
      z3 = c3_.forward(y2);
      out = n3_.forward(z3, residual, true, training, &s3);
    } else {
      out = n2_.forward(z2, residual, true, training, &s2);
    }
    if (save) {
      x_ = x, z1_ = z1, y1_ = y1, z2_ = z2, y2_ = y2, z3_ = z3, zd_ = zd, out_ = out;
      s1_ = s1, s2_ = s2, s3_ = s3, sd_ = sd;
      saved_ = true;
    }
    return out;
  }

  // dL/dx of the block; frees the saved activations.
  Tensor backward(const Tensor& dout) {
    DS_CHECK(saved_, "ResNet backward: no saved forward pass (run forward with gradients enabled first)");
    Tensor g_res, dy1;
    if (bottleneck_) {
      Tensor dz3 = n3_.backward(z3_, out_, s3_, dout, true, &g_res);
      Tensor dy2 = c3_.backward(y2_, dz3, true);
      dz3 = Tensor();
      Tensor dz2 = n2_.backward(z2_, y2_, s2_, dy2, true, nullptr);
      dy1 = c2_.backward(y1_, dz2, true);
    } else {
      Tensor dz2 = n2_.backward(z2_, out_, s2_, dout, true, &g_res);
      dy1 = c2_.backward(y1_, dz2, true);
    }
    Tensor dz1 = n1_.backward(z1_, y1_, s1_, dy1, true, nullptr);
    dy1 = Tensor();
    Tensor dx = c1_.backward(x_, dz1, true);
    if (has_ds_) {
      Tensor dzd = dsn_.backward(zd_, Tensor(), sd_, g_res, false, nullptr);
      add_(dx, dsc_.backward(x_, dzd, true));
    } else {
      add_(dx, g_res);
    }
    clear();
    return dx;
  }

  // This block's parameters (not the norm buffers), for the gradient-ready report.
  std::vector<ParamEntry*> params() const {
    std::vector<ParamEntry*> out;
    for (const ConvUnit* c : {&c1_, &c2_, &c3_, &dsc_}) {
      if (c->weight) out.push_back(c->weight);
      if (c->bias) out.push_back(c->bias);
    }
    for (const NormUnit* n : {&n1_, &n2_, &n3_, &dsn_})
      if (n->gamma) out.push_back(n->gamma), out.push_back(n->beta);
    return out;
  }

  void collect_norms(std::vector<NormUnit*>& out) {
    for (NormUnit* n : {&n1_, &n2_, &n3_, &dsn_})
      if (n->gamma) out.push_back(n);
  }

  void clear() {
    x_ = z1_ = y1_ = z2_ = y2_ = z3_ = zd_ = out_ = Tensor();
    s1_ = s2_ = s3_ = sd_ = NormSaved();
    saved_ = false;
  }

 private:
  bool bottleneck_, has_ds_ = false;
  ConvUnit c1_, c2_, c3_, dsc_;
  NormUnit n1_, n2_, n3_, dsn_;
  Tensor x_, z1_, y1_, z2_, y2_, z3_, zd_, out_;
  NormSaved s1_, s2_, s3_, sd_;
  bool saved_ = false;
};

ResNet::ResNet(ParamStore& ps, const std::string& prefix, const ResNetConfig& cfg, Rng& rng)
    : cfg_(cfg), spec_(resnet_spec(cfg.depth)) {
  DS_CHECK(cfg.in_channels >= 1, "ResNet: n_input_channels must be >= 1, got ", cfg.in_channels);
  DS_CHECK(cfg.num_layers >= 1 && cfg.num_layers <= 4, "ResNet: layers to build must be 1..4, got ", cfg.num_layers);
  for (int i = 0; i < 3; ++i) {
    DS_CHECK(cfg.conv1_size[i] >= 1 && cfg.conv1_stride[i] >= 1, "ResNet: conv1_t_size and conv1_t_stride must be >= 1 "
             "on every axis, got size ", cfg.conv1_size[i], " and stride ", cfg.conv1_stride[i]);
  }
  for (int l = 0; l < 4; ++l)
    DS_CHECK(cfg.widths[l] >= 1, "ResNet: block widths must be >= 1, got ", cfg.widths[l], " for layer ", l + 1);
  const Triple pad{cfg.conv1_size[0] / 2, cfg.conv1_size[1] / 2, cfg.conv1_size[2] / 2};
  conv1_ = ConvUnit(ps, prefix + ".conv1", cfg.in_channels, cfg.widths[0], cfg.conv1_size, cfg.conv1_stride, pad, false);
  init_kaiming_normal_fan_out(conv1_.weight->value, rng);
  bn1_ = NormUnit(ps, prefix + ".bn1", cfg.widths[0], cfg.norm, cfg.norm_groups);
  int64_t cin = cfg.widths[0];
  const int64_t exp = spec_.bottleneck ? 4 : 1;
  for (int l = 0; l < cfg.num_layers; ++l) {
    std::vector<std::unique_ptr<ResBlock>> blocks;
    for (int b = 0; b < spec_.blocks[l]; ++b) {
      const int64_t stride = (l > 0 && b == 0) ? 2 : 1;
      const std::string p = prefix + ".layer" + std::to_string(l + 1) + "." + std::to_string(b);
      blocks.push_back(std::make_unique<ResBlock>(ps, p, spec_.bottleneck, cin, cfg.widths[l], stride, cfg, rng));
      cin = cfg.widths[l] * exp;
    }
    layers_.push_back(std::move(blocks));
  }
}

ResNet::~ResNet() = default;

int64_t ResNet::layer_channels(int l) const { return cfg_.widths[l - 1] * (spec_.bottleneck ? 4 : 1); }

Triple ResNet::layer_stride(int l) const {
  Triple s = cfg_.conv1_stride;
  for (auto& v : s) v *= (cfg_.max_pool ? 2 : 1) * (int64_t(1) << (l - 1));
  return s;
}

std::vector<Tensor> ResNet::forward(const Tensor& x, bool training, bool save) {
  clear_saved();
  DS_CHECK(x.dim() == 5 && x.size(4) == cfg_.in_channels, "ResNet: the input must be [N, D1, D2, D3, ",
           cfg_.in_channels, "] (n_input_channels = ", cfg_.in_channels, "), got ", x.describe());
  NormSaved s0;
  Tensor z0 = conv1_.forward(x);
  Tensor y0 = bn1_.forward(z0, Tensor(), true, training, &s0);
  Tensor cur = y0, argmax;
  if (cfg_.max_pool) {
    MaxPoolParams mp;
    mp.kernel = {3, 3, 3};
    mp.stride = {2, 2, 2};
    mp.padding = {1, 1, 1};
    cur = maxpool3d_forward(y0, mp, save ? &argmax : nullptr);
  }
  if (save) {
    x_ = x, z0_ = z0, y0_ = y0, argmax_ = argmax, s0_ = s0;
    saved_ = true;
  }
  z0 = Tensor();
  if (!save) y0 = Tensor();
  std::vector<Tensor> outs;
  for (auto& layer : layers_) {
    for (auto& b : layer) cur = b->forward(cur, training, save);
    outs.push_back(cur);
  }
  return outs;
}

Tensor ResNet::backward(const std::vector<Tensor>& grads, bool need_dx, const ReadyFn& on_ready) {
  DS_CHECK(saved_, "ResNet backward: no saved forward pass (run forward in training mode, or with gradients enabled)");
  DS_CHECK(grads.size() == layers_.size() && grads.back().defined(), "internal: ResNet backward needs ",
           layers_.size(), " layer gradients, the last one defined");
  Tensor d = grads.back();
  for (int l = int(layers_.size()) - 1; l >= 0; --l) {
    for (int b = int(layers_[l].size()) - 1; b >= 0; --b) {
      d = layers_[l][b]->backward(d);
      // Each block's parameters are used by that block alone: final now, so
      // their all-reduce can overlap the backward of the blocks before it.
      if (on_ready) on_ready(layers_[l][b]->params());
    }
    if (l > 0 && grads[l - 1].defined()) add_(d, grads[l - 1]);
  }
  if (cfg_.max_pool) d = maxpool3d_backward(d, argmax_, y0_.shape());
  Tensor dz0 = bn1_.backward(z0_, y0_, s0_, d, true, nullptr);
  d = Tensor();
  Tensor dx = conv1_.backward(x_, dz0, need_dx);
  clear_saved();
  if (on_ready) on_ready({conv1_.weight, bn1_.gamma, bn1_.beta});
  return dx;
}

std::vector<NormUnit*> ResNet::norms() {
  std::vector<NormUnit*> out{&bn1_};
  for (auto& layer : layers_)
    for (auto& b : layer) b->collect_norms(out);
  return out;
}

int ResNet::set_batchnorm_sync(const std::shared_ptr<BatchNormSync>& sync) {
  int n = 0;
  for (NormUnit* u : norms()) {
    if (u->kind != NormKind::Batch) continue;
    u->sync = sync;
    ++n;
  }
  return n;
}

void ResNet::clear_saved() {
  x_ = z0_ = y0_ = argmax_ = Tensor();
  s0_ = NormSaved();
  saved_ = false;
  for (auto& layer : layers_)
    for (auto& b : layer) b->clear();
}

}  // namespace ds::nn
