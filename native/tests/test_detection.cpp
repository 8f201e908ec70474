// Detection core self-checks without Node: hand-worked anchors, IoU, NMS,
// ATSS and loss values (the same cases as test/detection/*.test.ts, worked
// out in the comments there) and a finite-difference check of the loss
// gradients in float64.
#include <cmath>
#include <vector>

#include "core/tensor.h"
#include "detection/anchors.h"
#include "detection/atss.h"
#include "detection/box_ops.h"
#include "detection/detector_loss.h"
#include "detection/nms.h"
#include "tests/harness.h"

using namespace ds;
using namespace ds::det;

DS_TEST(detection_anchor_layout_and_rounding) {
  // Shape (8, 6, 5) at scale 1: corners -4..4, -3..3, -round(2.5) = -2 .. 2; stride 2; x fastest.
  auto lv = generate_anchors({8, 8, 4}, {{4, 4, 2}}, {{8, 6, 5}}, {});
  const float want1[6] = {-2, -3, -2, 6, 3, 2};   // index 1: centre (2, 0, 0)
  const float want16[6] = {-4, -3, 0, 4, 3, 4};   // index 16: centre (0, 0, 2)
  for (int k = 0; k < 6; ++k) {
    DS_EXPECT(lv[0][6 + k] == want1[k], "anchor 1 coordinate ", k, " = ", lv[0][6 + k]);
    DS_EXPECT(lv[0][96 + k] == want16[k], "anchor 16 coordinate ", k, " = ", lv[0][96 + k]);
  }
}

DS_TEST(detection_iou_and_nms_hand_worked) {
  const float a[6] = {0, 0, 0, 2, 2, 2}, b[6] = {1, 1, 1, 3, 3, 3};
  DS_EXPECT(std::fabs(pair_iou(a, b) - 1.0 / 15) < 1e-7, "IoU ", pair_iou(a, b));
  DS_EXPECT(std::fabs(pair_giou(a, b) - (1.0 / 15 - 12.0 / 27)) < 1e-7, "GIoU ", pair_giou(a, b));
  const float bx[24] = {0, 0, 0, 10, 10, 10, 1, 0, 0, 11, 10, 10, 20, 20, 20, 30, 30, 30, 0, 0, 0, 10, 10, 5};
  const float sc[4] = {0.9f, 0.8f, 0.7f, 0.95f};
  auto k = nms(bx, sc, 4, 0.5);
  DS_EXPECT(k == std::vector<int32_t>({3, 0, 2}), "nms 0.5 kept ", k.size());
  k = nms(bx, sc, 4, 0.49);
  DS_EXPECT(k == std::vector<int32_t>({3, 1, 2}), "nms 0.49 kept ", k.size());
}

namespace {
// Three anchors [-2,2], [2,6], [6,10] (x) with one GT matching anchor 0 (threshold 0.561).
struct Line {
  std::vector<std::vector<float>> lv = generate_anchors({12, 4, 4}, {{3, 1, 1}}, {{4, 4, 4}}, {});
  std::vector<float> gt = {-1, -2, -2, 3, 2, 2};
  std::vector<int32_t> labels = {0};
};
}  // namespace

DS_TEST(detection_atss_hand_worked) {
  Line s;
  AnchorLevels al{{s.lv[0].data()}, {3}, 1};
  auto m = atss_match(al, s.gt.data(), 1, {});
  DS_EXPECT(m == std::vector<int32_t>({0, -1, -1}), "matched ", m[0], " ", m[1], " ", m[2]);
}

DS_TEST(detection_loss_hand_worked_and_gradients) {
  Line s;
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor cls = Tensor::empty({1, 1, 1, 3, 1}, DType::Float64);
    Tensor box = Tensor::zeros({1, 1, 1, 3, 6}, DType::Float64);
    const double x[3] = {0.5, -1, 2}, r[6] = {0.1, 0.05, 0, 0, 0, -0.2};
    for (int i = 0; i < 3; ++i) cls.data<double>()[i] = x[i];
    for (int i = 0; i < 6; ++i) box.data<double>()[i] = r[i];
    std::vector<Tensor> c{cls.to(dt)}, b{box.to(dt)};
    DetectorLossOptions o;
    auto res = detector_loss(c, b, {s.lv[0].data()}, {3}, {{s.gt.data(), s.labels.data(), 1}}, o);
    // Focal mean 0.580103, smooth L1 mean 0.041690 (see test/detection/loss.test.ts).
    DS_EXPECT(std::fabs(res.cls - 0.580103) < 1e-5, "cls ", res.cls);
    DS_EXPECT(std::fabs(res.box - 0.041690) < 1e-5, "box ", res.box);
    if (dt != DType::Float64) continue;
    // Central differences of the total for every logit and regression value.
    for (int which = 0; which < 2; ++which)
      for (int64_t i = 0; i < (which ? 18 : 3); ++i)
        for (BoxLossKind bk : {BoxLossKind::SmoothL1, BoxLossKind::GIoU}) {
          o.box_loss = bk;
          auto base = detector_loss(c, b, {s.lv[0].data()}, {3}, {{s.gt.data(), s.labels.data(), 1}}, o);
          Tensor& t = which ? b[0] : c[0];
          double* p = t.data<double>() + i;
          const double v = *p, h = 1e-6;
          *p = v + h;
          double up = detector_loss(c, b, {s.lv[0].data()}, {3}, {{s.gt.data(), s.labels.data(), 1}}, o).total;
          *p = v - h;
          double dn = detector_loss(c, b, {s.lv[0].data()}, {3}, {{s.gt.data(), s.labels.data(), 1}}, o).total;
          *p = v;
          double fd = (up - dn) / (2 * h);
          double an = (which ? base.box_grads[0] : base.cls_grads[0]).data<double>()[i];
          DS_EXPECT(std::fabs(fd - an) < 1e-6, which ? "box" : "cls", " gradient ", i, ": analytic ", an, " vs ", fd);
        }
  }
}
