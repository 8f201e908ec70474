// The detector loss for head outputs on a GPU (see detector_loss.h and
// det_cuda.h): ATSS (atss_cuda.cu), the hard-negative sampler
// (sampler_cuda.cu: GPU ranking, host draws with the CPU's RNG, so the same
// seed samples the same anchors), then fused kernels that compute the
// classification loss over the sampled anchors and the box loss over all
// foreground anchors, writing the scaled gradients straight into zeroed
// device tensors of the inputs' shapes and dtype. Element maths in double as
// on the CPU (det_cuda_loss.cuh); loss sums are double atomics (so their
// summation order, and the last bits of the loss values, differ from the CPU).
// Host synchronisation: the sampler copies each image's matches to the host
// (its draws need the foreground list), and the two loss sums, the
// foreground count and the non-finite flag are read in one copy at the end.
#include <algorithm>
#include <cstring>
#include <vector>

#include "detection/box_coder.h"
#include "detection/box_ops.h"
#include "detection/det_cuda.h"
#include "detection/det_cuda_loss.cuh"

namespace ds::det {
namespace {
using namespace ds::cuda;
using namespace ds::det::cudadet;

constexpr int kMaxLevels = 8;

// Double -> T with one rounding for float / double (the CPU's T(double));
// 16-bit types go through float.
template <class T> __device__ __forceinline__ T from_double(double v) { return Num<T>::store(float(v)); }
template <> __device__ __forceinline__ float from_double<float>(double v) { return float(v); }
template <> __device__ __forceinline__ double from_double<double>(double v) { return v; }
template <class T> __device__ __forceinline__ double to_double(T v) { return double(Num<T>::load(v)); }

template <class T>
struct LevelPtrs {
  const T* in[kMaxLevels];
  T* grad[kMaxLevels];
  int64_t offset[kMaxLevels];
  int64_t count[kMaxLevels];
  int levels;
  __device__ __forceinline__ int level_of(int64_t g) const {
    int l = 0;
    while (l + 1 < levels && g >= offset[l + 1]) ++l;
    return l;
  }
};

// hard[b*total + off + a] = max over classes of the level's logits.
template <class T>
__global__ void hardness_kernel(const T* __restrict__ x, int64_t N, int64_t cnt, int64_t C, int64_t total, int64_t off,
                                float* __restrict__ hard) {
  for (int64_t i = global_thread(); i < N * cnt; i += grid_threads()) {
    const int64_t b = i / cnt, a = i - b * cnt;
    const T* xa = x + i * C;
    float m = Num<T>::load(xa[0]);
    for (int64_t c = 1; c < C; ++c) {
      const float v = Num<T>::load(xa[c]);
      m = v > m ? v : m;
    }
    hard[b * total + off + a] = m;
  }
}

template <class T>
__global__ void nonfinite_kernel(const T* __restrict__ x, int64_t n, int* __restrict__ flag) {
  bool bad = false;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) bad |= !isfinite(to_double(x[i]));
  if (bad) *flag = 1;  // benign race: every writer stores 1
}

__global__ void count_fg_kernel(const int32_t* __restrict__ matched, int64_t n, int* __restrict__ count) {
  int c = 0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) c += matched[i] >= 0;
  c = block_reduce(c, SumOp{}, 0);
  if (threadIdx.x == 0 && c) atomicAdd(count, c);
}

// One thread per (sampled anchor, class). entries: flat b*total + g.
template <class T>
__global__ void cls_kernel(LevelPtrs<T> lp, const int32_t* __restrict__ entries, int64_t n, int positive, int64_t C,
                           int64_t total, const int32_t* __restrict__ matched, const int32_t* __restrict__ labels,
                           const int32_t* __restrict__ image_start, int focal, double gamma, double alpha,
                           double gscale, double cls_weight, double* __restrict__ sum) {
  double acc = 0.0;
  for (int64_t t = global_thread(); t < n * C; t += grid_threads()) {
    const int64_t e = t / C, c = t - e * C;
    const int64_t fi = entries[e], b = fi / total, g = fi - b * total;
    const int l = lp.level_of(g);
    const int64_t off = (b * lp.count[l] + (g - lp.offset[l])) * C + c;
    const int32_t label = positive ? labels[image_start[b] + matched[fi]] : -1;
    double loss, grad;
    cls_element(to_double(lp.in[l][off]), c == label, focal != 0, gamma, alpha, &loss, &grad);
    acc += loss;
    T v = from_double<T>(grad * gscale);
    if (cls_weight != 1.0) v = from_double<T>(to_double(v) * cls_weight);
    lp.grad[l][off] = v;
  }
  acc = block_reduce(acc, SumOp{}, 0.0);
  if (threadIdx.x == 0 && acc != 0.0) atomicAdd(sum, acc);
}

// One thread per (image, anchor); foreground anchors only.
template <class T>
__global__ void box_kernel(LevelPtrs<T> lp, const float* __restrict__ anchors, const float* __restrict__ gt,
                           const int32_t* __restrict__ matched, const int32_t* __restrict__ image_start, int64_t N,
                           int64_t total, const int* __restrict__ num_fg, int giou_loss, Weights w, double beta,
                           double clip, double grad_scale, double* __restrict__ sum) {
  double acc = 0.0;
  const double nfg = double(*num_fg);
  const double gscale = (giou_loss ? 1.0 / nfg : 1.0 / (nfg * 6.0)) * grad_scale;
  for (int64_t fi = global_thread(); fi < N * total; fi += grid_threads()) {
    const int32_t m = matched[fi];
    if (m < 0) continue;
    const int64_t b = fi / total, g = fi - b * total;
    const int l = lp.level_of(g);
    const float* an = anchors + 6 * g;
    const float* gb = gt + 6 * (int64_t(image_start[b]) + m);
    const int64_t off = (b * lp.count[l] + (g - lp.offset[l])) * 6;
    const T* r = lp.in[l] + off;
    T* dr = lp.grad[l] + off;
    if (!giou_loss) {
      for (int k = 0; k < 3; ++k) {
        // encode_boxes (float targets), then smooth_l1 in double.
        const double sa = double(an[k + 3]) - double(an[k]), sg = double(gb[k + 3]) - double(gb[k]);
        const double ca = double(an[k]) + __dmul_rn(0.5, sa), cg = double(gb[k]) + __dmul_rn(0.5, sg);
        const float enc[2] = {float(__dmul_rn(w.w[k], cg - ca) / sa), float(__dmul_rn(w.w[k + 3], log(sg / sa)))};
        for (int h = 0; h < 2; ++h) {
          const int j = k + 3 * h;
          const double d = to_double(r[j]) - double(enc[h]), ad = fabs(d);
          double loss, grad;
          if (ad < beta) {
            loss = 0.5 * d * d / beta;
            grad = d / beta;
          } else {
            loss = ad - 0.5 * beta;
            grad = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);
          }
          acc += loss;
          dr[j] = from_double<T>(grad * gscale);
        }
      }
    } else {
      double d[6], grad[6];
      for (int j = 0; j < 6; ++j) d[j] = to_double(r[j]);
      acc += giou_loss_row(an, d, w, clip, gb, grad);
      for (int j = 0; j < 6; ++j) dr[j] = from_double<T>(grad[j] * gscale);
    }
  }
  acc = block_reduce(acc, SumOp{}, 0.0);
  if (threadIdx.x == 0 && acc != 0.0) atomicAdd(sum, acc);
}

template <class T>
LevelPtrs<T> level_ptrs(const std::vector<Tensor>& in, const std::vector<Tensor>& grad,
                        const std::vector<int64_t>& counts) {
  LevelPtrs<T> p{};
  p.levels = int(in.size());
  int64_t off = 0;
  for (size_t l = 0; l < in.size(); ++l) {
    p.in[l] = dptr<const T>(in[l]);
    p.grad[l] = dptr<T>(grad[l]);
    p.offset[l] = off;
    p.count[l] = counts[l];
    off += counts[l];
  }
  return p;
}

}  // namespace

DetectorLoss detector_loss_cuda(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                                const std::vector<const float*>& anchor_ptrs, const std::vector<int64_t>& counts,
                                int64_t A, const std::vector<ImageTargets>& targets, const DetectorLossOptions& o) {
  const size_t L = cls.size();
  DS_CHECK(L <= size_t(kMaxLevels), "detector.loss on the GPU: at most ", kMaxLevels, " levels, got ", L);
  const Device dev = cls[0].device();
  DeviceGuard guard(dev.index);
  cudaStream_t st = stream_for(cls[0]);
  const int64_t N = cls[0].size(0), C = o.num_classes;
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  DS_CHECK(N * total < (int64_t(1) << 31), "detector.loss on the GPU: too many anchors in the batch (", N * total, ")");

  // Anchors (levels concatenated) and the GT of the batch to the device.
  Tensor h_anchors = Tensor::empty({total, 6}, DType::Float32);
  for (size_t l = 0, off = 0; l < L; off += size_t(counts[l]) * 6, ++l)
    std::copy(anchor_ptrs[l], anchor_ptrs[l] + 6 * counts[l], h_anchors.data<float>() + off);
  Tensor anchors = h_anchors.to(dev);
  std::vector<const float*> gt_boxes;
  std::vector<int64_t> gt_counts;
  int64_t G = 0;
  for (const ImageTargets& t : targets) {
    gt_boxes.push_back(t.boxes);
    gt_counts.push_back(t.n);
    G += t.n;
  }
  Tensor h_gt = Tensor::empty({std::max<int64_t>(G, 1), 6}, DType::Float32);
  Tensor h_lab = Tensor::empty({std::max<int64_t>(G, 1)}, DType::Int32), h_start = Tensor::empty({N + 1}, DType::Int32);
  h_lab.data<int32_t>()[0] = 0;
  for (int64_t b = 0, g = 0; b < N; ++b) {
    h_start.data<int32_t>()[b] = int32_t(g);
    const ImageTargets& t = targets[size_t(b)];
    std::copy(t.boxes, t.boxes + 6 * t.n, h_gt.data<float>() + 6 * g);
    std::copy(t.labels, t.labels + t.n, h_lab.data<int32_t>() + g);
    g += t.n;
    h_start.data<int32_t>()[b + 1] = int32_t(g);
  }
  Tensor gt = h_gt.to(dev), labels = h_lab.to(dev), image_start = h_start.to(dev);

  // 1. Matching and hardness (max logit over classes) on the GPU.
  Tensor matched = atss_match_cuda(anchors, counts, A, gt_boxes, gt_counts, o.atss);
  Tensor hard = Tensor::empty({N, total}, DType::Float32, dev);
  // The scalars, in one buffer so that one copy brings them to the host:
  // doubles [0] cls sum, [1] box sum; then int32 [0] num_fg, [1] non-finite.
  Tensor scalars = Tensor::zeros({3}, DType::Float64, dev);
  double* sums = dptr<double>(scalars);
  int* flags = reinterpret_cast<int*>(sums + 2);
  DetectorLoss out = zero_grad_loss(cls, box);
  int64_t off = 0;
  for (size_t l = 0; l < L; ++l) {
    dispatch_gpu_float(cls[l].dtype(), "detector.loss", [&](auto tag) {
      using T = decltype(tag);
      hardness_kernel<T><<<grid_for(N * counts[l]), kThreads, 0, st>>>(dptr<const T>(cls[l]), N, counts[l], C, total,
                                                                        off, dptr<float>(hard));
      DS_CUDA_LAUNCH_CHECK();
      for (const Tensor* t : {&cls[l], &box[l]}) {
        nonfinite_kernel<T><<<grid_for(t->numel()), kThreads, 0, st>>>(dptr<const T>(*t), t->numel(), flags + 1);
        DS_CUDA_LAUNCH_CHECK();
      }
    });
    off += counts[l];
  }

  // 2. Sampling (per image, the CPU's RNG streams).
  std::vector<int32_t> pos, neg;
  for (int64_t b = 0; b < N; ++b) {
    Rng rng(o.seed * 0x9E3779B97F4A7C15ull + uint64_t(b) + 1);
    Sample s = sample_hard_negatives_cuda(matched.slice0(b, b + 1).reshape({total}),
                                          hard.slice0(b, b + 1).reshape({total}), o.sampler, rng);
    for (int32_t g : s.pos) pos.push_back(int32_t(b * total + g));
    for (int32_t g : s.neg) neg.push_back(int32_t(b * total + g));
  }
  out.num_sampled_pos = int64_t(pos.size());
  out.num_sampled_neg = int64_t(neg.size());
  const int64_t num_sampled = out.num_sampled_pos + out.num_sampled_neg;

  count_fg_kernel<<<grid_for(N * total), kThreads, 0, st>>>(dptr<const int32_t>(matched), N * total, flags);
  DS_CUDA_LAUNCH_CHECK();
  Weights w;
  for (int k = 0; k < 6; ++k) w.w[k] = o.coder_weights[k];
  const double cls_scale = num_sampled > 0 ? 1.0 / double(num_sampled * C) : 0.0;
  dispatch_gpu_float(cls[0].dtype(), "detector.loss", [&](auto tag) {
    using T = decltype(tag);
    // 3. Box loss over all foreground anchors (the count stays on the device).
    LevelPtrs<T> bp = level_ptrs<T>(box, out.box_grads, counts);
    box_kernel<T><<<grid_for(N * total), kThreads, 0, st>>>(
        bp, dptr<const float>(anchors), dptr<const float>(gt), dptr<const int32_t>(matched),
        dptr<const int32_t>(image_start), N, total, flags, o.box_loss == BoxLossKind::GIoU ? 1 : 0, w,
        o.smooth_l1_beta, kBoxXformClip, o.grad_scale, sums + 1);
    DS_CUDA_LAUNCH_CHECK();
    // 4. Classification loss over the sampled anchors.
    LevelPtrs<T> cp = level_ptrs<T>(cls, out.cls_grads, counts);
    for (int positive = 1; positive >= 0; --positive) {
      const std::vector<int32_t>& list = positive ? pos : neg;
      if (list.empty()) continue;
      Tensor h = Tensor::empty({int64_t(list.size())}, DType::Int32);
      std::copy(list.begin(), list.end(), h.data<int32_t>());
      Tensor d = h.to(dev);
      const int64_t n = int64_t(list.size());
      cls_kernel<T><<<grid_for(n * C), kThreads, 0, st>>>(
          cp, dptr<const int32_t>(d), n, positive, C, total, dptr<const int32_t>(matched), dptr<const int32_t>(labels),
          dptr<const int32_t>(image_start), o.cls_loss == ClsLossKind::Focal ? 1 : 0, o.focal_gamma, o.focal_alpha,
          cls_scale * o.grad_scale, o.cls_weight, sums);
      DS_CUDA_LAUNCH_CHECK();
    }
  });

  // 5. The scalars to the host (the one wait of the loss besides the sampler's).
  double h_scalars[3];
  copy_d2h(h_scalars, scalars.raw(), sizeof(h_scalars), dev.index);
  const double* h_sums = h_scalars;
  int h_flags[2];
  std::memcpy(h_flags, h_scalars + 2, sizeof(h_flags));
  if (h_flags[1] != 0 && o.non_finite_ok) return non_finite_loss(cls, box);
  DS_CHECK(h_flags[1] == 0, "detector.loss: the head outputs contain NaN or Inf: the network diverged (lower the "
                            "learning rate, use gradient clipping, check the input intensity normalisation)");
  out.num_foreground = h_flags[0];
  out.cls = h_sums[0] * cls_scale;
  if (out.num_foreground > 0)
    out.box = h_sums[1] * (o.box_loss == BoxLossKind::SmoothL1 ? 1.0 / double(out.num_foreground * 6)
                                                               : 1.0 / double(out.num_foreground));
  out.total = o.cls_weight * out.cls + out.box;
  return out;
}

}  // namespace ds::det
