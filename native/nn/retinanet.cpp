#include "nn/retinanet.h"

#include <algorithm>
#include <cmath>

#include "core/cuda_runtime.h"
#include "nn/elementwise.h"

namespace ds::nn {

RetinaNet::RetinaNet(const RetinaNetConfig& cfg) : cfg_(cfg) {
  DS_CHECK(cfg.dtype == DType::Float32 || cfg.dtype == DType::Float64, "RetinaNet: dtype must be float32 or float64");
  resnet_spec(cfg.backbone.depth);  // validates the depth first
  DS_CHECK(!cfg.returned_layers.empty(), "RetinaNet: returned_layers must name at least one of layers 1..4");
  for (size_t i = 0; i < cfg.returned_layers.size(); ++i) {
    const int l = cfg.returned_layers[i];
    DS_CHECK(l >= 1 && l <= 4, "RetinaNet: returned layer ", l, " is out of range; returned_layers must be a subset of [1, 2, 3, 4]");
    DS_CHECK(i == 0 || l > cfg.returned_layers[i - 1], "RetinaNet: returned_layers must be strictly increasing, got ",
             cfg.returned_layers[i - 1], " before ", l);
  }
  DS_CHECK(cfg.num_classes >= 1, "RetinaNet: num_classes must be >= 1, got ", cfg.num_classes);
  DS_CHECK(cfg.num_anchors >= 1, "RetinaNet: num_anchors must be >= 1, got ", cfg.num_anchors);
  DS_CHECK(cfg.fpn_channels >= 1 && cfg.head_groups >= 1 && cfg.fpn_channels % cfg.head_groups == 0,
           "RetinaNet: the head GroupNorm's ", cfg.head_groups, " groups must divide the FPN channel count ",
           cfg.fpn_channels);
  store_.set_dtype(cfg.dtype);
  compute_dtype_ = cfg.dtype;
  Rng rng(cfg.seed);
  ResNetConfig bc = cfg.backbone;
  bc.num_layers = cfg.returned_layers.back();
  body_ = std::make_unique<ResNet>(store_, "feature_extractor.body", bc, rng);
  std::vector<int64_t> in_ch;
  for (int l : cfg.returned_layers) in_ch.push_back(body_->layer_channels(l));
  fpn_ = std::make_unique<FPN>(store_, "feature_extractor.fpn", in_ch, cfg.fpn_channels, rng);
  const double prior = 0.01;
  cls_head_ = std::make_unique<Head>(store_, "classification_head", cfg.fpn_channels,
                                     cfg.num_anchors * cfg.num_classes, cfg.head_groups, "cls_logits",
                                     -std::log((1.0 - prior) / prior), rng);
  box_head_ = std::make_unique<Head>(store_, "regression_head", cfg.fpn_channels, cfg.num_anchors * 6,
                                     cfg.head_groups, "bbox_reg", 0.0, rng);
  // Backward finishes the modules in this order (see set_grad_ready_hook); the
  // backbone (group 3) is reported block by block by ResNet::backward, its
  // list here only checks that every parameter belongs to a module.
  const char* prefixes[4] = {"regression_head.", "classification_head.", "feature_extractor.fpn.",
                             "feature_extractor.body."};
  ready_groups_.resize(4);
  for (auto& e : store_.entries()) {
    if (e.buffer || !e.trainable) continue;
    size_t g = 0;
    while (g < 4 && e.name.rfind(prefixes[g], 0) != 0) ++g;
    DS_CHECK(g < 4, "RetinaNet: internal: parameter '", e.name, "' belongs to no module");
    ready_groups_[g].push_back(&e);
  }
}

void RetinaNet::to(Device dev) {
  if (dev == device_) return;
  if (!dev.is_cpu()) cuda::check_device(dev);
  clear_saved();  // saved activations live on the old device
  // 16-bit mixed precision is GPU-only (set_precision): on the CPU the model
  // computes in its own dtype again, without compute copies.
  const bool drop_compute = dev.is_cpu() && compute_dtype_ != cfg_.dtype;
  for (ParamEntry& e : store_.entries()) {
    e.value = e.value.to(dev);
    if (e.grad.defined()) e.grad = e.grad.to(dev);
    if (drop_compute) e.compute = Tensor();
    if (e.compute.defined()) e.compute = e.compute.to(dev);
  }
  if (drop_compute) compute_dtype_ = cfg_.dtype;
  device_ = dev;
}

void RetinaNet::clear_saved() {
  saved_ = false;
  body_->clear_saved();
  fpn_->clear_saved();
  cls_head_->clear_saved();
  box_head_->clear_saved();
}

void RetinaNet::set_precision(DType dt) {
  if (dt != cfg_.dtype) {
    DS_CHECK(dt == DType::Float16 || dt == DType::BFloat16, "RetinaNet: compute precision must be the model's dtype (",
             dtype_name(cfg_.dtype), "), float16 or bfloat16, got ", dtype_name(dt));
    DS_CHECK(cfg_.dtype == DType::Float32, "RetinaNet: mixed precision needs float32 master weights, the model is ",
             dtype_name(cfg_.dtype));
    DS_CHECK(!device_.is_cpu(), "RetinaNet: ", dtype_name(dt),
             " mixed precision runs on a GPU only (the CPU convolution is float32/float64); move the model with "
             "to(cuda) first, or train in float32 on the CPU");
  }
  compute_dtype_ = dt;
  refresh_compute_copies();  // none at the model's own dtype
}

void RetinaNet::refresh_compute_copies() {
  for (ParamEntry& e : store_.entries()) {
    // Conv weights only ([Cout, k1, k2, k3, Cin]); norms and biases stay float32.
    if (compute_dtype_ == cfg_.dtype || e.buffer || e.value.dim() != 5) {
      e.compute = Tensor();
      continue;
    }
    e.compute = e.value.to(compute_dtype_, true);
  }
}

void RetinaNet::notify_ready(size_t group) {
  if (hook_ && !ready_groups_[group].empty()) hook_(ready_groups_[group]);
}

RetinaNet::~RetinaNet() = default;

Triple RetinaNet::size_divisible() const {
  Triple s = body_->layer_stride(cfg_.returned_layers.back());
  for (auto& v : s) v *= 2;  // the extra max-pooled level
  return s;
}

RetinaNet::Output RetinaNet::forward(const Tensor& x, bool save) {
  // Drop the activations of an earlier forward that was never back-propagated
  // before computing new ones (keeps the peak at one pass's worth).
  clear_saved();
  DS_CHECK(x.defined() && x.device() == device_, "RetinaNet: the input is on ",
           x.defined() ? x.device().str() : std::string("nothing"), " but the model is on ", device_.str(),
           "; move the input (or the model) to one device");
  DS_CHECK(x.dim() == 5, "RetinaNet: the input must be [N, D1, D2, D3, C] (channels last), got ", x.describe());
  DS_CHECK(x.dtype() == compute_dtype_, "RetinaNet: the input is ", dtype_name(x.dtype()), " but the model is ",
           dtype_name(compute_dtype_), compute_dtype_ != cfg_.dtype ? " (its mixed-precision compute dtype)" : "",
           "; convert the input");
  DS_CHECK(x.size(4) == cfg_.backbone.in_channels, "RetinaNet: the input has ", x.size(4),
           " channels but the model was built with n_input_channels = ", cfg_.backbone.in_channels);
  const Triple div = size_divisible();
  static const char* axis[3] = {"D1 (z)", "D2 (y)", "D3 (x)"};
  for (int i = 0; i < 3; ++i)
    DS_CHECK(x.size(1 + i) >= div[i] && x.size(1 + i) % div[i] == 0, "RetinaNet: input size ", x.size(1 + i),
             " along ", axis[i], " is too small for or not a multiple of the network's total stride ", div[i],
             " on that axis (input ", x.describe(), "); pad the volume to a multiple of ", div[i]);
  std::vector<Tensor> feats = body_->forward(x, training_, save);
  std::vector<Tensor> sel;
  for (int l : cfg_.returned_layers) sel.push_back(feats[l - 1]);
  feats.clear();
  std::vector<Tensor> levels = fpn_->forward(sel, save);
  sel.clear();
  Output out;
  out.cls = cls_head_->forward(levels, save);
  out.box = box_head_->forward(levels, save);
  cls_shapes_.clear();
  box_shapes_.clear();
  for (auto& t : out.cls) cls_shapes_.push_back(t.shape());
  for (auto& t : out.box) box_shapes_.push_back(t.shape());
  saved_ = save;
  return out;
}

Tensor RetinaNet::backward(const std::vector<Tensor>& cls_grads, const std::vector<Tensor>& box_grads, bool need_dx) {
  DS_CHECK(saved_, "RetinaNet backward: there is no forward pass to differentiate; call forward in training mode "
                   "(or with gradients enabled) right before backward, once per backward");
  const size_t L = num_levels();
  DS_CHECK(cls_grads.size() == L && box_grads.size() == L, "RetinaNet backward: expected ", L,
           " class-logit and ", L, " box gradients (one per level), got ", cls_grads.size(), " and ", box_grads.size());
  for (size_t i = 0; i < L; ++i) {
    DS_CHECK(cls_grads[i].defined() && cls_grads[i].shape() == cls_shapes_[i] &&
                 cls_grads[i].dtype() == compute_dtype_ && cls_grads[i].device() == device_,
             "RetinaNet backward: class-logit gradient of level ", i, " must be ", dtype_name(compute_dtype_),
             shape_str(cls_shapes_[i]), " like the forward output, got ",
             cls_grads[i].defined() ? cls_grads[i].describe() : std::string("nothing"));
    DS_CHECK(box_grads[i].defined() && box_grads[i].shape() == box_shapes_[i] &&
                 box_grads[i].dtype() == compute_dtype_ && box_grads[i].device() == device_,
             "RetinaNet backward: box gradient of level ", i, " must be ", dtype_name(compute_dtype_),
             shape_str(box_shapes_[i]), " like the forward output, got ",
             box_grads[i].defined() ? box_grads[i].describe() : std::string("nothing"), " on ", device_.str());
  }
  saved_ = false;  // the saved activations are consumed from here on
  // With a gradient-ready hook (data-parallel training) each module's
  // gradients are handed over as soon as they are final, so their all-reduce
  // overlaps the backward of the modules before them.
  // The regression head goes first: its parameters are registered last, so
  // they fill the reducer's first bucket, which can then be all-reduced while
  // the classification head's backward runs. (d + db is the same sum either way.)
  std::vector<Tensor> db = box_head_->backward(box_grads);
  notify_ready(0);
  std::vector<Tensor> d = cls_head_->backward(cls_grads);
  notify_ready(1);
  for (size_t i = 0; i < L; ++i) add_(d[i], db[i]);
  db.clear();
  std::vector<Tensor> dsel = fpn_->backward(d);
  notify_ready(2);
  d.clear();
  std::vector<Tensor> dfeat(size_t(cfg_.returned_layers.back()));
  for (size_t i = 0; i < cfg_.returned_layers.size(); ++i) dfeat[cfg_.returned_layers[i] - 1] = dsel[i];
  dsel.clear();
  // The backbone reports block by block (ResNet::backward), so the buckets
  // holding deep layers are all-reduced while the shallower ones run.
  ResNet::ReadyFn body_ready;
  if (hook_) {
    body_ready = [this](const std::vector<ParamEntry*>& ps) {
      std::vector<ParamEntry*> ready;
      for (ParamEntry* e : ps)
        if (!e->buffer && e->trainable) ready.push_back(e);
      if (!ready.empty()) hook_(ready);
    };
  }
  return body_->backward(dfeat, need_dx, body_ready);
}

}  // namespace ds::nn
