// Fused multi-tensor SGD (nn/sgd_multi.h): one launch for all parameters.
// The host builds a table of per-tensor pointers and a list of chunks (one
// block per chunk of kChunk elements of one tensor) and uploads both; each
// block reads its chunk descriptor and updates those elements. Upload and
// kernel are ordered on the compute stream, and the table's device memory may
// be released right after the launch because the caching allocator only
// reuses it for later work on the same stream.
#include <cstring>
#include <vector>

#include "core/cuda_kernels.cuh"
#include "core/device_copy.h"
#include "nn/nn_cuda.h"
#include "nn/sgd_multi.h"

namespace ds::nn {
namespace {
using namespace ds::cuda;

constexpr int64_t kChunk = 16384;  // elements per block (64 per thread)

struct Desc {
  void* p;
  const void* g;
  void* buf;
  void* copy;
  int64_t n;
  int first;
};
struct Chunk {
  int tensor;
  int64_t begin;
};
template <class P>
struct Hyper {
  P lr, mom, damp, wd, scale;
  int nesterov;
  int use_wd;
  int use_mom;
};

enum CopyKind { kNoCopy = 0, kHalfCopy = 1, kBf16Copy = 2 };

template <class P, class G, int CK>
__global__ void sgd_kernel(const Desc* __restrict__ descs, const Chunk* __restrict__ chunks, Hyper<P> h) {
  const Chunk ch = chunks[blockIdx.x];
  const Desc d = descs[ch.tensor];
  P* p = static_cast<P*>(d.p);
  const G* g = static_cast<const G*>(d.g);
  P* buf = static_cast<P*>(d.buf);
  const int64_t end = d.n < ch.begin + kChunk ? d.n : ch.begin + kChunk;
  for (int64_t i = ch.begin + threadIdx.x; i < end; i += blockDim.x) {
    P v = P(Num<G>::load(g[i])) * h.scale;
    const P pi = p[i];
    if (h.use_wd) v += h.wd * pi;
    if (h.use_mom) {
      const P b = d.first ? v : h.mom * buf[i] + h.damp * v;
      buf[i] = b;
      v = h.nesterov ? v + h.mom * b : b;
    }
    const P np = pi - h.lr * v;
    p[i] = np;
    if (CK == kHalfCopy) static_cast<__half*>(d.copy)[i] = __float2half_rn(float(np));
    if (CK == kBf16Copy) static_cast<__nv_bfloat16*>(d.copy)[i] = __float2bfloat16_rn(float(np));
  }
}

template <class T>
Tensor upload(const std::vector<T>& v, Device dev) {
  Tensor host = Tensor::empty({int64_t(v.size() * sizeof(T))}, DType::UInt8);
  std::memcpy(host.raw(), v.data(), v.size() * sizeof(T));
  return to_device(host, dev);
}

}  // namespace

void sgd_multi_step_cuda(SgdMultiArgs& a) {
  // a has been validated by sgd_multi_step (same device, shapes, dtypes).
  const size_t nt = a.params.size();
  if (!nt) return;
  const Device dev = a.params[0].device();
  check_cuda_tensor(a.params[0], "SGD parameter");
  const DType pdt = a.params[0].dtype(), gdt = a.grads[0].dtype();
  const DType cdt = a.compute.empty() ? DType::Float32 : a.compute[0].dtype();
  for (size_t k = 0; k < nt; ++k) {
    DS_CHECK(a.params[k].dtype() == pdt && a.grads[k].dtype() == gdt &&
                 (a.compute.empty() || a.compute[k].dtype() == cdt),
             "SGD on the GPU: all parameters (and all gradients, all compute copies) must share one dtype; tensor ",
             k, " differs");
  }
  const bool mom = a.opt.momentum != 0;
  if (mom && a.bufs.empty()) a.bufs.resize(nt);
  std::vector<Desc> descs(nt);
  std::vector<Chunk> chunks;
  for (size_t k = 0; k < nt; ++k) {
    Desc& d = descs[k];
    d.first = 0;
    if (mom && !a.bufs[k].defined()) {
      a.bufs[k] = Tensor::empty(a.params[k].shape(), pdt, dev);
      d.first = 1;
    }
    d.p = a.params[k].raw();
    d.g = a.grads[k].raw();
    d.buf = mom ? a.bufs[k].raw() : nullptr;
    d.copy = a.compute.empty() ? nullptr : a.compute[k].raw();
    d.n = a.params[k].numel();
    for (int64_t b = 0; b < d.n; b += kChunk) chunks.push_back(Chunk{int(k), b});
  }
  if (chunks.empty()) return;
  DS_CHECK(chunks.size() < (size_t(1) << 31), "SGD: too many parameter chunks");
  DeviceGuard guard(dev.index);
  Tensor tdesc = upload(descs, dev), tchunk = upload(chunks, dev);
  const Desc* pd = static_cast<const Desc*>(tdesc.raw());
  const Chunk* pc = static_cast<const Chunk*>(tchunk.raw());
  cudaStream_t st = stream_for(a.params[0]);
  const unsigned grid = unsigned(chunks.size());
  const int ck = a.compute.empty() ? kNoCopy : (cdt == DType::Float16 ? kHalfCopy : kBf16Copy);
  auto launch = [&](auto ptag, auto gtag) {
    using P = decltype(ptag);
    using G = decltype(gtag);
    Hyper<P> h;
    h.lr = P(a.opt.lr);
    h.mom = P(a.opt.momentum);
    h.damp = P(1.0 - a.opt.dampening);
    h.wd = P(a.opt.weight_decay);
    h.scale = P(a.grad_scale);
    h.nesterov = a.opt.nesterov ? 1 : 0;
    h.use_wd = a.opt.weight_decay != 0 ? 1 : 0;
    h.use_mom = mom ? 1 : 0;
    if (ck == kHalfCopy)
      sgd_kernel<P, G, kHalfCopy><<<grid, kThreads, 0, st>>>(pd, pc, h);
    else if (ck == kBf16Copy)
      sgd_kernel<P, G, kBf16Copy><<<grid, kThreads, 0, st>>>(pd, pc, h);
    else
      sgd_kernel<P, G, kNoCopy><<<grid, kThreads, 0, st>>>(pd, pc, h);
  };
  if (pdt == DType::Float64) {
    launch(double{}, double{});
  } else if (gdt == DType::Float32) {
    launch(float{}, float{});
  } else if (gdt == DType::Float16) {
    launch(float{}, __half{});
  } else {
    launch(float{}, __nv_bfloat16{});
  }
  DS_CUDA_LAUNCH_CHECK();
}

}  // namespace ds::nn
