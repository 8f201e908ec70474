#include "detection/detector_loss.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "core/thread_pool.h"
#include "detection/box_coder.h"
#include "detection/box_ops.h"
#include "detection/det_cuda.h"

namespace ds::det {

int64_t check_head_outputs(const std::vector<Tensor>& cls, const std::vector<Tensor>& box, int64_t C,
                           const std::vector<int64_t>& counts, const char* what) {
  DS_CHECK(C >= 1, what, ": numClasses must be >= 1, got ", C);
  DS_CHECK(!cls.empty(), what, ": head outputs need at least one level");
  DS_CHECK(cls.size() == box.size(), what, ": ", cls.size(), " classification levels but ", box.size(),
           " box regression levels");
  DS_CHECK(counts.size() == cls.size(), what, ": ", cls.size(), " head output levels but ", counts.size(),
           " anchor levels");
  int64_t A = -1;
  for (size_t l = 0; l < cls.size(); ++l) {
    const Tensor& c = cls[l];
    const Tensor& b = box[l];
    DS_CHECK(c.defined() && b.defined(), what, ": level ", l, " head output is missing");
    DS_CHECK(c.device() == cls[0].device() && b.device() == cls[0].device(), what, ": level ", l,
             " head outputs are on ", c.device().str(), " and ", b.device().str(), " but level 0 is on ",
             cls[0].device().str(), "; keep all head outputs on one device");
    if (c.device().is_cpu()) {
      check_float(c, "classification logits");
    } else {
      DS_CHECK(dtype_is_float(c.dtype()), what, ": GPU head outputs must be float16, bfloat16, float32 or float64, got ",
               dtype_name(c.dtype()));
    }
    check_same_dtype(c, b, "classification logits", "box regression");
    check_same_dtype(c, cls[0], "classification logits", "level 0 classification logits");
    check_dims(c, 5, "classification logits", "[N, D1, D2, D3, A*numClasses]");
    check_dims(b, 5, "box regression", "[N, D1, D2, D3, A*6]");
    for (int k = 0; k < 4; ++k)
      DS_CHECK(c.size(k) == b.size(k), what, ": level ", l, " classification logits ", shape_str(c.shape()),
               " and box regression ", shape_str(b.shape()), " differ in [N, D1, D2, D3]");
    DS_CHECK(c.size(0) == cls[0].size(0), what, ": level ", l, " has batch size ", c.size(0), ", level 0 has ",
             cls[0].size(0));
    DS_CHECK(c.size(4) % C == 0, what, ": level ", l, " classification logits have ", c.size(4),
             " channels, not a multiple of numClasses = ", C);
    int64_t a = c.size(4) / C;
    DS_CHECK(b.size(4) == a * 6, what, ": level ", l, " box regression has ", b.size(4), " channels, expected A*6 = ",
             a * 6, " (A = ", a, " anchors per location from the logits)");
    DS_CHECK(A < 0 || a == A, what, ": level ", l, " has ", a, " anchors per location, level 0 has ", A);
    A = a;
    int64_t locs = c.size(1) * c.size(2) * c.size(3);
    DS_CHECK(counts[l] == locs * A, what, ": level ", l, " has ", counts[l], " anchors but its head outputs ",
             shape_str(c.shape()), " need D1*D2*D3*A = ", locs * A,
             "; generate anchors with the level's feature map size (x, y, z) = (", c.size(3), ", ", c.size(2), ", ",
             c.size(1), ")");
  }
  DS_CHECK(A >= 1, what, ": head outputs have 0 anchors per location");
  return A;
}

namespace {

// True when every element is finite: checks the exponent bits with an integer
// OR-reduction, which vectorises (std::isfinite in a loop does not).
template <class T>
bool all_finite(const Tensor& t) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  const U mask = sizeof(T) == 4 ? U(0x7F800000u) : U(0x7FF0000000000000ull);
  const T* p = t.data<T>();
  std::atomic<bool> bad{false};
  parallel_for(0, t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    U any = 0;
    for (int64_t i = b; i < e; ++i) {
      U u;
      std::memcpy(&u, p + i, sizeof(U));  // no aliasing violation; compiles to a plain load
      any |= U((u & mask) == mask);
    }
    if (any) bad.store(true, std::memory_order_relaxed);
  });
  return !bad.load();
}

template <class T>
DetectorLoss run_loss(const std::vector<Tensor>& cls, const std::vector<Tensor>& box, const AnchorLevels& anchors,
                      const std::vector<ImageTargets>& targets, const DetectorLossOptions& o) {
  const int64_t C = o.num_classes, N = cls[0].size(0);
  const size_t L = cls.size();
  const int64_t total = anchors.total();
  std::vector<int64_t> offsets(L, 0);
  for (size_t l = 1; l < L; ++l) offsets[l] = offsets[l - 1] + anchors.counts[l - 1];
  // Global anchor g (levels concatenated) of image b -> pointers.
  auto level_of = [&](int64_t g) {
    size_t l = 0;
    while (g >= offsets[l] + anchors.counts[l]) ++l;
    return l;
  };

  for (size_t l = 0; l < L; ++l) {
    const bool finite = all_finite<T>(cls[l]) && all_finite<T>(box[l]);
    if (!finite && o.non_finite_ok) return non_finite_loss(cls, box);
    DS_CHECK(finite, "detector.loss: the level ", l,
             " head outputs contain NaN or Inf: the network diverged (lower the learning rate, use gradient "
             "clipping, check the input intensity normalisation)");
  }
  const AnchorCentres centres = anchor_centres(anchors);

  DetectorLoss out = zero_grad_loss(cls, box);

  // 1. Match and sample every image (images in parallel; the work inside
  // runs serially then, or in parallel over GTs for a single image).
  std::vector<std::vector<int32_t>> matched(static_cast<size_t>(N));
  std::vector<Sample> samples(static_cast<size_t>(N));
  parallel_for(0, N, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> hard(static_cast<size_t>(total));
    for (int64_t b = b0; b < b1; ++b) {
      const ImageTargets& t = targets[size_t(b)];
      matched[size_t(b)] = atss_match(anchors, t.boxes, t.n, o.atss, &centres);
      // Hardness of each anchor: its max logit over classes.
      for (size_t l = 0; l < L; ++l) {
        const T* x = cls[l].data<T>() + b * anchors.counts[l] * C;
        float* h = hard.data() + offsets[l];
        parallel_for(0, anchors.counts[l], 16384, [&](int64_t a0, int64_t a1) {
          for (int64_t a = a0; a < a1; ++a) {
            const T* xa = x + a * C;
            T m = xa[0];
            for (int64_t c = 1; c < C; ++c) m = xa[c] > m ? xa[c] : m;
            h[a] = float(m);
          }
        });
      }
      // Each image gets its own stream so that results do not depend on N.
      Rng rng(o.seed * 0x9E3779B97F4A7C15ull + uint64_t(b) + 1);
      samples[size_t(b)] = sample_hard_negatives(matched[size_t(b)].data(), hard.data(), total, o.sampler, rng);
    }
  });

  // 2. Classification loss over the sampled anchors.
  int64_t num_sampled = 0;
  for (auto& s : samples) {
    out.num_sampled_pos += int64_t(s.pos.size());
    out.num_sampled_neg += int64_t(s.neg.size());
  }
  num_sampled = out.num_sampled_pos + out.num_sampled_neg;
  double cls_sum = 0;
  if (num_sampled > 0) {
    const double scale = 1.0 / double(num_sampled * C), gscale = scale * o.grad_scale;
    for (int64_t b = 0; b < N; ++b) {
      const ImageTargets& t = targets[size_t(b)];
      auto visit = [&](int32_t g, int32_t gt_label) {
        size_t l = level_of(g);
        int64_t off = (b * anchors.counts[l] + (g - offsets[l])) * C;
        const T* x = cls[l].data<T>() + off;
        T* dx = out.cls_grads[l].data<T>() + off;
        for (int64_t c = 0; c < C; ++c) {
          LossGrad r = cls_element_loss(double(x[c]), c == gt_label, o.cls_loss, o.focal_gamma, o.focal_alpha);
          cls_sum += r.loss;
          dx[c] = T(r.grad * gscale);
        }
      };
      for (int32_t g : samples[size_t(b)].pos) visit(g, t.labels[matched[size_t(b)][size_t(g)]]);
      for (int32_t g : samples[size_t(b)].neg) visit(g, -1);
    }
    out.cls = cls_sum * scale;
  }

  // 3. Box loss over all foreground anchors.
  int64_t num_fg = 0;
  for (auto& m : matched)
    for (int32_t v : m) num_fg += v >= 0;
  out.num_foreground = num_fg;
  double box_sum = 0;
  if (num_fg > 0) {
    const double scale = o.box_loss == BoxLossKind::SmoothL1 ? 1.0 / double(num_fg * 6) : 1.0 / double(num_fg);
    const double gscale = scale * o.grad_scale;
    for (int64_t b = 0; b < N; ++b) {
      const ImageTargets& t = targets[size_t(b)];
      const std::vector<int32_t>& m = matched[size_t(b)];
      for (int64_t g = 0; g < total; ++g) {
        if (m[size_t(g)] < 0) continue;
        size_t l = level_of(g);
        const float* anchor = anchors.levels[l] + 6 * (g - offsets[l]);
        const float* gt = t.boxes + 6 * m[size_t(g)];
        int64_t off = (b * anchors.counts[l] + (g - offsets[l])) * 6;
        const T* r = box[l].data<T>() + off;
        T* dr = out.box_grads[l].data<T>() + off;
        if (o.box_loss == BoxLossKind::SmoothL1) {
          float enc[6];
          encode_boxes(anchor, gt, 1, o.coder_weights, enc);
          for (int j = 0; j < 6; ++j) {
            LossGrad lg = smooth_l1(double(r[j]), double(enc[j]), o.smooth_l1_beta);
            box_sum += lg.loss;
            dr[j] = T(lg.grad * gscale);
          }
        } else {
          double d[6], grad[6];
          for (int j = 0; j < 6; ++j) d[j] = double(r[j]);
          box_sum += giou_loss_with_grad(anchor, d, o.coder_weights, gt, grad);
          for (int j = 0; j < 6; ++j) dr[j] = T(grad[j] * gscale);
        }
      }
    }
    out.box = box_sum * scale;
  }
  out.total = o.cls_weight * out.cls + out.box;
  if (o.cls_weight != 1.0)
    for (auto& t : out.cls_grads) {
      T* p = t.data<T>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = T(double(p[i]) * o.cls_weight);
    }
  return out;
}

}  // namespace

DetectorLoss zero_grad_loss(const std::vector<Tensor>& cls, const std::vector<Tensor>& box) {
  DetectorLoss out;
  for (const Tensor& t : cls) out.cls_grads.push_back(Tensor::zeros(t.shape(), t.dtype(), t.device()));
  for (const Tensor& t : box) out.box_grads.push_back(Tensor::zeros(t.shape(), t.dtype(), t.device()));
  return out;
}

DetectorLoss non_finite_loss(const std::vector<Tensor>& cls, const std::vector<Tensor>& box) {
  DetectorLoss out = zero_grad_loss(cls, box);
  out.cls = out.box = out.total = std::numeric_limits<double>::quiet_NaN();
  out.non_finite = true;
  return out;
}

DetectorLoss detector_loss(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                           const std::vector<const float*>& anchor_ptrs, const std::vector<int64_t>& anchor_counts,
                           const std::vector<ImageTargets>& targets, const DetectorLossOptions& o) {
  const char* what = "detector.loss";
  int64_t A = check_head_outputs(cls, box, o.num_classes, anchor_counts, what);
  const int64_t N = cls[0].size(0);
  DS_CHECK(int64_t(targets.size()) == N, what, ": ", targets.size(), " targets for a batch of ", N,
           " images; pass one {boxes, labels} per image (an image without lesions has empty arrays)");
  check_coder_weights(o.coder_weights);
  check_sampler_options(o.sampler);
  DS_CHECK(std::isfinite(o.focal_gamma) && o.focal_gamma >= 0, what, ": focalGamma must be >= 0, got ", o.focal_gamma);
  DS_CHECK(o.focal_alpha < 0 || o.focal_alpha <= 1, what, ": focalAlpha must be in [0, 1] (or absent), got ",
           o.focal_alpha);
  DS_CHECK(std::isfinite(o.smooth_l1_beta) && o.smooth_l1_beta > 0, what, ": smoothL1Beta must be > 0, got ",
           o.smooth_l1_beta);
  DS_CHECK(std::isfinite(o.cls_weight), what, ": clsLossWeight must be finite");
  DS_CHECK(std::isfinite(o.grad_scale) && o.grad_scale > 0, what, ": the gradient (loss) scale must be > 0, got ",
           o.grad_scale);
  AnchorLevels anchors{anchor_ptrs, anchor_counts, A};
  check_anchor_levels(anchors, true);
  for (int64_t b = 0; b < N; ++b) {
    const ImageTargets& t = targets[size_t(b)];
    check_boxes(t.boxes, t.n, "detector.loss: GT boxes");
    for (int64_t i = 0; i < t.n; ++i) {
      DS_CHECK(t.labels[i] >= 0 && t.labels[i] < o.num_classes, what, ": image ", b, " GT ", i, " has label ",
               t.labels[i], "; labels must be in [0, numClasses = ", o.num_classes, ")");
      for (int k = 0; k < 3; ++k)
        DS_CHECK(t.boxes[6 * i + k + 3] > t.boxes[6 * i + k], what, ": image ", b, " GT box ", i,
                 " has zero size on axis ", "xyz"[k], "; GT boxes need a positive size on every axis");
    }
  }
  if (!cls[0].device().is_cpu()) return detector_loss_cuda(cls, box, anchor_ptrs, anchor_counts, A, targets, o);
  if (cls[0].dtype() == DType::Float64) return run_loss<double>(cls, box, anchors, targets, o);
  return run_loss<float>(cls, box, anchors, targets, o);
}

}  // namespace ds::det
