#include "nn/sgd.h"

#include "core/thread_pool.h"
#include "nn/nn_util.h"
#include "nn/sgd_multi.h"

namespace ds::nn {

void validate_sgd_options(const SGDOptions& o) {
  DS_CHECK(o.lr >= 0, "SGD: learning rate must be >= 0, got ", o.lr);
  DS_CHECK(o.momentum >= 0, "SGD: momentum must be >= 0, got ", o.momentum);
  DS_CHECK(o.weight_decay >= 0, "SGD: weight decay must be >= 0, got ", o.weight_decay);
  DS_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
           "SGD: Nesterov momentum requires momentum > 0 and dampening 0 (as torch.optim.SGD)");
}

SGD::SGD(ParamStore& store, const SGDOptions& o) : store_(store), opt_(o) {
  validate_sgd_options(o);
  for (auto& e : store_.entries())
    if (!e.buffer && e.trainable) params_.push_back(&e);
  bufs_.resize(params_.size());
}

namespace {
template <class T>
void update(T* p, const T* g, T* buf, bool first, int64_t n, const SGDOptions& o) {
  const T lr = T(o.lr), mom = T(o.momentum), damp = T(1.0 - o.dampening), wd = T(o.weight_decay);
  parallel_for(0, n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T d = g[i];
      if (o.weight_decay != 0) d += wd * p[i];
      if (buf) {
        buf[i] = first ? d : mom * buf[i] + damp * d;
        d = o.nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  });
}
}  // namespace

void SGD::step(double grad_scale) {
  validate_sgd_options(opt_);
  bool fused = grad_scale != 1.0;
  for (ParamEntry* e : params_) fused |= !e->value.device().is_cpu() || e->compute.defined();
  if (fused) {
    // Two fused launches: parameters with a 16-bit compute copy (written by
    // the kernel) and the others.
    for (int with_copy = 1; with_copy >= 0; --with_copy) {
      SgdMultiArgs a;
      a.opt = opt_;
      a.grad_scale = grad_scale;
      std::vector<size_t> idx;
      for (size_t k = 0; k < params_.size(); ++k) {
        ParamEntry& e = *params_[k];
        if (e.compute.defined() != bool(with_copy)) continue;
        idx.push_back(k);
        a.params.push_back(e.value);
        a.grads.push_back(ParamStore::grad(e));
        // Buffers follow the parameters when the model moved (RetinaNet::to).
        if (bufs_[k].defined() && bufs_[k].device() != e.value.device()) bufs_[k] = bufs_[k].to(e.value.device());
        a.bufs.push_back(bufs_[k]);
        if (with_copy) a.compute.push_back(e.compute);
      }
      if (idx.empty()) continue;
      if (opt_.momentum == 0) a.bufs.clear();
      sgd_multi_step(a);
      if (opt_.momentum != 0)
        for (size_t i = 0; i < idx.size(); ++i) bufs_[idx[i]] = a.bufs[i];
    }
    return;
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    ParamEntry& e = *params_[k];
    bool first = false;
    if (opt_.momentum != 0 && !bufs_[k].defined()) {
      bufs_[k] = Tensor::empty(e.value.shape(), e.value.dtype());
      first = true;
    }
    Tensor& b = bufs_[k];
    dispatch_float(e.value.dtype(), "SGD", [&](auto tag) {
      using T = decltype(tag);
      update<T>(e.value.data<T>(), ParamStore::grad(e).data<T>(), opt_.momentum != 0 ? b.data<T>() : nullptr, first,
                e.value.numel(), opt_);
    });
  }
}

void SGD::to(Device dev) {
  for (Tensor& b : bufs_)
    if (b.defined()) b = b.to(dev);
}

std::vector<std::pair<std::string, Tensor>> SGD::state() const {
  std::vector<std::pair<std::string, Tensor>> s;
  for (size_t k = 0; k < params_.size(); ++k)
    if (bufs_[k].defined()) s.emplace_back(params_[k]->name, bufs_[k].clone());
  return s;
}

void SGD::load_state(const std::vector<std::pair<std::string, Tensor>>& s) {
  std::vector<Tensor> nb(params_.size());
  for (auto& [name, t] : s) {
    size_t k = 0;
    while (k < params_.size() && params_[k]->name != name) ++k;
    DS_CHECK(k < params_.size(), "SGD state: unknown parameter '", name, "' (not a trainable parameter of this model)");
    DS_CHECK(t.shape() == params_[k]->value.shape(), "SGD state: momentum buffer for '", name, "' has shape ",
             shape_str(t.shape()), ", expected ", shape_str(params_[k]->value.shape()));
    nb[k] = t.to(params_[k]->value.dtype(), true).to(params_[k]->value.device());
  }
  bufs_ = std::move(nb);
}

}  // namespace ds::nn
