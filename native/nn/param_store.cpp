#include "nn/param_store.h"

#include "nn/elementwise.h"

namespace ds::nn {

ParamEntry* ParamStore::add_param(const std::string& name, const Shape& shape, const Shape& monai_shape, DType dt) {
  DS_CHECK(!find(name), "internal: parameter ", name, " registered twice");
  ParamEntry e;
  e.name = name;
  e.value = Tensor::zeros(shape, dt);
  e.monai_shape = monai_shape;
  entries_.push_back(std::move(e));
  return &entries_.back();
}

ParamEntry* ParamStore::add_buffer(const std::string& name, const Shape& shape, DType dt) {
  DS_CHECK(!find(name), "internal: buffer ", name, " registered twice");
  ParamEntry e;
  e.name = name;
  e.value = Tensor::zeros(shape, dt);
  e.monai_shape = shape;
  e.buffer = true;
  e.trainable = false;
  entries_.push_back(std::move(e));
  return &entries_.back();
}

ParamEntry* ParamStore::find(const std::string& name) {
  for (auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

void ParamStore::zero_grad() {
  for (auto& e : entries_) {
    e.grad = Tensor();
    e.grad_set = false;
  }
}

void ParamStore::accumulate_grad(ParamEntry& e, const Tensor& g) {
  DS_CHECK(!e.buffer, "internal: gradient for buffer ", e.name);
  DS_CHECK(g.shape() == e.value.shape() && g.dtype() == e.value.dtype(), "internal: gradient for ", e.name, " is ",
           g.describe(), ", expected ", e.value.describe());
  if (!e.grad_set) {
    e.grad = g;
    e.grad_set = true;
  } else {
    add_(e.grad, g);
  }
}

Tensor& ParamStore::grad(ParamEntry& e) {
  DS_CHECK(!e.buffer, "'", e.name, "' is a buffer and has no gradient");
  if (!e.grad_set) {
    e.grad = Tensor::zeros(e.value.shape(), e.value.dtype(), e.value.device());
    e.grad_set = true;
  }
  return e.grad;
}

int64_t ParamStore::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& e : entries_)
    if (!e.buffer && (!trainable_only || e.trainable)) n += e.value.numel();
  return n;
}

Shape monai_conv_shape(const Shape& s) {
  DS_CHECK(s.size() == 5, "internal: conv weight shape must have 5 dims, got ", shape_str(s));
  return {s[0], s[4], s[3], s[2], s[1]};
}

}  // namespace ds::nn
