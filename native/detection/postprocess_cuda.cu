// Post-processing with the per-level scoring and top-K selection on the GPU
// (see det_cuda.h). Per image and level, a kernel scores every (anchor,
// class) logit exactly as the CPU does (sigmoid in double, rounded to float)
// and builds a 33-bit key: bit 32 = passes the score threshold, bits 0..31 =
// the score mapped to an order-preserving unsigned integer. A stable
// descending CUB radix sort puts the passing candidates first, best first,
// ties by lower index -- the CPU's `better` order -- so the first K entries
// are the CPU's candidates. Their K box-regression rows are gathered on the
// GPU; the remaining small steps (decode, clip, size filter, batched NMS over
// at most levels*K boxes) run on the host with the CPU's own functions.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cuda_kernels.cuh"
#include "core/device_copy.h"
#include "detection/atss.h"
#include "detection/box_coder.h"
#include "detection/box_ops.h"
#include "detection/det_cuda.h"
#include "detection/nms.h"

namespace ds::det {
namespace {
using namespace ds::cuda;

template <class T>
__global__ void score_keys_kernel(const T* __restrict__ x, int64_t n, int apply_sigmoid, float thresh,
                                  unsigned long long* __restrict__ keys, int32_t* __restrict__ idx) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const double v = double(Num<T>::load(x[i]));
    float s = apply_sigmoid ? float(1.0 / (1.0 + exp(-v))) : float(v);
    const bool pass = s > thresh;  // NaN never passes
    if (s == 0.f || s != s) s = 0.f;
    const unsigned int b = __float_as_uint(s);
    const unsigned int ord = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    keys[i] = (pass ? (1ull << 32) : 0ull) | ord;
    idx[i] = int32_t(i);
  }
}

// rows[i*6 + j] = double(deltas[anchor_i*6 + j]).
template <class T>
__global__ void gather_rows_kernel(const T* __restrict__ r, const int32_t* __restrict__ anchor, int64_t k,
                                   double* __restrict__ rows) {
  for (int64_t t = global_thread(); t < k * 6; t += grid_threads())
    rows[t] = double(Num<T>::load(r[int64_t(anchor[t / 6]) * 6 + t % 6]));
}

float key_score(unsigned long long key) {
  const uint32_t ord = uint32_t(key & 0xffffffffu);
  const uint32_t b = (ord & 0x80000000u) ? (ord & 0x7fffffffu) : ~ord;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

}  // namespace

std::vector<Detections> postprocess_cuda(const std::vector<Tensor>& cls, const std::vector<Tensor>& box,
                                         const std::vector<const float*>& anchor_ptrs,
                                         const std::vector<int64_t>& anchor_counts,
                                         const std::vector<std::array<double, 3>>& image_sizes,
                                         const PostprocessOptions& o) {
  const char* what = "detector.postprocess (GPU)";
  const int64_t C = o.num_classes;
  DS_CHECK(C >= 1, what, ": numClasses must be >= 1, got ", C);
  DS_CHECK(!cls.empty() && cls.size() == box.size() && anchor_counts.size() == cls.size() &&
               anchor_ptrs.size() == cls.size(),
           what, ": need the same number (>= 1) of classification, box regression and anchor levels");
  const Device dev = cls[0].device();
  const int64_t N = cls[0].size(0);
  for (size_t l = 0; l < cls.size(); ++l) {
    check_cuda_tensor(cls[l], "classification logits");
    check_cuda_tensor(box[l], "box regression");
    check_same_device(cls[l], cls[0], "classification logits", "level 0 classification logits");
    check_same_device(box[l], cls[0], "box regression", "level 0 classification logits");
    DS_CHECK(cls[l].dim() == 5 && box[l].dim() == 5 && cls[l].size(0) == N && box[l].size(0) == N &&
                 cls[l].dtype() == cls[0].dtype() && box[l].dtype() == cls[0].dtype() &&
                 dtype_is_float(cls[l].dtype()),
             what, ": level ", l, " head outputs must be float [N, D1, D2, D3, A*numClasses] / [.., A*6] of one dtype, got ",
             cls[l].describe(), " and ", box[l].describe());
    const int64_t locs = cls[l].numel() / std::max<int64_t>(1, N * cls[l].size(4));
    DS_CHECK(cls[l].numel() == N * anchor_counts[l] * C && box[l].numel() == N * anchor_counts[l] * 6 &&
                 cls[l].size(4) * locs == anchor_counts[l] * C,
             what, ": level ", l, " has ", anchor_counts[l], " anchors but head outputs ", cls[l].describe(), " and ",
             box[l].describe());
  }
  DS_CHECK(image_sizes.size() == 1 || int64_t(image_sizes.size()) == N, what, ": ", image_sizes.size(),
           " image sizes for a batch of ", N, " images");
  DS_CHECK(std::isfinite(o.score_thresh) && o.topk_candidates_per_level >= 0 && o.detections_per_img >= 0 &&
               std::isfinite(o.min_size) && o.min_size >= 0,
           what, ": invalid options (scoreThresh finite, topk/detections >= 0, minSize >= 0)");
  check_coder_weights(o.coder_weights);
  DeviceGuard guard(dev.index);
  cudaStream_t st = stream_for(cls[0]);
  const float thresh = float(o.score_thresh);
  const int64_t K = o.topk_candidates_per_level;
  std::vector<Detections> out(static_cast<size_t>(N));
  for (int64_t b = 0; b < N; ++b) {
    const auto& size = image_sizes[image_sizes.size() == 1 ? 0 : size_t(b)];
    std::vector<float> boxes, scores;
    std::vector<int32_t> labels;
    for (size_t l = 0; l < cls.size(); ++l) {
      const int64_t n = anchor_counts[l] * C;
      if (K == 0 || n == 0) continue;
      DS_CHECK(n < (int64_t(1) << 31), what, ": level ", l, " has too many (anchor, class) pairs");
      Tensor keys = Tensor::empty({n}, DType::Int64, dev), keys_out = Tensor::empty({n}, DType::Int64, dev);
      Tensor idx = Tensor::empty({n}, DType::Int32, dev), order = Tensor::empty({n}, DType::Int32, dev);
      auto* k_in = static_cast<unsigned long long*>(keys.raw());
      auto* k_out = static_cast<unsigned long long*>(keys_out.raw());
      const size_t es = dtype_size(cls[l].dtype());
      dispatch_gpu_float(cls[l].dtype(), what, [&](auto tag) {
        using T = decltype(tag);
        const T* x = reinterpret_cast<const T*>(static_cast<const char*>(cls[l].raw()) + size_t(b * n) * es);
        score_keys_kernel<T><<<grid_for(n), kThreads, 0, st>>>(x, n, o.apply_sigmoid ? 1 : 0, thresh, k_in,
                                                               dptr<int32_t>(idx));
      });
      DS_CUDA_LAUNCH_CHECK();
      size_t temp_bytes = 0;
      DS_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, temp_bytes, k_in, k_out,
                                                              dptr<const int32_t>(idx), dptr<int32_t>(order), int(n),
                                                              0, 33, st));
      Tensor temp = Tensor::empty({int64_t(temp_bytes) + 1}, DType::UInt8, dev);
      DS_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(temp.raw(), temp_bytes, k_in, k_out,
                                                              dptr<const int32_t>(idx), dptr<int32_t>(order), int(n),
                                                              0, 33, st));
      const int64_t top = std::min(K, n);
      std::vector<unsigned long long> hk(static_cast<size_t>(top));
      std::vector<int32_t> hi(static_cast<size_t>(top));
      copy_d2h(hk.data(), k_out, size_t(top) * sizeof(unsigned long long), dev.index);
      copy_d2h(hi.data(), order.raw(), size_t(top) * sizeof(int32_t), dev.index);
      int64_t k = 0;
      while (k < top && (hk[size_t(k)] >> 32)) ++k;  // passing candidates come first
      if (k == 0) continue;
      // Regression rows of the k candidates' anchors (as double, exact for every dtype).
      std::vector<int32_t> anc(static_cast<size_t>(k));
      for (int64_t i = 0; i < k; ++i) anc[size_t(i)] = int32_t(hi[size_t(i)] / C);
      Tensor hanc = Tensor::empty({k}, DType::Int32);
      std::copy(anc.begin(), anc.end(), hanc.data<int32_t>());
      Tensor danc = to_device(hanc, dev);
      Tensor drows = Tensor::empty({k, 6}, DType::Float64, dev);
      const size_t bes = dtype_size(box[l].dtype());
      dispatch_gpu_float(box[l].dtype(), what, [&](auto tag) {
        using T = decltype(tag);
        const T* r = reinterpret_cast<const T*>(static_cast<const char*>(box[l].raw()) +
                                                size_t(b * anchor_counts[l] * 6) * bes);
        gather_rows_kernel<T><<<grid_for(k * 6), kThreads, 0, st>>>(r, dptr<const int32_t>(danc), k,
                                                                    dptr<double>(drows));
      });
      DS_CUDA_LAUNCH_CHECK();
      Tensor rows = drows.to(Device::cpu());
      // From here on the CPU's steps, unchanged.
      std::vector<float> lb(size_t(k) * 6);
      for (int64_t i = 0; i < k; ++i) {
        const int64_t a = anc[size_t(i)];
        double d[6], dec[6];
        for (int j = 0; j < 6; ++j) {
          d[j] = rows.data<double>()[i * 6 + j];
          DS_CHECK(std::isfinite(d[j]), what, ": image ", b, " level ", l, " anchor ", a,
                   " has a non-finite box regression value (", d[j], "); the network output is invalid");
        }
        check_boxes(anchor_ptrs[l] + 6 * a, 1, "detector.postprocess: anchor");
        decode_one<double>(anchor_ptrs[l] + 6 * a, d, o.coder_weights, dec, [](double v) { return std::exp(v); });
        for (int j = 0; j < 6; ++j) lb[size_t(i * 6 + j)] = float(dec[j]);
      }
      clip_boxes(lb.data(), k, size);
      for (int32_t i : keep_non_small(lb.data(), k, o.min_size)) {
        boxes.insert(boxes.end(), lb.begin() + 6 * i, lb.begin() + 6 * i + 6);
        scores.push_back(key_score(hk[size_t(i)]));
        labels.push_back(int32_t(hi[size_t(i)] % C));
      }
    }
    Detections& det = out[size_t(b)];
    const int64_t m = int64_t(scores.size());
    std::vector<int32_t> keep =
        batched_nms(boxes.data(), scores.data(), labels.data(), m, o.nms_thresh, o.detections_per_img);
    for (int32_t i : keep) {
      det.boxes.insert(det.boxes.end(), boxes.begin() + 6 * i, boxes.begin() + 6 * i + 6);
      det.scores.push_back(scores[size_t(i)]);
      det.labels.push_back(labels[size_t(i)]);
    }
  }
  return out;
}

}  // namespace ds::det
