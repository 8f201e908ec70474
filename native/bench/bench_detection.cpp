// detseg3d_bench detection [--batch N] [--reps R]: the detection logic of one
// training step (ATSS, sampling, loss with gradients) on MONAI's LUNA16 seed
// configuration (192x192x80 patch, strides (4,4,2) (8,8,4) (16,16,8), three
// base anchor shapes, 315,360 anchors, 5 GT boxes per image) and the
// post-processing of a 512x512x208 volume, with a per-phase breakdown.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "bench/harness.h"
#include "core/tensor.h"
#include "detection/anchors.h"
#include "detection/atss.h"
#include "detection/detector_loss.h"
#include "detection/postprocess.h"
#include "detection/sampler.h"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double best_ms(int reps, F f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best;
}

struct Setup {
  std::vector<std::vector<float>> levels;
  std::vector<ds::det::Int3> fms;
  std::vector<const float*> ptrs;
  std::vector<int64_t> counts;
};

Setup make_setup(const ds::det::Int3& size) {
  static const int64_t strides[3][3] = {{4, 4, 2}, {8, 8, 4}, {16, 16, 8}};
  Setup s;
  for (auto& st : strides) s.fms.push_back({size[0] / st[0], size[1] / st[1], size[2] / st[2]});
  s.levels = ds::det::generate_anchors(size, s.fms, {{6, 8, 4}, {8, 6, 5}, {10, 10, 6}}, {});
  for (auto& l : s.levels) {
    s.ptrs.push_back(l.data());
    s.counts.push_back(int64_t(l.size() / 6));
  }
  return s;
}

std::vector<ds::Tensor> heads(const Setup& s, int64_t N, int64_t ch, std::mt19937& g, float mean, float sd) {
  std::normal_distribution<float> d(mean, sd);
  std::vector<ds::Tensor> out;
  for (auto& f : s.fms) {
    ds::Tensor t = ds::Tensor::empty({N, f[2], f[1], f[0], 3 * ch}, ds::DType::Float32);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(g);
    out.push_back(t);
  }
  return out;
}

}  // namespace

DS_BENCH(detection) {
  int64_t N = 1;
  int reps = 5;
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    if (args[i] == "--batch") N = std::stoll(args[i + 1]);
    if (args[i] == "--reps") reps = std::stoi(args[i + 1]);
  }
  std::mt19937 g(1);
  const ds::det::Int3 patch{192, 192, 80};
  Setup s = make_setup(patch);
  ds::det::AnchorLevels al{s.ptrs, s.counts, 3};
  const int64_t total = al.total();
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<std::vector<float>> gt(static_cast<size_t>(N));
  std::vector<std::vector<int32_t>> lab(static_cast<size_t>(N), std::vector<int32_t>(5, 0));
  std::vector<ds::det::ImageTargets> targets;
  for (auto& boxes : gt) {
    boxes.resize(30);
    for (int i = 0; i < 5; ++i)
      for (int k = 0; k < 3; ++k) {
        float sz = 4 + 26 * u(g), lo = u(g) * (float(patch[k]) - sz);
        boxes[size_t(6 * i + k)] = lo;
        boxes[size_t(6 * i + k + 3)] = lo + sz;
      }
  }
  for (size_t b = 0; b < gt.size(); ++b) targets.push_back({gt[b].data(), lab[b].data(), 5});
  auto cls = heads(s, N, 1, g, -4.f, 1.f);
  auto box = heads(s, N, 6, g, 0.f, 0.1f);

  std::printf("%-34s %10s\n", "phase (192x192x80 patch)", "best ms");
  ds::det::AnchorCentres centres;
  std::printf("%-34s %10.2f\n", "anchor centres", best_ms(reps, [&] { centres = ds::det::anchor_centres(al); }));
  std::vector<int32_t> m;
  std::printf("%-34s %10.2f\n", "ATSS, 1 image, 5 GT",
              best_ms(reps, [&] { m = ds::det::atss_match(al, targets[0].boxes, 5, {}, &centres); }));
  std::vector<float> hard(static_cast<size_t>(total));
  for (auto& h : hard) h = u(g);
  std::printf("%-34s %10.2f\n", "hard-negative sampler, 1 image", best_ms(reps, [&] {
                ds::det::Rng rng(1);
                ds::det::sample_hard_negatives(m.data(), hard.data(), total, {}, rng);
              }));
  ds::det::DetectorLossOptions o;
  std::printf("%-34s %10.2f\n", ("loss focal+smoothL1, N=" + std::to_string(N)).c_str(),
              best_ms(reps, [&] { ds::det::detector_loss(cls, box, s.ptrs, s.counts, targets, o); }));
  o.cls_loss = ds::det::ClsLossKind::BCE;
  o.box_loss = ds::det::BoxLossKind::GIoU;
  std::printf("%-34s %10.2f\n", ("loss BCE+GIoU, N=" + std::to_string(N)).c_str(),
              best_ms(reps, [&] { ds::det::detector_loss(cls, box, s.ptrs, s.counts, targets, o); }));

  const ds::det::Int3 vol{512, 512, 208};
  Setup sv = make_setup(vol);
  auto vc = heads(sv, 1, 1, g, -6.f, 1.5f);
  auto vb = heads(sv, 1, 6, g, 0.f, 0.1f);
  size_t kept = 0;
  std::printf("%-34s %10.2f\n", "postprocess 512x512x208 (5.8M anchors)", best_ms(std::max(1, reps / 2), [&] {
                kept = ds::det::postprocess(vc, vb, sv.ptrs, sv.counts, {{512, 512, 208}}, {})[0].scores.size();
              }));
  std::printf("(%zu detections)\n", kept);
  return 0;
}
