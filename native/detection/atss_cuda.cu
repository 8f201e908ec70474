// ATSS matching on the GPU (see det_cuda.h), with atss_match's semantics and
// arithmetic, so the matches equal the CPU's exactly:
//   1. one block per (GT, level) selects the k anchors nearest to the GT
//      centre by (squared distance, anchor index) -- the CPU's order. Each
//      thread keeps its own sorted k-list over a strided slice of the level,
//      then k rounds of a block arg-min merge the lists. Centres are computed
//      per anchor (the CPU's per-location centres are the same numbers when
//      the anchors of a location share a centre, and it falls back to per
//      anchor otherwise), so ordering by (distance, anchor index) gives the
//      CPU's candidate lists in both cases.
//   2. one thread per GT computes the candidates' IoUs in the CPU's order
//      (levels, then nearest first), the mean and unbiased std with the same
//      sequential double sums (explicit _rn intrinsics: no FMA contraction,
//      which the CPU build does not do either), and keeps the positives.
//   3. one thread per positive (GT, anchor) decides whether it wins the
//      anchor: highest IoU, ties to the lower GT index -- the CPU's rule.
#include <math_constants.h>

#include <algorithm>
#include <vector>

#include "detection/box_ops.h"
#include "detection/det_cuda.h"
#include "detection/det_cuda_common.cuh"

namespace ds::det {
namespace {
using namespace ds::cuda;
using namespace ds::det::cudadet;

constexpr int kMaxLevels = 8;
constexpr int kTopkThreads = 256;

struct LevelTable {
  int64_t offset[kMaxLevels];
  int64_t count[kMaxLevels];
  int64_t k[kMaxLevels];
  int levels;
};

__device__ __forceinline__ bool cand_less(double da, int32_t ia, double db, int32_t ib) {
  return da < db || (da == db && ia < ib);
}

// Block per (GT g = blockIdx.x, level l = blockIdx.y); writes the level's k
// nearest anchors (global indices, nearest first) to cand[(g*L + l)*KMAX ..].
template <int KMAX>
__global__ void __launch_bounds__(kTopkThreads) atss_topk_kernel(const float* __restrict__ anchors,
                                                                 const float* __restrict__ gt, LevelTable lt,
                                                                 int32_t* __restrict__ cand) {
  const int g = blockIdx.x, l = blockIdx.y;
  const int64_t k = lt.k[l];
  if (k <= 0) return;
  const float* box = gt + 6 * int64_t(g);
  double gc[3];
  for (int j = 0; j < 3; ++j) gc[j] = __dmul_rn(0.5, __dadd_rn(double(box[j]), double(box[j + 3])));
  double dist[KMAX];
  int32_t idx[KMAX];
  int n = 0;
  const int64_t off = lt.offset[l], cnt = lt.count[l];
  for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) {
    const float* a = anchors + 6 * (off + i);
    double d2 = 0.0;
    for (int j = 0; j < 3; ++j) {
      // The CPU's float centre 0.5f * (lo + hi), then the difference in double.
      const float c = __fmul_rn(0.5f, __fadd_rn(a[j], a[j + 3]));
      const double d = __dsub_rn(double(c), gc[j]);
      d2 = j == 0 ? __dmul_rn(d, d) : __dadd_rn(d2, __dmul_rn(d, d));
    }
    const int32_t id = int32_t(i);  // level-local; ascending within this thread
    if (n == k && !cand_less(d2, id, dist[n - 1], idx[n - 1])) continue;
    int p = n < k ? n++ : int(k) - 1;
    while (p > 0 && cand_less(d2, id, dist[p - 1], idx[p - 1])) {
      dist[p] = dist[p - 1];
      idx[p] = idx[p - 1];
      --p;
    }
    dist[p] = d2;
    idx[p] = id;
  }
  // k rounds of block arg-min over the heads of the per-thread lists.
  __shared__ double s_d[kTopkThreads / 32];
  __shared__ int32_t s_i[kTopkThreads / 32];
  __shared__ int32_t s_win;
  int head = 0;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t r = 0; r < k; ++r) {
    double d = head < n ? dist[head] : CUDART_INF;
    int32_t id = head < n ? idx[head] : INT32_MAX;
    for (int o = 16; o > 0; o >>= 1) {
      const double od = __shfl_down_sync(0xffffffffu, d, o);
      const int32_t oi = __shfl_down_sync(0xffffffffu, id, o);
      if (cand_less(od, oi, d, id)) {
        d = od;
        id = oi;
      }
    }
    if (lane == 0) {
      s_d[warp] = d;
      s_i[warp] = id;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < nwarps; ++w)
        if (cand_less(s_d[w], s_i[w], d, id)) {
          d = s_d[w];
          id = s_i[w];
        }
      s_win = id;
      cand[(int64_t(g) * lt.levels + l) * KMAX + r] = int32_t(off) + id;
    }
    __syncthreads();
    if (head < n && idx[head] == s_win) ++head;  // indices are unique: exactly one thread advances
  }
}

// One thread per GT: IoU statistics and positives (pos_idx/pos_iou hold up to
// L*KMAX entries per GT, pos_n the count).
template <int KMAX>
__global__ void atss_select_kernel(const float* __restrict__ anchors, const float* __restrict__ gt, int64_t num_gt,
                                   LevelTable lt, const int32_t* __restrict__ cand, int center_in_gt,
                                   int32_t* __restrict__ pos_idx, double* __restrict__ pos_iou,
                                   int32_t* __restrict__ pos_n) {
  for (int64_t g = global_thread(); g < num_gt; g += grid_threads()) {
    const float* box = gt + 6 * g;
    const int64_t stride = int64_t(lt.levels) * KMAX;
    const int32_t* c = cand + g * stride;
    int32_t* pi = pos_idx + g * stride;
    double* pv = pos_iou + g * stride;
    int64_t K = 0;
    double mean = 0.0;
    for (int l = 0; l < lt.levels; ++l)
      for (int64_t r = 0; r < lt.k[l]; ++r) {
        mean = __dadd_rn(mean, iou(anchors + 6 * int64_t(c[l * KMAX + r]), box));
        ++K;
      }
    int np = 0;
    if (K == 1) {
      for (int l = 0; l < lt.levels; ++l)
        if (lt.k[l] > 0) {
          pi[0] = c[l * KMAX];
          pv[0] = iou(anchors + 6 * int64_t(c[l * KMAX]), box);
          np = 1;
          break;
        }
      pos_n[g] = np;
      continue;
    }
    mean = mean / double(K);
    double var = 0.0;
    for (int l = 0; l < lt.levels; ++l)
      for (int64_t r = 0; r < lt.k[l]; ++r) {
        const double d = __dsub_rn(iou(anchors + 6 * int64_t(c[l * KMAX + r]), box), mean);
        var = __dadd_rn(var, __dmul_rn(d, d));
      }
    const double thr = __dadd_rn(mean, sqrt(var / double(K - 1)));
    for (int l = 0; l < lt.levels; ++l)
      for (int64_t r = 0; r < lt.k[l]; ++r) {
        const int32_t ai = c[l * KMAX + r];
        const float* a = anchors + 6 * int64_t(ai);
        const double v = iou(a, box);
        if (!(v >= thr)) continue;
        if (center_in_gt) {
          double m = CUDART_INF;
          for (int j = 0; j < 3; ++j) {
            const double cc = __dmul_rn(0.5, __dadd_rn(double(a[j]), double(a[j + 3])));
            m = fmin(m, fmin(__dsub_rn(cc, double(box[j])), __dsub_rn(double(box[j + 3]), cc)));
          }
          if (!(m > 0.01)) continue;
        }
        pi[np] = ai;
        pv[np] = v;
        ++np;
      }
    pos_n[g] = np;
  }
}

// One thread per (GT, positive slot): the entry wins its anchor unless a GT of
// the same image has it with a higher IoU, or the same IoU and a lower index.
__global__ void atss_resolve_kernel(int64_t num_gt, int64_t stride, const int32_t* __restrict__ pos_idx,
                                    const double* __restrict__ pos_iou, const int32_t* __restrict__ pos_n,
                                    const int32_t* __restrict__ gt_image, const int32_t* __restrict__ image_start,
                                    int64_t total, int32_t* __restrict__ matched) {
  for (int64_t t = global_thread(); t < num_gt * stride; t += grid_threads()) {
    const int64_t g = t / stride, j = t - g * stride;
    if (j >= pos_n[g]) continue;
    const int32_t a = pos_idx[t];
    const double v = pos_iou[t];
    const int32_t b = gt_image[g];
    bool win = true;
    for (int32_t h = image_start[b]; h < image_start[b + 1] && win; ++h) {
      if (h == g) continue;
      for (int32_t q = 0; q < pos_n[h]; ++q)
        if (pos_idx[h * stride + q] == a) {
          const double w = pos_iou[h * stride + q];
          if (w > v || (w == v && h < g)) win = false;
          break;  // an anchor appears at most once per GT
        }
    }
    if (win) matched[int64_t(b) * total + a] = int32_t(g - image_start[b]);
  }
}

template <int KMAX>
void run_atss(const Tensor& anchors, const Tensor& gt, int64_t G, const LevelTable& lt, const AtssOptions& o,
              const Tensor& gt_image, const Tensor& image_start, int64_t total, Tensor& matched) {
  const Device dev = anchors.device();
  cudaStream_t st = stream_for(anchors);
  const int64_t stride = int64_t(lt.levels) * KMAX;
  Tensor cand = Tensor::empty({G * stride}, DType::Int32, dev);
  Tensor pos_idx = Tensor::empty({G * stride}, DType::Int32, dev);
  Tensor pos_iou = Tensor::empty({G * stride}, DType::Float64, dev);
  Tensor pos_n = Tensor::empty({G}, DType::Int32, dev);
  atss_topk_kernel<KMAX><<<dim3(unsigned(G), unsigned(lt.levels)), kTopkThreads, 0, st>>>(
      dptr<const float>(anchors), dptr<const float>(gt), lt, dptr<int32_t>(cand));
  DS_CUDA_LAUNCH_CHECK();
  atss_select_kernel<KMAX><<<grid_for(G, 64), 64, 0, st>>>(dptr<const float>(anchors), dptr<const float>(gt), G, lt,
                                                          dptr<const int32_t>(cand), o.center_in_gt ? 1 : 0,
                                                          dptr<int32_t>(pos_idx), dptr<double>(pos_iou),
                                                          dptr<int32_t>(pos_n));
  DS_CUDA_LAUNCH_CHECK();
  atss_resolve_kernel<<<grid_for(G * stride), kThreads, 0, st>>>(
      G, stride, dptr<const int32_t>(pos_idx), dptr<const double>(pos_iou), dptr<const int32_t>(pos_n),
      dptr<const int32_t>(gt_image), dptr<const int32_t>(image_start), total, dptr<int32_t>(matched));
  DS_CUDA_LAUNCH_CHECK();
}

}  // namespace

Tensor atss_match_cuda(const Tensor& anchors, const std::vector<int64_t>& level_counts, int64_t per_location,
                       const std::vector<const float*>& gt_boxes, const std::vector<int64_t>& gt_counts,
                       const AtssOptions& o) {
  check_cuda_tensor(anchors, "ATSS: anchors");
  DS_CHECK(anchors.dtype() == DType::Float32 && anchors.dim() == 2 && anchors.size(1) == 6,
           "ATSS: anchors must be a float32 [total, 6] tensor, got ", anchors.describe());
  DS_CHECK(o.num_candidates >= 1, "ATSS: numCandidates must be >= 1, got ", o.num_candidates);
  DS_CHECK(!level_counts.empty() && level_counts.size() <= size_t(kMaxLevels), "ATSS on the GPU: 1 to ", kMaxLevels,
           " anchor levels are supported, got ", level_counts.size());
  DS_CHECK(per_location >= 1, "ATSS: anchorsPerLocation must be >= 1, got ", per_location);
  DS_CHECK(gt_boxes.size() == gt_counts.size(), "internal: ATSS GT boxes and counts differ");
  int64_t total = 0;
  LevelTable lt{};
  lt.levels = int(level_counts.size());
  int64_t kmax = 0;
  for (size_t l = 0; l < level_counts.size(); ++l) {
    DS_CHECK(level_counts[l] >= 0 && level_counts[l] % per_location == 0, "anchors: level ", l, " has ",
             level_counts[l], " anchors, not a multiple of anchorsPerLocation = ", per_location);
    lt.offset[l] = total;
    lt.count[l] = level_counts[l];
    const int64_t locations = level_counts[l] / per_location;
    lt.k[l] = std::min({o.num_candidates * per_location, locations, level_counts[l]});
    kmax = std::max(kmax, lt.k[l]);
    total += level_counts[l];
  }
  DS_CHECK(total == anchors.size(0), "ATSS: the levels hold ", total, " anchors but the anchor tensor has ",
           anchors.size(0));
  DS_CHECK(total < (int64_t(1) << 31), "ATSS on the GPU: too many anchors (", total, ")");
  DS_CHECK(kmax <= 64, "ATSS on the GPU: numCandidates * anchorsPerLocation = ", o.num_candidates * per_location,
           " candidates per level exceeds the GPU kernel's limit of 64; lower numCandidates");
  const int64_t N = int64_t(gt_counts.size());
  const Device dev = anchors.device();
  DeviceGuard guard(dev.index);
  Tensor matched = Tensor::empty({N, total}, DType::Int32, dev);
  if (N * total > 0) memset_async(matched.raw(), 0xFF, matched.nbytes(), dev.index);  // all -1
  // GT boxes of all images, their image and each image's first GT.
  int64_t G = 0;
  for (int64_t b = 0; b < N; ++b) {
    DS_CHECK(gt_counts[size_t(b)] >= 0, "ATSS: negative GT count");
    check_boxes(gt_boxes[size_t(b)], gt_counts[size_t(b)], "ATSS: GT boxes");
    G += gt_counts[size_t(b)];
  }
  if (G == 0 || total == 0) return matched;
  Tensor hgt = Tensor::empty({G, 6}, DType::Float32);
  Tensor himg = Tensor::empty({G}, DType::Int32), hstart = Tensor::empty({N + 1}, DType::Int32);
  {
    float* pg = hgt.data<float>();
    int32_t* pi = himg.data<int32_t>();
    int32_t* ps = hstart.data<int32_t>();
    int64_t g = 0;
    for (int64_t b = 0; b < N; ++b) {
      ps[b] = int32_t(g);
      std::copy(gt_boxes[size_t(b)], gt_boxes[size_t(b)] + 6 * gt_counts[size_t(b)], pg + 6 * g);
      for (int64_t i = 0; i < gt_counts[size_t(b)]; ++i) pi[g++] = int32_t(b);
    }
    ps[N] = int32_t(g);
  }
  Tensor gt = hgt.to(dev), gt_image = himg.to(dev), image_start = hstart.to(dev);
  if (kmax <= 16)
    run_atss<16>(anchors, gt, G, lt, o, gt_image, image_start, total, matched);
  else
    run_atss<64>(anchors, gt, G, lt, o, gt_image, image_start, total, matched);
  return matched;
}

}  // namespace ds::det
