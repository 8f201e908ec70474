// Pairwise IoU / GIoU and the box coder on CUDA (see det_cuda.h).
// IoU matrices: one thread per (i, j) pair, j fastest, so a warp reads one box
// of `a` (broadcast) and 32 consecutive boxes of `b`.
#include "detection/box_coder.h"
#include "detection/det_cuda.h"
#include "detection/det_cuda_common.cuh"

namespace ds::det {
namespace {
using namespace ds::cuda;
using namespace ds::det::cudadet;

template <bool G>
__global__ void pairwise_kernel(const float* __restrict__ a, int64_t n, const float* __restrict__ b, int64_t m,
                                float* __restrict__ out) {
  const int64_t total = n * m;
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    const int64_t i = t / m, j = t - i * m;
    out[t] = float(G ? giou(a + 6 * i, b + 6 * j) : iou(a + 6 * i, b + 6 * j));
  }
}

__global__ void encode_kernel(const float* __restrict__ anchors, const float* __restrict__ gt, int64_t n, Weights w,
                              float* __restrict__ out, int* __restrict__ bad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float* a = anchors + 6 * i;
    const float* g = gt + 6 * i;
    for (int k = 0; k < 3; ++k) {
      const double sa = double(a[k + 3]) - double(a[k]), sg = double(g[k + 3]) - double(g[k]);
      if (!(sa > 0) || !(sg > 0)) *bad = 1;  // reported by the host (benign race: same value)
      const double ca = double(a[k]) + __dmul_rn(0.5, sa), cg = double(g[k]) + __dmul_rn(0.5, sg);
      out[6 * i + k] = float(__dmul_rn(w.w[k], cg - ca) / sa);
      out[6 * i + k + 3] = float(__dmul_rn(w.w[k + 3], log(sg / sa)));
    }
  }
}

template <class T>
__global__ void decode_kernel(const float* __restrict__ anchors, const T* __restrict__ deltas, int64_t n, Weights w,
                              double clip, float* __restrict__ out) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float* a = anchors + 6 * i;
    for (int k = 0; k < 3; ++k) {
      const double sa = double(a[k + 3]) - double(a[k]);
      const double ca = double(a[k]) + __dmul_rn(0.5, sa);
      const double dc = __dmul_rn(double(Num<T>::load(deltas[6 * i + k])), 1.0 / w.w[k]);
      double dsz = __dmul_rn(double(Num<T>::load(deltas[6 * i + k + 3])), 1.0 / w.w[k + 3]);
      if (dsz > clip) dsz = clip;
      const double c = __dadd_rn(__dmul_rn(dc, sa), ca);
      const double s = __dmul_rn(exp(dsz), sa);
      out[6 * i + k] = float(c - __dmul_rn(s, 0.5));
      out[6 * i + k + 3] = float(c + __dmul_rn(s, 0.5));
    }
  }
}

void check_boxes_t(const Tensor& t, const char* what) {
  check_cuda_tensor(t, what);
  DS_CHECK(t.dim() == 2 && t.size(1) == 6, what, " must be a [n, 6] tensor of boxes, got ", t.describe());
}

Weights weights(const double w[6]) {
  check_coder_weights(w);
  Weights r;
  for (int k = 0; k < 6; ++k) r.w[k] = w[k];
  return r;
}

Tensor pairwise(const Tensor& a, const Tensor& b, bool g) {
  check_boxes_t(a, "box IoU: first box tensor");
  check_boxes_t(b, "box IoU: second box tensor");
  check_same_device(a, b, "box IoU: first box tensor", "box IoU: second box tensor");
  DS_CHECK(a.dtype() == DType::Float32 && b.dtype() == DType::Float32, "box IoU: boxes must be float32");
  DeviceGuard guard(a.device().index);
  const int64_t n = a.size(0), m = b.size(0);
  Tensor out = Tensor::empty({n, m}, DType::Float32, a.device());
  if (n * m == 0) return out;
  if (g)
    pairwise_kernel<true><<<grid_for(n * m), kThreads, 0, stream_for(a)>>>(dptr<const float>(a), n, dptr<const float>(b),
                                                                          m, dptr<float>(out));
  else
    pairwise_kernel<false><<<grid_for(n * m), kThreads, 0, stream_for(a)>>>(dptr<const float>(a), n,
                                                                           dptr<const float>(b), m, dptr<float>(out));
  DS_CUDA_LAUNCH_CHECK();
  return out;
}

}  // namespace

Tensor box_iou_cuda(const Tensor& a, const Tensor& b) { return pairwise(a, b, false); }
Tensor box_giou_cuda(const Tensor& a, const Tensor& b) { return pairwise(a, b, true); }

Tensor encode_boxes_cuda(const Tensor& anchors, const Tensor& gt, const double w[6]) {
  check_boxes_t(anchors, "box encode: anchors");
  check_boxes_t(gt, "box encode: GT boxes");
  check_same_device(anchors, gt, "box encode: anchors", "box encode: GT boxes");
  DS_CHECK(anchors.dtype() == DType::Float32 && gt.dtype() == DType::Float32 && anchors.size(0) == gt.size(0),
           "box encode: anchors and GT boxes must be float32 [n, 6] with the same n, got ", anchors.describe(),
           " and ", gt.describe());
  const Weights ww = weights(w);
  DeviceGuard guard(anchors.device().index);
  const int64_t n = anchors.size(0);
  Tensor out = Tensor::empty({n, 6}, DType::Float32, anchors.device());
  if (!n) return out;
  Tensor bad = Tensor::zeros({1}, DType::Int32, anchors.device());
  encode_kernel<<<grid_for(n), kThreads, 0, stream_for(anchors)>>>(dptr<const float>(anchors), dptr<const float>(gt),
                                                                   n, ww, dptr<float>(out), dptr<int>(bad));
  DS_CUDA_LAUNCH_CHECK();
  DS_CHECK(bad.to(Device::cpu()).data<int32_t>()[0] == 0,
           "box encode: an anchor or GT box has a non-positive size on some axis; boxes to encode need positive sizes "
           "(log of 0 is -inf)");
  return out;
}

Tensor decode_boxes_cuda(const Tensor& anchors, const Tensor& deltas, const double w[6]) {
  check_boxes_t(anchors, "box decode: anchors");
  check_boxes_t(deltas, "box decode: deltas");
  check_same_device(anchors, deltas, "box decode: anchors", "box decode: deltas");
  DS_CHECK(anchors.dtype() == DType::Float32 && anchors.size(0) == deltas.size(0),
           "box decode: anchors must be float32 [n, 6] with one row per delta row, got ", anchors.describe(), " and ",
           deltas.describe());
  const Weights ww = weights(w);
  DeviceGuard guard(anchors.device().index);
  const int64_t n = anchors.size(0);
  Tensor out = Tensor::empty({n, 6}, DType::Float32, anchors.device());
  if (!n) return out;
  dispatch_gpu_float(deltas.dtype(), "box decode", [&](auto tag) {
    using T = decltype(tag);
    decode_kernel<T><<<grid_for(n), kThreads, 0, stream_for(anchors)>>>(dptr<const float>(anchors),
                                                                        dptr<const T>(deltas), n, ww, kBoxXformClip,
                                                                        dptr<float>(out));
  });
  DS_CUDA_LAUNCH_CHECK();
  return out;
}

}  // namespace ds::det
