// Greedy NMS on CUDA (see det_cuda.h):
//   1. stable descending sort of the scores with CUB (ties keep the lower
//      index first, as argsort_desc);
//   2. a 64 x 64 tile kernel writes, for every sorted box i, a bitmask of the
//      later boxes j > i with IoU(i, j) > threshold (same arithmetic as the CPU);
//      (batched: only pairs with equal labels; since labels never interact,
//      one greedy pass in global score order equals per-label NMS merged by score);
//   3. the host walks the boxes in order, keeps a box unless a kept box's mask
//      has its bit, and ORs the kept box's mask into the removal set.
#include <cub/device/device_radix_sort.cuh>

#include <vector>

#include "detection/det_cuda.h"
#include "detection/det_cuda_common.cuh"

namespace ds::det {
namespace {
using namespace ds::cuda;
using namespace ds::det::cudadet;

constexpr int kTile = 64;

__global__ void iota_kernel(int32_t* p, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) p[i] = int32_t(i);
}

__global__ void gather_boxes_kernel(const float* __restrict__ boxes, const int32_t* __restrict__ order, int64_t n,
                                    float* __restrict__ out) {
  for (int64_t t = global_thread(); t < n * 6; t += grid_threads()) out[t] = boxes[6 * int64_t(order[t / 6]) + t % 6];
}

// grid (col tiles, row tiles), 64 threads: thread r of row tile rb owns sorted box i = rb*64 + r.
// labels (sorted like the boxes) may be null; with labels only boxes of the
// same label suppress each other (batched NMS).
__global__ void nms_mask_kernel(const float* __restrict__ sorted, const int32_t* __restrict__ labels, int64_t n,
                                double thr, unsigned long long* __restrict__ mask, int64_t words) {
  const int64_t rb = blockIdx.y, cb = blockIdx.x;
  const int64_t i = rb * kTile + threadIdx.x;
  __shared__ float cols[kTile * 6];
  __shared__ int32_t col_labels[kTile];
  const int64_t c0 = cb * kTile;
  const int ncols = int(n - c0 < kTile ? n - c0 : kTile);
  for (int t = threadIdx.x; t < ncols * 6; t += blockDim.x) cols[t] = sorted[c0 * 6 + t];
  for (int t = threadIdx.x; t < ncols; t += blockDim.x) col_labels[t] = labels ? labels[c0 + t] : 0;
  __syncthreads();
  if (i >= n) return;
  unsigned long long bits = 0;
  if (cb >= rb) {  // tiles left of the diagonal only hold j < i
    float bi[6];
    for (int k = 0; k < 6; ++k) bi[k] = sorted[i * 6 + k];
    const double vi = double(volume_f(bi));
    const int32_t li = labels ? labels[i] : 0;
    for (int c = 0; c < ncols; ++c) {
      const int64_t j = c0 + c;
      if (j <= i || col_labels[c] != li) continue;
      const float* bj = cols + 6 * c;
      const double inter = intersection(bi, bj);
      if (inter <= 0) continue;
      const double iou = inter / (vi + double(volume_f(bj)) - inter + kEps);
      if (iou > thr) bits |= 1ull << c;
    }
  }
  mask[i * words + cb] = bits;
}

__global__ void gather_labels_kernel(const int32_t* __restrict__ labels, const int32_t* __restrict__ order, int64_t n,
                                     int32_t* __restrict__ out) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = labels[order[i]];
}

std::vector<int32_t> nms_impl(const Tensor& boxes, const Tensor& scores, const Tensor* labels, double thr,
                              int64_t max_keep);

}  // namespace

std::vector<int32_t> nms_cuda(const Tensor& boxes, const Tensor& scores, double thr, int64_t max_keep) {
  return nms_impl(boxes, scores, nullptr, thr, max_keep);
}

std::vector<int32_t> batched_nms_cuda(const Tensor& boxes, const Tensor& scores, const Tensor& labels, double thr,
                                      int64_t max_keep) {
  check_cuda_tensor(labels, "batched nms: labels");
  check_same_device(boxes, labels, "batched nms: boxes", "batched nms: labels");
  DS_CHECK(labels.dtype() == DType::Int32 && labels.numel() == boxes.size(0),
           "batched nms: labels must be int32 with one entry per box, got ", labels.describe());
  return nms_impl(boxes, scores, &labels, thr, max_keep);
}

namespace {

std::vector<int32_t> nms_impl(const Tensor& boxes, const Tensor& scores, const Tensor* labels, double thr,
                              int64_t max_keep) {
  check_cuda_tensor(boxes, "nms: boxes");
  check_cuda_tensor(scores, "nms: scores");
  check_same_device(boxes, scores, "nms: boxes", "nms: scores");
  DS_CHECK(boxes.dim() == 2 && boxes.size(1) == 6 && boxes.dtype() == DType::Float32, "nms: boxes must be float32 [n, 6], got ",
           boxes.describe());
  const int64_t n = boxes.size(0);
  DS_CHECK(scores.dtype() == DType::Float32 && scores.numel() == n, "nms: scores must be float32 [", n, "], got ",
           scores.describe());
  DS_CHECK(std::isfinite(thr) && thr >= 0, "nms: iouThreshold must be a finite number >= 0, got ", thr);
  DS_CHECK(n <= 65536, "nms on the GPU handles at most 65536 boxes (got ", n,
           "); keep the top-scoring candidates first (postprocess does)");
  if (n == 0 || max_keep == 0) return {};
  const Device dev = boxes.device();
  DeviceGuard guard(dev.index);
  cudaStream_t st = stream_for(boxes);
  // 1. Sort (keys descending, stable).
  Tensor idx = Tensor::empty({n}, DType::Int32, dev), order = Tensor::empty({n}, DType::Int32, dev);
  Tensor keys_out = Tensor::empty({n}, DType::Float32, dev);
  iota_kernel<<<grid_for(n), kThreads, 0, st>>>(dptr<int32_t>(idx), n);
  DS_CUDA_LAUNCH_CHECK();
  size_t temp_bytes = 0;
  DS_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(nullptr, temp_bytes, dptr<const float>(scores),
                                                          dptr<float>(keys_out), dptr<const int32_t>(idx),
                                                          dptr<int32_t>(order), int(n), 0, 32, st));
  Tensor temp = Tensor::empty({int64_t(temp_bytes) + 1}, DType::UInt8, dev);
  DS_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(temp.raw(), temp_bytes, dptr<const float>(scores),
                                                          dptr<float>(keys_out), dptr<const int32_t>(idx),
                                                          dptr<int32_t>(order), int(n), 0, 32, st));
  // 2. Sorted boxes and the suppression mask.
  Tensor sorted = Tensor::empty({n, 6}, DType::Float32, dev);
  gather_boxes_kernel<<<grid_for(n * 6), kThreads, 0, st>>>(dptr<const float>(boxes), dptr<const int32_t>(order), n,
                                                            dptr<float>(sorted));
  DS_CUDA_LAUNCH_CHECK();
  Tensor sorted_labels;
  if (labels) {
    sorted_labels = Tensor::empty({n}, DType::Int32, dev);
    gather_labels_kernel<<<grid_for(n), kThreads, 0, st>>>(dptr<const int32_t>(*labels), dptr<const int32_t>(order), n,
                                                           dptr<int32_t>(sorted_labels));
    DS_CUDA_LAUNCH_CHECK();
  }
  const int64_t words = (n + kTile - 1) / kTile;
  Tensor mask = Tensor::empty({n * words}, DType::Int64, dev);
  nms_mask_kernel<<<dim3(unsigned(words), unsigned(words)), kTile, 0, st>>>(
      dptr<const float>(sorted), labels ? dptr<const int32_t>(sorted_labels) : nullptr, n, thr,
      static_cast<unsigned long long*>(mask.raw()), words);
  DS_CUDA_LAUNCH_CHECK();
  // 3. Greedy pass on the host.
  Tensor hmask = mask.to(Device::cpu()), horder = order.to(Device::cpu());
  const uint64_t* m = reinterpret_cast<const uint64_t*>(hmask.raw());
  const int32_t* ord = horder.data<int32_t>();
  std::vector<uint64_t> removed(size_t(words), 0);
  std::vector<int32_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[size_t(i / kTile)] >> (i % kTile) & 1) continue;
    keep.push_back(ord[i]);
    if (max_keep >= 0 && int64_t(keep.size()) >= max_keep) break;
    const uint64_t* row = m + i * words;
    for (int64_t w = i / kTile; w < words; ++w) removed[size_t(w)] |= row[w];
  }
  return keep;
}

}  // namespace

}  // namespace ds::det
