// RetinaNet on a GPU (needs one; skipped otherwise): a small network moved to
// cuda:0 against the same network on the CPU (float32 forward outputs and
// parameter gradients), float16 / bfloat16 mixed precision (outputs close to
// float32, float32 master gradients), and a few AMP training steps (GPU loss,
// loss scaling, fused SGD): compute copies equal the masters' 16-bit
// rounding after every step, num_batches_tracked counts on the device, the
// loss stays finite.
#include <cmath>
#include <random>

#include "core/cuda_runtime.h"
#include "detection/anchors.h"
#include "detection/detector_loss.h"
#include "nn/amp.h"
#include "nn/retinanet.h"
#include "tests/harness.h"
#include "tests/parity.h"

using namespace ds;
using namespace ds::testing;

namespace {

nn::RetinaNetConfig small_config() {
  nn::RetinaNetConfig c;
  c.backbone.depth = 10;
  c.backbone.widths = {8, 8, 16, 16};
  c.backbone.norm = nn::NormKind::Batch;
  c.fpn_channels = 8;
  c.head_groups = 2;
  c.num_anchors = 2;
  c.seed = 3;
  return c;
}

void expect_close(const Tensor& got, const Tensor& ref, Tol tol, const std::string& what) {
  CompareStats st = compare(got, ref, tol);
  DS_EXPECT(st.bad == 0, what, ": ", st.bad, " of ", st.count, " differ (max abs ", st.max_abs, ", max rel ", st.max_rel,
            ")");
}

}  // namespace

DS_TEST(cuda_retinanet_matches_cpu) {
  if (!gpu_available()) DS_SKIP(no_gpu_reason());
  std::mt19937_64 r(1);
  Tensor x = random_tensor({2, 16, 32, 32, 1}, DType::Float32, r);
  nn::RetinaNet cpu(small_config()), gpu(small_config());
  gpu.to(Device::cuda(0));
  DS_EXPECT(gpu.device() == Device::cuda(0), "device after to()");
  nn::RetinaNet::Output oc = cpu.forward(x, true);
  nn::RetinaNet::Output og = gpu.forward(x.to(Device::cuda(0)), true);
  std::vector<Tensor> gc, gb, dgc, dgb;
  for (size_t l = 0; l < oc.cls.size(); ++l) {
    expect_close(og.cls[l], oc.cls[l], {1e-4, 1e-3}, "class logits level " + std::to_string(l));
    expect_close(og.box[l], oc.box[l], {1e-4, 1e-3}, "box deltas level " + std::to_string(l));
    gc.push_back(random_tensor(oc.cls[l].shape(), DType::Float32, r));
    gb.push_back(random_tensor(oc.box[l].shape(), DType::Float32, r));
    dgc.push_back(gc.back().to(Device::cuda(0)));
    dgb.push_back(gb.back().to(Device::cuda(0)));
  }
  cpu.backward(gc, gb, false);
  gpu.backward(dgc, dgb, false);
  auto& ec = cpu.store().entries();
  auto& eg = gpu.store().entries();
  for (size_t k = 0; k < ec.size(); ++k) {
    if (ec[k].buffer) {
      expect_close(eg[k].value, ec[k].value, {1e-5, 1e-4}, ec[k].name);  // running stats, counters
      continue;
    }
    Tensor g = nn::ParamStore::grad(eg[k]);
    DS_EXPECT(!g.device().is_cpu(), ec[k].name, " gradient left the GPU");
    expect_close(g, nn::ParamStore::grad(ec[k]), {1e-3, 2e-3}, ec[k].name + " gradient");
  }
}

DS_TEST(cuda_retinanet_mixed_precision) {
  if (!gpu_available()) DS_SKIP(no_gpu_reason());
  std::mt19937_64 r(2);
  Tensor x = random_tensor({2, 16, 32, 32, 1}, DType::Float32, r);
  nn::RetinaNet ref(small_config());
  ref.to(Device::cuda(0));
  nn::RetinaNet::Output o32 = ref.forward(x.to(Device::cuda(0)), false);
  for (DType dt : {DType::Float16, DType::BFloat16}) {
    nn::RetinaNet net(small_config());
    net.to(Device::cuda(0));
    net.set_precision(dt);
    for (auto& e : net.store().entries())
      DS_EXPECT(e.compute.defined() == (!e.buffer && e.value.dim() == 5), e.name, ": compute copy only for conv weights");
    nn::RetinaNet::Output o = net.forward(x.to(Device::cuda(0)).to(dt), true);
    const Tol tol = dt == DType::Float16 ? Tol{2e-2, 2e-2} : Tol{1e-1, 5e-2};
    std::vector<Tensor> gc, gb;
    for (size_t l = 0; l < o.cls.size(); ++l) {
      DS_EXPECT(o.cls[l].dtype() == dt, "outputs in the compute dtype");
      expect_close(o.cls[l], o32.cls[l], tol, std::string(dtype_name(dt)) + " class logits");
      expect_close(o.box[l], o32.box[l], tol, std::string(dtype_name(dt)) + " box deltas");
      gc.push_back(Tensor::full(o.cls[l].shape(), 1e-3, dt, Device::cuda(0)));
      gb.push_back(Tensor::full(o.box[l].shape(), -1e-3, dt, Device::cuda(0)));
    }
    net.backward(gc, gb, false);
    for (auto& e : net.store().entries())
      if (!e.buffer) DS_EXPECT(nn::ParamStore::grad(e).dtype() == DType::Float32, e.name, ": master gradient not float32");
    // Back on the CPU the model computes in float32 again (16-bit is GPU-only): no compute copies, and a
    // float32 forward runs.
    net.to(Device::cpu());
    DS_EXPECT(net.compute_dtype() == DType::Float32, "compute dtype after to(cpu): ", dtype_name(net.compute_dtype()));
    for (auto& e : net.store().entries()) DS_EXPECT(!e.compute.defined(), e.name, ": compute copy left after to(cpu)");
    nn::RetinaNet::Output oc = net.forward(x, false);
    DS_EXPECT(oc.cls[0].dtype() == DType::Float32 && oc.cls[0].device().is_cpu(), "CPU forward after to(cpu)");
  }
}

DS_TEST(cuda_amp_training_steps) {
  if (!gpu_available()) DS_SKIP(no_gpu_reason());
  std::mt19937_64 r(4);
  const Device gpu = Device::cuda(0);
  for (DType dt : {DType::Float16, DType::BFloat16}) {
    nn::RetinaNet net(small_config());
    net.to(gpu);
    net.set_precision(dt);
    nn::SGDOptions so;
    so.lr = 0.01;
    so.momentum = 0.9;
    so.nesterov = true;
    so.weight_decay = 3e-5;
    nn::SGD sgd(net.store(), so);
    nn::LossScalerOptions lo;
    lo.enabled = dt == DType::Float16;
    nn::LossScaler scaler(lo);
    Tensor x = random_tensor({2, 16, 32, 32, 1}, DType::Float32, r).to(dt).to(gpu);
    std::vector<std::vector<float>> boxes = {{4, 6, 2, 14, 15, 9}, {18, 10, 5, 27, 22, 12, 3, 3, 1, 9, 11, 6}};
    std::vector<std::vector<int32_t>> labels = {{0}, {0, 0}};
    std::vector<det::ImageTargets> targets = {{boxes[0].data(), labels[0].data(), 1}, {boxes[1].data(), labels[1].data(), 2}};
    det::DetectorLossOptions dl;
    const int steps = 3;
    int applied = 0;
    for (int s = 0; s < steps; ++s) {
      net.store().zero_grad();
      nn::RetinaNet::Output o = net.forward(x, true);
      std::vector<det::Int3> maps;
      for (auto& t : o.cls) maps.push_back({t.size(3), t.size(2), t.size(1)});
      auto anchors = det::generate_anchors({32, 32, 16}, maps, {{6, 6, 4}, {10, 8, 6}}, {});
      std::vector<const float*> ap;
      std::vector<int64_t> ac;
      for (auto& a : anchors) {
        ap.push_back(a.data());
        ac.push_back(int64_t(a.size() / 6));
      }
      dl.seed = uint64_t(s);
      dl.grad_scale = scaler.scale();
      det::DetectorLoss L = det::detector_loss(o.cls, o.box, ap, ac, targets, dl);
      DS_EXPECT(std::isfinite(L.total) && L.num_foreground > 0, "loss ", L.total, " foreground ", L.num_foreground);
      net.backward(L.cls_grads, L.box_grads, false);
      nn::AmpStepResult res = nn::amp_optimizer_step(net.store(), sgd, &scaler);
      // fp16 at the initial scale 2^16 may overflow once (as torch's GradScaler
      // often does on its first steps): then the step is skipped and the scale halved.
      if (res.applied) {
        ++applied;
      } else {
        DS_EXPECT(dt == DType::Float16 && scaler.scale() == res.scale_used / 2, dtype_name(dt), " step ", s,
                  " skipped at scale ", res.scale_used, ", scale now ", scaler.scale());
      }
      for (auto& e : net.store().entries()) {
        if (!e.compute.defined()) continue;
        Tensor want = e.value.to(Device::cpu()).to(dt), got = e.compute.to(Device::cpu());
        DS_EXPECT(std::equal(want.data_u16(), want.data_u16() + want.numel(), got.data_u16()), e.name,
                  ": compute copy is not the rounded master after step ", s);
      }
    }
    DS_EXPECT(applied >= steps - 1, dtype_name(dt), ": only ", applied, " of ", steps, " steps applied");
    for (auto& e : net.store().entries())
      if (e.name.size() > 20 && e.name.rfind("num_batches_tracked") == e.name.size() - 19) {
        const double n = e.value.to(Device::cpu()).to(DType::Float64).data<double>()[0];
        DS_EXPECT(n == steps, e.name, " = ", n, " after ", steps, " training forwards");
      }
  }
}
