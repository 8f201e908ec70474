#include "nn/loss_scaler.h"

#include <atomic>
#include <cmath>

#include "core/thread_pool.h"

namespace ds::nn {

LossScaler::LossScaler(const LossScalerOptions& o) : opt_(o) {
  DS_CHECK(std::isfinite(o.init_scale) && o.init_scale > 0, "loss scaler: initial scale must be positive, got ",
           o.init_scale);
  DS_CHECK(o.growth_factor > 1, "loss scaler: growth factor must be > 1, got ", o.growth_factor);
  DS_CHECK(o.backoff_factor > 0 && o.backoff_factor < 1, "loss scaler: backoff factor must be in (0, 1), got ",
           o.backoff_factor);
  DS_CHECK(o.growth_interval >= 1, "loss scaler: growth interval must be >= 1, got ", o.growth_interval);
  st_.scale = o.init_scale;
}

bool LossScaler::unscale_and_check(std::vector<Tensor>& grads) const {
  return scale_and_check_nonfinite_(grads, 1.0 / scale());
}

bool LossScaler::check(const std::vector<Tensor>& grads) const {
  std::vector<Tensor> g = grads;  // shares storage; factor 1 writes nothing
  return scale_and_check_nonfinite_(g, 1.0);
}

bool LossScaler::update(bool found_inf) {
  if (!opt_.enabled) {
    // bf16 / float32: nothing to adapt; a non-finite gradient still skips the step.
    return !found_inf;
  }
  if (found_inf) {
    st_.scale *= opt_.backoff_factor;
    st_.growth_tracker = 0;
    return false;
  }
  if (++st_.growth_tracker >= opt_.growth_interval) {
    const double grown = st_.scale * opt_.growth_factor;
    if (std::isfinite(grown)) st_.scale = grown;  // never grow into infinity
    st_.growth_tracker = 0;
  }
  return true;
}

void LossScaler::load_state(const LossScalerState& s) {
  DS_CHECK(std::isfinite(s.scale) && s.scale > 0, "loss scaler state: scale must be positive and finite, got ",
           s.scale);
  DS_CHECK(s.growth_tracker >= 0 && s.growth_tracker < opt_.growth_interval,
           "loss scaler state: growth tracker must be in [0, ", opt_.growth_interval, "), got ", s.growth_tracker);
  st_ = s;
}

bool scale_and_check_nonfinite_cpu_(std::vector<Tensor>& grads, double factor) {
  std::atomic<bool> found{false};
  for (Tensor& g : grads) {
    check_cpu(g, "gradient");
    const int64_t n = g.numel();
    const DType dt = g.dtype();
    parallel_for(0, n, 1 << 15, [&](int64_t i0, int64_t i1) {
      bool bad = false;
      if (dt == DType::Float32) {
        float* p = g.data<float>();
        const float f = float(factor);
        for (int64_t i = i0; i < i1; ++i) {
          bad |= !std::isfinite(p[i]);
          if (factor != 1.0) p[i] *= f;
        }
      } else if (dt == DType::Float64) {
        double* p = g.data<double>();
        for (int64_t i = i0; i < i1; ++i) {
          bad |= !std::isfinite(p[i]);
          if (factor != 1.0) p[i] *= factor;
        }
      } else {
        uint16_t* p = g.data_u16();
        const bool h = dt == DType::Float16;
        for (int64_t i = i0; i < i1; ++i) {
          const float v = h ? half_to_float(p[i]) : bf16_to_float(p[i]);
          bad |= !std::isfinite(v);
          if (factor != 1.0) p[i] = h ? float_to_half(v * float(factor)) : float_to_bf16(v * float(factor));
        }
      }
      if (bad) found.store(true);
    });
  }
  return found.load();
}

bool scale_and_check_nonfinite_(std::vector<Tensor>& grads, double factor) {
  DS_CHECK(std::isfinite(factor) && factor > 0, "gradient unscale factor must be positive and finite, got ", factor);
  if (grads.empty()) return false;
  const Device dev = grads[0].device();
  for (const Tensor& g : grads) {
    DS_CHECK(g.defined() && dtype_is_float(g.dtype()), "gradient check: every gradient must be a defined float tensor, got ",
             g.describe());
    DS_CHECK(g.device() == dev, "gradient check: all gradients must be on ", dev.str(), ", got ", g.describe());
  }
  return dev.is_cpu() ? scale_and_check_nonfinite_cpu_(grads, factor) : scale_and_check_nonfinite_cuda_(grads, factor);
}

}  // namespace ds::nn
