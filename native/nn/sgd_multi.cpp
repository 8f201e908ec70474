#include "nn/sgd_multi.h"

#include "core/thread_pool.h"
#include "nn/nn_cuda.h"

namespace ds::nn {

void check_sgd_multi_args(const SgdMultiArgs& a) {
  validate_sgd_options(a.opt);
  const size_t n = a.params.size();
  DS_CHECK(a.grads.size() == n, "SGD: ", n, " parameters but ", a.grads.size(), " gradients");
  DS_CHECK(a.bufs.empty() || a.bufs.size() == n, "SGD: ", n, " parameters but ", a.bufs.size(), " momentum buffers");
  DS_CHECK(a.compute.empty() || a.compute.size() == n, "SGD: ", n, " parameters but ", a.compute.size(),
           " compute copies");
  DS_CHECK(a.grad_scale > 0 && a.grad_scale < 1e300, "SGD: gradient scale must be positive and finite, got ",
           a.grad_scale);
  const Device dev = n ? a.params[0].device() : Device::cpu();
  for (size_t k = 0; k < n; ++k) {
    const Tensor& p = a.params[k];
    const Tensor& g = a.grads[k];
    DS_CHECK(p.defined() && g.defined(), "SGD: parameter ", k, " or its gradient is undefined");
    DS_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, "SGD: parameter ", k,
             " must be float32 or float64 (the master weights), got ", p.describe());
    const bool g16 = g.dtype() == DType::Float16 || g.dtype() == DType::BFloat16;
    DS_CHECK(g.dtype() == p.dtype() || (g16 && p.dtype() == DType::Float32), "SGD: gradient ", k, " (",
             g.describe(), ") must have the parameter's dtype, or be 16-bit for a float32 parameter");
    DS_CHECK(g.shape() == p.shape(), "SGD: gradient ", k, " has shape ", shape_str(g.shape()), ", parameter ",
             shape_str(p.shape()));
    DS_CHECK(p.device() == dev && g.device() == dev, "SGD: all parameters and gradients must be on ", dev.str(),
             "; parameter ", k, " is on ", p.device().str(), ", its gradient on ", g.device().str());
    if (!a.bufs.empty() && a.bufs[k].defined())
      DS_CHECK(a.bufs[k].shape() == p.shape() && a.bufs[k].dtype() == p.dtype() && a.bufs[k].device() == dev,
               "SGD: momentum buffer ", k, " must match its parameter ", p.describe(), ", got ", a.bufs[k].describe());
    if (!a.compute.empty()) {
      const Tensor& c = a.compute[k];
      DS_CHECK(c.defined() && c.shape() == p.shape() && c.device() == dev &&
                   (c.dtype() == DType::Float16 || c.dtype() == DType::BFloat16) && p.dtype() == DType::Float32,
               "SGD: compute copy ", k, " must be a float16/bfloat16 tensor shaped like its float32 parameter ",
               p.describe(), ", got ", c.describe());
    }
  }
}

namespace {

float load16(const uint16_t* p, int64_t i, DType dt) {
  return dt == DType::Float16 ? half_to_float(p[i]) : bf16_to_float(p[i]);
}

template <class T>
void step_one(Tensor& pt, const Tensor& gt, T* buf, bool first, uint16_t* copy, DType copy_dt,
              const SgdMultiArgs& a) {
  const SGDOptions& o = a.opt;
  const T lr = T(o.lr), mom = T(o.momentum), damp = T(1.0 - o.dampening), wd = T(o.weight_decay);
  const T scale = T(a.grad_scale);
  T* p = pt.data<T>();
  const DType gdt = gt.dtype();
  const T* g = gdt == pt.dtype() ? gt.data<T>() : nullptr;
  const uint16_t* g16 = g ? nullptr : gt.data_u16();
  parallel_for(0, pt.numel(), 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T d = (g ? g[i] : T(load16(g16, i, gdt))) * scale;
      if (o.weight_decay != 0) d += wd * p[i];
      if (buf) {
        buf[i] = first ? d : mom * buf[i] + damp * d;
        d = o.nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] -= lr * d;
      if (copy) copy[i] = copy_dt == DType::Float16 ? float_to_half(float(p[i])) : float_to_bf16(float(p[i]));
    }
  });
}

}  // namespace

void sgd_multi_step_cpu(SgdMultiArgs& a) {
  const bool mom = a.opt.momentum != 0;
  if (mom && a.bufs.empty()) a.bufs.resize(a.params.size());
  for (size_t k = 0; k < a.params.size(); ++k) {
    Tensor& p = a.params[k];
    check_cpu(p, "SGD parameter");
    bool first = false;
    if (mom && !a.bufs[k].defined()) {
      a.bufs[k] = Tensor::empty(p.shape(), p.dtype(), p.device());
      first = true;
    }
    uint16_t* copy = a.compute.empty() ? nullptr : a.compute[k].data_u16();
    const DType cdt = a.compute.empty() ? DType::Float16 : a.compute[k].dtype();
    if (p.dtype() == DType::Float32)
      step_one<float>(p, a.grads[k], mom ? a.bufs[k].data<float>() : nullptr, first, copy, cdt, a);
    else
      step_one<double>(p, a.grads[k], mom ? a.bufs[k].data<double>() : nullptr, first, copy, cdt, a);
  }
}

void sgd_multi_step(SgdMultiArgs& a) {
  check_sgd_multi_args(a);
  if (a.params.empty()) return;
  if (a.params[0].device().kind == Device::CUDA) return sgd_multi_step_cuda(a);
  sgd_multi_step_cpu(a);
}

}  // namespace ds::nn
