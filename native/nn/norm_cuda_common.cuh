// Pieces shared by the BatchNorm and GroupNorm CUDA kernels (include from .cu).
//
// Channels-last activations are viewed as [B, R, C] (B batches of R rows of C
// channels). The column kernels use 32 x 8 thread blocks: threadIdx.x walks 32
// consecutive channels (coalesced 128-byte loads for float32), threadIdx.y 8
// rows; blockIdx = (channel tile, row block, batch). Each block reduces its
// rows to one partial per channel; a small finalize kernel combines the
// row-block partials in a fixed order, so results are deterministic.
// Speed ideas for later: for C < 32 map several rows onto one warp; 16-byte
// loads for 16-bit inputs.
#pragma once
#include <algorithm>

#include "core/cuda_kernels.cuh"
#include "nn/batchnorm.h"

namespace ds::nn::normcuda {
// Internal linkage: each .cu file that includes this gets its own copy of the
// kernels (without separable compilation, a template kernel instantiated in
// two translation units would otherwise be registered twice under one host stub).
namespace {
using namespace ds::cuda;

constexpr int kTX = 32, kTY = 8;

// Row blocks for R rows: about 64 rows per thread row, at most 2048 blocks in all.
inline int row_blocks(int64_t R, int64_t C, int64_t B) {
  const int64_t tiles = (C + kTX - 1) / kTX;
  int64_t gy = (R + kTY * 64 - 1) / (kTY * 64);
  const int64_t cap = std::max<int64_t>(1, 2048 / std::max<int64_t>(1, tiles * B));
  gy = std::min(gy, cap);
  gy = std::min<int64_t>(gy, 65535);
  return int(std::max<int64_t>(gy, 1));
}

// Parameter type: float32 for 16-bit activations, else the activation type.
template <class T> struct ParamOf { using type = T; };
template <> struct ParamOf<__half> { using type = float; };
template <> struct ParamOf<__nv_bfloat16> { using type = float; };
template <class T> using param_t = typename ParamOf<T>::type;

inline DType param_dtype(DType act) {
  return (act == DType::Float16 || act == DType::BFloat16) ? DType::Float32 : act;
}

// Per-channel welford partials: out[((b*gy + by)*3 + k)*C + c], k = n, mean, m2.
template <class T>
__global__ void col_welford_kernel(const T* __restrict__ x, int64_t R, int64_t C, acc_t<T>* __restrict__ out) {
  using A = acc_t<T>;
  __shared__ A sn[kTY][kTX + 1], sm[kTY][kTX + 1], s2[kTY][kTX + 1];
  const int64_t c = int64_t(blockIdx.x) * kTX + threadIdx.x;
  const int64_t b = blockIdx.z, gy = gridDim.y;
  Welford<A> w;
  if (c < C)
    for (int64_t r = int64_t(blockIdx.y) * kTY + threadIdx.y; r < R; r += gy * kTY)
      w.add(Num<T>::load(x[(b * R + r) * C + c]));
  sn[threadIdx.y][threadIdx.x] = w.n;
  sm[threadIdx.y][threadIdx.x] = w.mean;
  s2[threadIdx.y][threadIdx.x] = w.m2;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int k = 1; k < kTY; ++k) {
      Welford<A> o;
      o.n = sn[k][threadIdx.x];
      o.mean = sm[k][threadIdx.x];
      o.m2 = s2[k][threadIdx.x];
      w.merge(o);
    }
    A* p = out + (b * gy + blockIdx.y) * 3 * C;
    p[c] = w.n;
    p[C + c] = w.mean;
    p[2 * C + c] = w.m2;
  }
}

// Backward partial sums per channel: sum g and sum g * xhat with
// g = relu-masked dy and xhat = (x - mean[s]) * invstd[s], s = b*G + c/Cg
// (BatchNorm: B = 1, G = C, Cg = 1). out[((b*gy + by)*2 + k)*C + c].
template <class T, class P>
__global__ void col_grad_sums_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                                     const P* __restrict__ mean, const P* __restrict__ invstd, int64_t R, int64_t C,
                                     int64_t G, int64_t Cg, acc_t<T>* __restrict__ out) {
  using A = acc_t<T>;
  __shared__ A s0[kTY][kTX + 1], s1[kTY][kTX + 1];
  const int64_t c = int64_t(blockIdx.x) * kTX + threadIdx.x;
  const int64_t b = blockIdx.z, gy = gridDim.y;
  A a0 = A(0), a1 = A(0);
  if (c < C) {
    const int64_t si = b * G + c / Cg;
    const A m = A(mean[si]), is = A(invstd[si]);
    for (int64_t r = int64_t(blockIdx.y) * kTY + threadIdx.y; r < R; r += gy * kTY) {
      const int64_t i = (b * R + r) * C + c;
      A g = Num<T>::load(dy[i]);
      if (y && !(Num<T>::load(y[i]) > A(0))) g = A(0);
      a0 += g;
      a1 += g * ((Num<T>::load(x[i]) - m) * is);
    }
  }
  s0[threadIdx.y][threadIdx.x] = a0;
  s1[threadIdx.y][threadIdx.x] = a1;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int k = 1; k < kTY; ++k) {
      a0 += s0[k][threadIdx.x];
      a1 += s1[k][threadIdx.x];
    }
    A* p = out + (b * gy + blockIdx.y) * 2 * C;
    p[c] = a0;
    p[C + c] = a1;
  }
}

// Common argument checks of the CUDA norms.
inline void check_act_cuda(const Tensor& x, const char* what) {
  check_cuda_tensor(x, what);
  DS_CHECK(x.dim() == 5, what, " must have 5 dimensions [N, D1, D2, D3, C], got ", x.describe());
  DS_CHECK(dtype_is_float(x.dtype()), what, " must be a floating-point tensor, got ", x.describe());
}
inline void check_vec_cuda(const Tensor& v, int64_t n, DType dt, const Tensor& like, const char* what) {
  DS_CHECK(v.defined(), what, " is missing (undefined tensor)");
  DS_CHECK(v.device() == like.device(), what, " must be on ", like.device().str(), ", got ", v.describe());
  DS_CHECK(v.dim() == 1 && v.size(0) == n && v.dtype() == dt, what, " must be ", dtype_name(dt), "[", n, "], got ",
           v.describe(), dt != like.dtype() ? " (per-channel tensors are float32 for 16-bit activations)" : "");
}
inline void check_like_cuda(const Tensor& a, const Tensor& b, const char* wa, const char* wb) {
  DS_CHECK(b.defined(), wb, " is missing (undefined tensor)");
  DS_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype() && a.device() == b.device(), wb, " must match ", wa, " (",
           a.describe(), "), got ", b.describe());
}

}  // namespace
}  // namespace ds::nn::normcuda
