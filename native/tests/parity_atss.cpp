// GPU ATSS and the GPU detector loss against their CPU references
// (atss_match, detector_loss): exact equality of the matches on random boxes
// built to produce ties (anchors on an integer grid, GT centres on grid
// points and half-way between them, duplicated GT boxes), and the loss values
// and gradients of a small 2-level case. Also the CPU loss's grad_scale
// (the AMP loss scale), which needs no GPU.
#include <cmath>
#include <random>

#include "core/cuda_runtime.h"
#include "detection/anchors.h"
#include "detection/atss.h"
#include "detection/det_cuda.h"
#include "detection/detector_loss.h"
#include "tests/harness.h"
#include "tests/parity.h"

using namespace ds;
using namespace ds::det;
using namespace ds::testing;

namespace {

// Two levels of anchors for a 32 x 32 x 16 (x, y, z) image: feature maps
// 8x8x4 and 4x4x2, three base shapes (shared centres per location).
struct Setup {
  std::vector<std::vector<float>> levels;
  std::vector<int64_t> counts;
  int64_t A = 3;
  Int3 fmap[2] = {{8, 8, 4}, {4, 4, 2}};
};

Setup make_anchors() {
  Setup s;
  s.levels = generate_anchors({32, 32, 16}, {s.fmap[0], s.fmap[1]}, {{6, 6, 4}, {8, 8, 6}, {12, 10, 8}}, {});
  for (auto& l : s.levels) s.counts.push_back(int64_t(l.size() / 6));
  return s;
}

// n GT boxes whose centres are grid points or midpoints (distance ties), with
// every third box a copy of the previous one (IoU ties between GTs).
std::vector<float> tie_boxes(int64_t n, std::mt19937_64& r) {
  std::vector<float> b(size_t(6 * n));
  std::uniform_int_distribution<int> cx(2, 60), cz(2, 28), sz(3, 14);
  for (int64_t i = 0; i < n; ++i) {
    if (i % 3 == 2) {
      std::copy(b.begin() + 6 * (i - 1), b.begin() + 6 * i, b.begin() + 6 * i);
      continue;
    }
    for (int k = 0; k < 3; ++k) {
      const float c = 0.5f * float(k == 2 ? cz(r) : cx(r));  // multiples of 0.5 voxel
      const float s = float(sz(r));
      b[size_t(6 * i + k)] = c - 0.5f * s;
      b[size_t(6 * i + k + 3)] = c + 0.5f * s;
    }
  }
  return b;
}

Tensor host_anchor_tensor(const std::vector<std::vector<float>>& levels) {
  int64_t total = 0;
  for (auto& l : levels) total += int64_t(l.size() / 6);
  Tensor t = Tensor::empty({total, 6}, DType::Float32);
  float* p = t.data<float>();
  for (auto& l : levels) p = std::copy(l.begin(), l.end(), p);
  return t;
}

void compare_matches(const std::vector<std::vector<float>>& levels, const std::vector<int64_t>& counts, int64_t A,
                     const std::vector<std::vector<float>>& gts, const AtssOptions& o, const char* what) {
  AnchorLevels al{{}, counts, A};
  for (auto& l : levels) al.levels.push_back(l.data());
  std::vector<const float*> gp;
  std::vector<int64_t> gn;
  for (auto& g : gts) {
    gp.push_back(g.data());
    gn.push_back(int64_t(g.size() / 6));
  }
  Tensor dev = atss_match_cuda(host_anchor_tensor(levels).to(Device::cuda(0)), counts, A, gp, gn, o)
                   .to(Device::cpu());
  const int64_t total = al.total();
  int64_t fg = 0;
  DS_EXPECT(dev.size(0) == int64_t(gts.size()) && dev.size(1) == total, what, ": shape ", dev.describe());
  for (size_t b = 0; b < gts.size(); ++b) {
    std::vector<int32_t> ref = atss_match(al, gp[b], gn[b], o);
    const int32_t* got = dev.data<int32_t>() + int64_t(b) * total;
    for (int64_t i = 0; i < total; ++i) {
      DS_EXPECT(got[i] == ref[size_t(i)], what, ": image ", b, " anchor ", i, ": GPU ", got[i], ", CPU ",
                ref[size_t(i)]);
      fg += ref[size_t(i)] >= 0;
    }
  }
  DS_EXPECT(fg > 0, what, ": the case matched nothing");
}

}  // namespace

DS_TEST(parity_atss_matches) {
  if (!gpu_available()) DS_SKIP(no_gpu_reason());
  std::mt19937_64 r(7);
  Setup s = make_anchors();
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<std::vector<float>> gts = {tie_boxes(1, r), tie_boxes(5, r), {}, tie_boxes(9, r)};
    for (bool cig : {false, true})
      for (int64_t nc : {1, 4, 9}) {
        AtssOptions o;
        o.num_candidates = nc;
        o.center_in_gt = cig;
        compare_matches(s.levels, s.counts, s.A, gts, o, "shared centres");
      }
  }
  // Anchors of a location with different centres (the CPU's per-anchor path):
  // shift the second base shape of every location by one voxel along x.
  Setup u = make_anchors();
  for (auto& l : u.levels)
    for (size_t i = 0; i < l.size() / 6; i += 3) {
      l[6 * (i + 1)] += 1.f;
      l[6 * (i + 1) + 3] += 1.f;
    }
  std::vector<std::vector<float>> gts = {tie_boxes(6, r), tie_boxes(2, r)};
  compare_matches(u.levels, u.counts, u.A, gts, AtssOptions{}, "per-anchor centres");
  // One location with one anchor in total: the single-candidate rule.
  std::vector<std::vector<float>> one = {std::vector<float>{0.f, 0.f, 0.f, 8.f, 8.f, 8.f}};
  std::vector<std::vector<float>> one_gt = {std::vector<float>{1.f, 1.f, 1.f, 5.f, 5.f, 5.f}};
  compare_matches(one, {1}, 1, one_gt, AtssOptions{}, "single candidate");
}

namespace {

struct LossCase {
  Setup s;
  std::vector<Tensor> cls, box;
  std::vector<std::vector<float>> gt;
  std::vector<std::vector<int32_t>> labels;
  std::vector<ImageTargets> targets;
  std::vector<const float*> anchors;
};

LossCase make_loss_case(int64_t C, std::mt19937_64& r) {
  LossCase c;
  c.s = make_anchors();
  const int64_t N = 2;
  for (int l = 0; l < 2; ++l) {
    const Int3& f = c.s.fmap[l];
    c.cls.push_back(random_tensor({N, f[2], f[1], f[0], c.s.A * C}, DType::Float32, r, -4.0, 2.0));
    c.box.push_back(random_tensor({N, f[2], f[1], f[0], c.s.A * 6}, DType::Float32, r, -0.5, 0.5));
    c.anchors.push_back(c.s.levels[size_t(l)].data());
  }
  c.gt = {tie_boxes(4, r), tie_boxes(2, r)};
  std::uniform_int_distribution<int32_t> lab(0, int32_t(C - 1));
  for (auto& g : c.gt) {
    c.labels.emplace_back();
    for (size_t i = 0; i < g.size() / 6; ++i) c.labels.back().push_back(lab(r));
  }
  for (size_t b = 0; b < c.gt.size(); ++b)
    c.targets.push_back({c.gt[b].data(), c.labels[b].data(), int64_t(c.gt[b].size() / 6)});
  return c;
}

void expect_close(const Tensor& got, const Tensor& ref, Tol tol, const char* what) {
  CompareStats st = compare(got, ref, tol);
  DS_EXPECT(st.bad == 0, what, ": ", st.bad, " of ", st.count, " elements differ (max abs ", st.max_abs,
            ", first bad got ", st.first_got, " ref ", st.first_ref, ")");
}

}  // namespace

// The CPU loss with grad_scale s: identical loss values, gradients x s.
DS_TEST(detector_loss_grad_scale_cpu) {
  std::mt19937_64 r(11);
  LossCase c = make_loss_case(2, r);
  DetectorLossOptions o;
  o.num_classes = 2;
  o.seed = 3;
  DetectorLoss a = detector_loss(c.cls, c.box, c.anchors, c.s.counts, c.targets, o);
  o.grad_scale = 1024.0;  // a power of two: the scaled gradients are exact multiples
  DetectorLoss b = detector_loss(c.cls, c.box, c.anchors, c.s.counts, c.targets, o);
  DS_EXPECT(a.total == b.total && a.cls == b.cls && a.box == b.box, "loss values changed with grad_scale");
  DS_EXPECT(a.num_foreground > 0 && a.num_sampled_neg > 0, "the case has no foreground / negatives");
  for (size_t l = 0; l < 2; ++l)
    for (auto [ga, gb] : {std::pair{&a.cls_grads[l], &b.cls_grads[l]}, std::pair{&a.box_grads[l], &b.box_grads[l]}}) {
      const float* pa = ga->data<float>();
      const float* pb = gb->data<float>();
      for (int64_t i = 0; i < ga->numel(); ++i)
        DS_EXPECT(pb[i] == pa[i] * 1024.f, "gradient ", i, " of level ", l, ": ", pb[i], " != 1024 * ", pa[i]);
    }
}

DS_TEST(parity_detector_loss) {
  if (!gpu_available()) DS_SKIP(no_gpu_reason());
  std::mt19937_64 r(5);
  for (BoxLossKind bk : {BoxLossKind::SmoothL1, BoxLossKind::GIoU})
    for (DType dt : {DType::Float32, DType::Float16}) {
      LossCase c = make_loss_case(2, r);
      if (dt != DType::Float32)  // both sides see the 16-bit-rounded values
        for (auto* v : {&c.cls, &c.box})
          for (auto& t : *v) t = t.to(dt).to(DType::Float32);
      DetectorLossOptions o;
      o.num_classes = 2;
      o.box_loss = bk;
      o.focal_alpha = 0.25;
      o.seed = 9;
      o.grad_scale = 8.0;
      DetectorLoss ref = detector_loss(c.cls, c.box, c.anchors, c.s.counts, c.targets, o);
      std::vector<Tensor> dc, db;
      for (auto& t : c.cls) dc.push_back(t.to(dt).to(Device::cuda(0)));
      for (auto& t : c.box) db.push_back(t.to(dt).to(Device::cuda(0)));
      DetectorLoss got = detector_loss(dc, db, c.anchors, c.s.counts, c.targets, o);
      DS_EXPECT(got.num_foreground == ref.num_foreground && got.num_sampled_pos == ref.num_sampled_pos &&
                    got.num_sampled_neg == ref.num_sampled_neg,
                "counts differ: fg ", got.num_foreground, "/", ref.num_foreground, " pos ", got.num_sampled_pos, "/",
                ref.num_sampled_pos, " neg ", got.num_sampled_neg, "/", ref.num_sampled_neg);
      DS_EXPECT(ref.num_foreground > 0, "the case has no foreground");
      for (auto [g, e] : {std::pair{got.cls, ref.cls}, std::pair{got.box, ref.box}, std::pair{got.total, ref.total}})
        // Summation order differs (device atomics), and CUDA's log may differ
        // from glibc's in the last bit of a double, flipping a float target.
        DS_EXPECT(std::fabs(g - e) <= 1e-9 + 1e-6 * std::fabs(e), "loss ", g, " vs CPU ", e);
      const Tol tol = dt == DType::Float32 ? Tol{1e-7, 1e-6} : Tol{1e-3, 2e-3};
      for (size_t l = 0; l < 2; ++l) {
        DS_EXPECT(got.cls_grads[l].dtype() == dt && got.cls_grads[l].shape() == c.cls[l].shape() &&
                      !got.cls_grads[l].device().is_cpu(),
                  "gradient tensor ", got.cls_grads[l].describe());
        expect_close(got.cls_grads[l], ref.cls_grads[l], tol, "class-logit gradient");
        expect_close(got.box_grads[l], ref.box_grads[l], tol, "box gradient");
      }
    }
}
