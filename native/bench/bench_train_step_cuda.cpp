// One training step of the seed network on a GPU:
//   detseg3d_bench train_step_cuda [--precision fp16|bf16|fp32] [--steps N] [--warmup N]
//                                  [--patch X,Y,Z] [--batch N]
// The MONAI LUNA16 RetinaNet (ResNet50, returned layers [1, 2], conv1 stride
// (2, 2, 1) in (x, y, z), 1 input channel, 1 class, 3 anchors, BatchNorm
// backbone, GroupNorm heads) on synthetic batches of 4 patches of
// 192 x 192 x 80 voxels (x, y, z) with 1..3 random GT boxes each: forward,
// detector loss (ATSS 4 candidates, hard-negative sampler 64 / 0.3 / pool 20 /
// min 16, focal loss, smooth L1), backward, SGD (lr 0.01, momentum 0.9,
// Nesterov, weight decay 3e-5) with float16 dynamic loss scaling (default),
// bfloat16 or float32. Reports the median ms/step over the timed steps (CUDA
// events around the whole step, host work included) and the caching
// allocator's peak, next to MONAI's 212 ms / 12.3 GiB and the targets.
// --patch / --batch change the workload (smaller GPUs, or a smoke test under
// the CPU emulator of native/emu); the targets only apply to the default.
// Without a GPU it says so and exits 0.
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "core/cuda_allocator.h"
#include "core/cuda_runtime.h"
#include "detection/anchors.h"
#include "detection/detector_loss.h"
#include "nn/amp.h"
#include "nn/retinanet.h"

using namespace ds;

namespace {

struct Batch {
  Tensor x;
  std::vector<std::vector<float>> boxes;
  std::vector<std::vector<int32_t>> labels;
  std::vector<det::ImageTargets> targets;
};

// N patches [N, Z, Y, X, 1] of noise with 1..3 boxes of 6..30 voxels per patch.
Batch make_batch(int64_t N, const det::Int3& xyz, DType dt, std::mt19937_64& r) {
  Batch b;
  Tensor h = Tensor::empty({N, xyz[2], xyz[1], xyz[0], 1}, DType::Float32);
  std::normal_distribution<float> noise(0.f, 1.f);
  for (int64_t i = 0; i < h.numel(); ++i) h.data<float>()[i] = noise(r);
  b.x = h.to(dt).to(Device::cuda(0));
  std::uniform_int_distribution<int> count(1, 3);
  for (int64_t n = 0; n < N; ++n) {
    b.boxes.emplace_back();
    b.labels.emplace_back();
    for (int k = count(r); k > 0; --k) {
      float box[6];
      for (int a = 0; a < 3; ++a) {
        const double lim = double(xyz[size_t(a)]);
        std::uniform_real_distribution<double> size(6.0, std::min(30.0, lim / 2)), pos(0.0, 1.0);
        const double sz = size(r), lo = pos(r) * (lim - sz);
        box[a] = float(lo);
        box[a + 3] = float(lo + sz);
      }
      b.boxes.back().insert(b.boxes.back().end(), box, box + 6);
      b.labels.back().push_back(0);
    }
  }
  for (int64_t n = 0; n < N; ++n)
    b.targets.push_back({b.boxes[size_t(n)].data(), b.labels[size_t(n)].data(), int64_t(b.labels[size_t(n)].size())});
  return b;
}

}  // namespace

DS_BENCH(train_step_cuda) {
  if (!cuda::available()) {
    std::printf("train_step_cuda: skipped: this benchmark needs a GPU (%s)\n",
                cuda::compiled() ? cuda::unavailable_reason().c_str()
                                 : "this build has no CUDA: configure with nvcc on the PATH");
    return 0;
  }
  std::string precision = "fp16";
  int steps = 20, warmup = 5;
  int64_t N = 4;
  det::Int3 patch{192, 192, 80};
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    if (args[i] == "--precision") precision = args[i + 1];
    else if (args[i] == "--steps") steps = std::max(1, std::stoi(args[i + 1]));
    else if (args[i] == "--warmup") warmup = std::max(1, std::stoi(args[i + 1]));
    else if (args[i] == "--batch") N = std::max(1, std::stoi(args[i + 1]));
    else if (args[i] == "--patch") {
      int x = 0, y = 0, z = 0;
      if (std::sscanf(args[i + 1].c_str(), "%d,%d,%d", &x, &y, &z) != 3 || x < 16 || y < 16 || z < 16) {
        std::printf("train_step_cuda: --patch wants X,Y,Z of at least 16 each, got %s\n", args[i + 1].c_str());
        return 2;
      }
      patch = {x, y, z};
    } else {
      std::printf(
          "train_step_cuda: unknown option %s (use --precision fp16|bf16|fp32, --steps N, --warmup N, --patch X,Y,Z, "
          "--batch N)\n",
          args[i].c_str());
      return 2;
    }
  }
  DType compute = DType::Float32;
  if (precision == "fp16") compute = DType::Float16;
  else if (precision == "bf16") compute = DType::BFloat16;
  else if (precision != "fp32") {
    std::printf("train_step_cuda: --precision must be fp16, bf16 or fp32, got %s\n", precision.c_str());
    return 2;
  }
  const Device gpu = Device::cuda(0);
  cuda::DeviceGuard guard(0);

  nn::RetinaNetConfig cfg;
  cfg.backbone.depth = 50;
  cfg.backbone.in_channels = 1;
  cfg.backbone.conv1_stride = {1, 2, 2};  // (z, y, x) = (1, 2, 2): MONAI's conv1_t_stride (2, 2, 1) in (x, y, z)
  cfg.backbone.conv1_size = {7, 7, 7};
  cfg.backbone.norm = nn::NormKind::Batch;
  cfg.returned_layers = {1, 2};
  cfg.num_classes = 1;
  cfg.num_anchors = 3;
  nn::RetinaNet net(cfg);
  net.to(gpu);
  net.set_precision(compute);
  net.set_training(true);
  nn::SGDOptions so;
  so.lr = 0.01;
  so.momentum = 0.9;
  so.nesterov = true;
  so.weight_decay = 3e-5;
  nn::SGD sgd(net.store(), so);
  nn::LossScalerOptions lso;
  lso.enabled = compute == DType::Float16;
  nn::LossScaler scaler(lso);
  nn::LossScaler* scaler_ptr = compute == DType::Float32 ? nullptr : &scaler;

  std::mt19937_64 rng(1);
  // Anchors from the head output sizes of one forward (LUNA16 base shapes, scales 1, 2, 4).
  Batch probe = make_batch(N, patch, compute, rng);
  nn::RetinaNet::Output o0 = net.forward(probe.x, false);
  std::vector<det::Int3> fmaps;
  for (const Tensor& t : o0.cls) fmaps.push_back({t.size(3), t.size(2), t.size(1)});
  o0 = {};
  auto anchors = det::generate_anchors(patch, fmaps, {{6, 8, 4}, {8, 6, 5}, {10, 10, 6}}, {1, 2, 4});
  std::vector<const float*> aptr;
  std::vector<int64_t> acount;
  for (auto& a : anchors) {
    aptr.push_back(a.data());
    acount.push_back(int64_t(a.size() / 6));
  }
  det::DetectorLossOptions lo;
  lo.num_classes = 1;
  lo.atss.num_candidates = 4;
  lo.sampler = {64, 0.3, 16, 20};

  std::vector<Batch> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(make_batch(N, patch, compute, rng));
  int skipped = 0;
  double last_loss = 0;
  auto step = [&](int it) {
    Batch& b = batches[size_t(it) % batches.size()];
    net.store().zero_grad();
    nn::RetinaNet::Output out = net.forward(b.x, true);
    lo.grad_scale = scaler_ptr ? scaler_ptr->scale() : 1.0;
    lo.seed = uint64_t(it);
    det::DetectorLoss L = det::detector_loss(out.cls, out.box, aptr, acount, b.targets, lo);
    out = {};
    last_loss = L.total;
    net.backward(L.cls_grads, L.box_grads, false);
    if (!nn::amp_optimizer_step(net.store(), sgd, scaler_ptr).applied) ++skipped;
  };
  for (int i = 0; i < warmup; ++i) step(i);
  cuda::synchronize(0);
  cuda::reset_peak(0);
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    cuda::Event a(0), e(0);
    a.record();
    step(warmup + i);
    e.record();
    e.synchronize();
    ms.push_back(e.elapsed_ms(a));
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  const PoolStats st = cuda::allocator_stats(0);
  const double gib = 1024.0 * 1024.0 * 1024.0;
  std::printf("train_step_cuda: ResNet50-FPN RetinaNet (LUNA16), batch %lld x %lldx%lldx%lld (x,y,z), %s, %d timed steps\n",
              (long long)N, (long long)patch[0], (long long)patch[1], (long long)patch[2], precision.c_str(), steps);
  std::printf("%-28s %12s %14s %14s\n", "", "ms/step", "peak alloc GiB", "peak reserved");
  std::printf("%-28s %12.1f %14.2f %14.2f\n", ("detseg3d " + precision).c_str(), med,
              double(st.peak_allocated_bytes) / gib, double(st.peak_reserved_bytes) / gib);
  if (N == 4 && patch == det::Int3{192, 192, 80}) {
    std::printf("%-28s %12.1f %14.2f %14s\n", "MONAI (AMP, reference)", 212.0, 12.3, "-");
    std::printf("%-28s %12s %14s %14s\n", "target", "<= 106", "<= 6", "-");
  }
  std::printf("min %.1f ms, max %.1f ms; last loss %.4f; skipped steps %d; loss scale %.0f\n", ms.front(), ms.back(),
              last_loss, skipped, scaler.scale());
  return 0;
}
