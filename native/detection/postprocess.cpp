#include "detection/postprocess.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/thread_pool.h"
#include "detection/atss.h"
#include "detection/box_coder.h"
#include "detection/box_ops.h"
#include "detection/det_cuda.h"
#include "detection/detector_loss.h"
#include "detection/nms.h"

namespace ds::det {

namespace {

struct Cand {
  float score;
  int64_t idx;  // anchor * C + class within the level
};
inline bool better(const Cand& a, const Cand& b) { return a.score > b.score || (a.score == b.score && a.idx < b.idx); }

inline float sigmoidf_d(double x) { return float(1.0 / (1.0 + std::exp(-x))); }

template <class T>
Detections one_image(const std::vector<Tensor>& cls, const std::vector<Tensor>& box, const AnchorLevels& anchors,
                     int64_t b, const std::array<double, 3>& size, const PostprocessOptions& o) {
  const int64_t C = o.num_classes;
  const float thresh = float(o.score_thresh);
  // Logit pre-filter: sigmoid is monotonic, so only logits above
  // logit(thresh) (minus a margin for rounding) can pass; the exact test is
  // done on the float score below.
  double pre = -std::numeric_limits<double>::infinity();
  if (o.apply_sigmoid && o.score_thresh > 0 && o.score_thresh < 1)
    pre = std::log(o.score_thresh / (1.0 - o.score_thresh)) - 1e-3;
  else if (!o.apply_sigmoid)
    pre = o.score_thresh - 1e-6 * (1.0 + std::fabs(o.score_thresh));
  std::vector<float> boxes, scores;
  std::vector<int32_t> labels;
  std::vector<Cand> cand;
  const int64_t K = o.topk_candidates_per_level;
  auto score_of = [&](double v) { return o.apply_sigmoid ? sigmoidf_d(v) : float(v); };
  // Logit below which a value cannot beat score s (sigmoid is monotonic; the
  // margin covers float rounding of the score).
  auto logit_floor = [&](float s) {
    if (!o.apply_sigmoid) return double(s) - 1e-6 * (1.0 + std::fabs(double(s)));
    if (s <= 0) return -std::numeric_limits<double>::infinity();
    if (s >= 1) return 15.0;  // float sigmoid saturates to 1 near x = 17
    return std::log(double(s) / (1.0 - double(s))) - 1e-3;
  };
  for (size_t l = 0; l < cls.size(); ++l) {
    const int64_t n = anchors.counts[l] * C;
    const T* x = cls[l].data<T>() + b * n;
    cand.clear();
    if (K > 0) {
      // Running top-K: once 2K candidates are buffered, keep the best K and
      // raise the cutoff to the K-th score; later indices tying it lose.
      Cand cut{thresh, -1};
      bool have_cut = false;
      double pre_cut = pre;
      cand.reserve(size_t(std::min<int64_t>(2 * K, n)) + 1);
      for (int64_t i = 0; i < n; ++i) {
        double v = double(x[i]);
        if (!(v > pre_cut)) continue;
        float s = score_of(v);
        if (!(s > thresh)) continue;
        if (have_cut && !better(Cand{s, i}, cut)) continue;
        cand.push_back({s, i});
        if (int64_t(cand.size()) >= 2 * K) {
          std::nth_element(cand.begin(), cand.begin() + (K - 1), cand.end(), better);
          cand.resize(size_t(K));
          cut = cand[size_t(K - 1)];
          have_cut = true;
          pre_cut = std::max(pre, logit_floor(cut.score));
        }
      }
    }
    int64_t k = std::min<int64_t>(int64_t(cand.size()), K);
    if (k < int64_t(cand.size())) std::nth_element(cand.begin(), cand.begin() + k, cand.end(), better);
    cand.resize(size_t(k));
    std::sort(cand.begin(), cand.end(), better);
    const T* r = box[l].data<T>() + b * anchors.counts[l] * 6;
    std::vector<float> lb(size_t(k) * 6);
    for (int64_t i = 0; i < k; ++i) {
      int64_t a = cand[size_t(i)].idx / C;
      double d[6], out[6];
      for (int j = 0; j < 6; ++j) {
        d[j] = double(r[a * 6 + j]);
        DS_CHECK(std::isfinite(d[j]), "detector.postprocess: image ", b, " level ", l, " anchor ", a,
                 " has a non-finite box regression value (", d[j], "); the network output is invalid");
      }
      check_boxes(anchors.levels[l] + 6 * a, 1, "detector.postprocess: anchor");
      decode_one<double>(anchors.levels[l] + 6 * a, d, o.coder_weights, out, [](double v) { return std::exp(v); });
      for (int j = 0; j < 6; ++j) lb[size_t(i * 6 + j)] = float(out[j]);
    }
    clip_boxes(lb.data(), k, size);
    for (int32_t i : keep_non_small(lb.data(), k, o.min_size)) {
      boxes.insert(boxes.end(), lb.begin() + 6 * i, lb.begin() + 6 * i + 6);
      scores.push_back(cand[size_t(i)].score);
      labels.push_back(int32_t(cand[size_t(i)].idx % C));
    }
  }
  Detections det;
  const int64_t m = int64_t(scores.size());
  std::vector<int32_t> keep =
      batched_nms(boxes.data(), scores.data(), labels.data(), m, o.nms_thresh, o.detections_per_img);
  for (int32_t i : keep) {
    det.boxes.insert(det.boxes.end(), boxes.begin() + 6 * i, boxes.begin() + 6 * i + 6);
    det.scores.push_back(scores[size_t(i)]);
    det.labels.push_back(labels[size_t(i)]);
  }
  return det;
}

}  // namespace

std::vector<Detections> postprocess(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                                    const std::vector<const float*>& anchor_ptrs,
                                    const std::vector<int64_t>& anchor_counts,
                                    const std::vector<std::array<double, 3>>& image_sizes,
                                    const PostprocessOptions& o) {
  const char* what = "detector.postprocess";
  int64_t A = check_head_outputs(cls, box, o.num_classes, anchor_counts, what);
  const int64_t N = cls[0].size(0);
  DS_CHECK(image_sizes.size() == 1 || int64_t(image_sizes.size()) == N, what, ": ", image_sizes.size(),
           " image sizes for a batch of ", N, " images; pass one (x, y, z) size or one per image");
  DS_CHECK(std::isfinite(o.score_thresh), what, ": scoreThresh must be finite");
  DS_CHECK(o.topk_candidates_per_level >= 0, what, ": topkCandidatesPerLevel must be >= 0");
  DS_CHECK(o.detections_per_img >= 0, what, ": detectionsPerImg must be >= 0");
  DS_CHECK(std::isfinite(o.min_size) && o.min_size >= 0, what, ": minSize must be >= 0");
  check_coder_weights(o.coder_weights);
  for (const auto& sz : image_sizes)
    for (int k = 0; k < 3; ++k)
      DS_CHECK(std::isfinite(sz[k]) && sz[k] > 0, what, ": image size must be positive, got ", sz[k], " on axis ",
               "xyz"[k]);
  // Anchors are validated where they are used (only the selected candidates).
  AnchorLevels anchors{anchor_ptrs, anchor_counts, A};
  check_anchor_levels(anchors, false);
  // Head outputs on a GPU: scoring and top-K there (det_cuda.h), the rest as here.
  if (!cls[0].device().is_cpu()) return postprocess_cuda(cls, box, anchor_ptrs, anchor_counts, image_sizes, o);
  std::vector<Detections> out(static_cast<size_t>(N));
  const bool f64 = cls[0].dtype() == DType::Float64;
  // Images are independent; each runs serially inside (nested parallel_for is serial).
  parallel_for(0, N, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const auto& size = image_sizes[image_sizes.size() == 1 ? 0 : size_t(b)];
      out[size_t(b)] = f64 ? one_image<double>(cls, box, anchors, b, size, o)
                           : one_image<float>(cls, box, anchors, b, size, o);
    }
  });
  return out;
}

}  // namespace ds::det
