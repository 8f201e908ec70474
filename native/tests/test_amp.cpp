// Mixed-precision bookkeeping that needs no GPU: the optimizer step under
// dynamic loss scaling (amp_optimizer_step with the CPU loss scaler), the
// fused SGD path with 16-bit compute copies (nn::SGD::step on the CPU), and
// the RetinaNet device / precision errors on a machine without a GPU.
#include <cmath>
#include <random>

#include "core/cuda_runtime.h"
#include "nn/amp.h"
#include "nn/retinanet.h"
#include "tests/harness.h"

using namespace ds;
using namespace ds::nn;
using namespace ds::testing;

namespace {

// A store with two float32 parameters (one conv-weight-shaped) and their gradients.
void fill_store(ParamStore& ps, uint64_t seed, double grad_mul) {
  ps.add_param("conv.weight", {4, 3, 3, 3, 2}, {4, 2, 3, 3, 3}, DType::Float32);
  ps.add_param("norm.bias", {4}, {4}, DType::Float32);
  std::mt19937_64 r(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (ParamEntry& e : ps.entries()) {
    float* p = e.value.data<float>();
    for (int64_t i = 0; i < e.value.numel(); ++i) p[i] = u(r);
    Tensor g = Tensor::empty(e.value.shape(), DType::Float32);
    float* q = g.data<float>();
    for (int64_t i = 0; i < g.numel(); ++i) q[i] = float(double(u(r)) * grad_mul);
    ParamStore::accumulate_grad(e, g);
  }
}

SGDOptions luna_sgd() {
  SGDOptions o;
  o.lr = 0.01;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 3e-5;
  return o;
}

}  // namespace

// Gradients carrying a power-of-two loss scale S give, after the scaled step,
// exactly the parameters of a plain step on the unscaled gradients (the
// unscale multiplies by 1/S, exact in binary floating point), for two steps
// (momentum included); the scaler counts the clean steps.
DS_TEST(amp_step_scaled_equals_plain) {
  const double S = 65536.0;
  ParamStore a, b;
  fill_store(a, 1, S);
  fill_store(b, 1, 1.0);
  SGD sa(a, luna_sgd()), sb(b, luna_sgd());
  LossScaler scaler;
  for (int step = 0; step < 2; ++step) {
    AmpStepResult r = amp_optimizer_step(a, sa, &scaler);
    DS_EXPECT(r.applied && r.scale_used == S, "step ", step, " applied ", r.applied, " scale ", r.scale_used);
    sb.step();
  }
  DS_EXPECT(scaler.state().growth_tracker == 2 && scaler.scale() == S, "two clean steps counted");
  for (size_t k = 0; k < a.entries().size(); ++k) {
    const float* pa = a.entries()[k].value.data<float>();
    const float* pb = b.entries()[k].value.data<float>();
    for (int64_t i = 0; i < a.entries()[k].value.numel(); ++i)
      DS_EXPECT(pa[i] == pb[i], a.entries()[k].name, "[", i, "]: ", pa[i], " vs ", pb[i]);
  }
}

// One inf in one gradient: nothing changes (parameters, momentum), the scale halves.
DS_TEST(amp_step_skips_on_inf) {
  ParamStore a;
  fill_store(a, 2, 1.0);
  SGD s(a, luna_sgd());
  LossScaler scaler;
  ParamStore::grad(a.entries()[1]).data<float>()[3] = INFINITY;
  Tensor before = a.entries()[0].value.clone();
  AmpStepResult r = amp_optimizer_step(a, s, &scaler);
  DS_EXPECT(!r.applied && scaler.scale() == 32768.0, "skipped and halved: applied ", r.applied, " scale ",
            scaler.scale());
  DS_EXPECT(s.state().empty(), "no momentum buffer was created by a skipped step");
  const float* p = a.entries()[0].value.data<float>();
  for (int64_t i = 0; i < before.numel(); ++i) DS_EXPECT(p[i] == before.data<float>()[i], "parameter changed at ", i);
  // A NaN is caught the same way.
  ParamStore::grad(a.entries()[1]).data<float>()[3] = NAN;
  DS_EXPECT(!amp_optimizer_step(a, s, &scaler).applied && scaler.scale() == 16384.0, "NaN skips too");
}

// The fused path with a float16 compute copy: same masters as the plain CPU
// loop, and the copy is the float16 rounding of the updated master.
DS_TEST(sgd_fused_compute_copy_cpu) {
  ParamStore a, b;
  fill_store(a, 3, 1.0);
  fill_store(b, 3, 1.0);
  a.entries()[0].compute = a.entries()[0].value.to(DType::Float16, true);
  SGD sa(a, luna_sgd()), sb(b, luna_sgd());
  for (int step = 0; step < 2; ++step) {
    sa.step();
    sb.step();
  }
  const ParamEntry& e = a.entries()[0];
  const float* pa = e.value.data<float>();
  const float* pb = b.entries()[0].value.data<float>();
  const uint16_t* c = e.compute.data_u16();
  for (int64_t i = 0; i < e.value.numel(); ++i) {
    DS_EXPECT(pa[i] == pb[i], "master ", i, ": ", pa[i], " vs ", pb[i]);
    DS_EXPECT(c[i] == float_to_half(pa[i]), "compute copy ", i, " is not the float16 rounding of the master");
  }
  DS_EXPECT(!a.entries()[1].compute.defined(), "the bias got a compute copy");
}

DS_TEST(retinanet_precision_and_device_errors) {
  RetinaNetConfig cfg;
  cfg.backbone.depth = 10;
  cfg.backbone.widths = {4, 8, 8, 8};
  cfg.backbone.norm = NormKind::Batch;
  cfg.fpn_channels = 8;
  cfg.head_groups = 2;
  RetinaNet net(cfg);
  net.set_precision(DType::Float32);  // the model's own dtype: fine anywhere
  DS_EXPECT(net.compute_dtype() == DType::Float32, "compute dtype");
  bool threw = false;
  try {
    net.set_precision(DType::Float16);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("GPU") != std::string::npos;
  }
  DS_EXPECT(threw, "float16 on the CPU must be refused with a message naming the GPU");
  DS_EXPECT(net.compute_dtype() == DType::Float32, "a refused precision must not change the model");
  bool has_compute = false;
  for (auto& e : net.store().entries()) has_compute |= e.compute.defined();
  DS_EXPECT(!has_compute, "no compute copies on a float32 model");
  if (!cuda::available()) {
    threw = false;
    try {
      net.to(Device::cuda(0));
    } catch (const Error&) {
      threw = true;
    }
    DS_EXPECT(threw && net.device().is_cpu(), "to(cuda:0) without a GPU must throw and leave the model on the CPU");
  }
}
