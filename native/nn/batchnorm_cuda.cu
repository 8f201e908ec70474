// BatchNorm3d forward / backward on CUDA (semantics: nn/batchnorm.h).
// Forward (training): column Welford partials -> per-channel finalize (mean,
// invstd, running-stat update, folded scale/shift) -> one elementwise pass
// (+ residual, ReLU). Backward: column partial sums of g and g*xhat ->
// finalize (grad_gamma, grad_beta, coefficients) -> one elementwise pass.
#include "nn/nn_cuda.h"
#include "nn/norm_cuda_common.cuh"

namespace ds::nn {
namespace {
using namespace ds::cuda;
using namespace ds::nn::normcuda;

// One thread per channel. Writes saved mean/invstd (P), updates the running
// statistics (training) and the folded affine coefficients coef[c] = scale,
// coef[C + c] = shift (A).
template <class A, class P>
__global__ void bn_finalize_kernel(const A* __restrict__ part, int gy, int64_t C, int64_t M, int training,
                                   double momentum, double eps, const P* __restrict__ gamma,
                                   const P* __restrict__ beta, P* __restrict__ rm, P* __restrict__ rv,
                                   P* __restrict__ smean, P* __restrict__ sinv, A* __restrict__ coef) {
  const int64_t c = global_thread();
  if (c >= C) return;
  A mean, inv;
  if (training) {
    Welford<A> w;
    for (int k = 0; k < gy; ++k) {
      Welford<A> o;
      const A* p = part + int64_t(k) * 3 * C;
      o.n = p[c];
      o.mean = p[C + c];
      o.m2 = p[2 * C + c];
      w.merge(o);
    }
    mean = w.mean;
    const A var = w.m2 / A(M);
    inv = A(1) / sqrt(var + A(eps));
    rm[c] = P((1.0 - momentum) * double(rm[c]) + momentum * double(mean));
    rv[c] = P((1.0 - momentum) * double(rv[c]) + momentum * double(w.m2) / double(M - 1));
  } else {
    mean = A(rm[c]);
    inv = A(1.0 / sqrt(double(rv[c]) + eps));
  }
  smean[c] = P(mean);
  sinv[c] = P(inv);
  const A sc = A(gamma[c]) * A(P(inv));
  coef[c] = sc;
  coef[C + c] = A(beta[c]) - A(P(mean)) * sc;
}

template <class T>
__global__ void bn_apply_kernel(const T* __restrict__ x, const T* __restrict__ res, const acc_t<T>* __restrict__ coef,
                                int64_t C, int64_t n, int relu, T* __restrict__ y) {
  using A = acc_t<T>;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const int64_t c = i % C;
    A v = Num<T>::load(x[i]) * coef[c] + coef[C + c];
    if (res) v += Num<T>::load(res[i]);
    if (relu) v = v > A(0) ? v : A(0);
    y[i] = Num<T>::store(v);
  }
}

// One thread per channel: combines the backward partials (in double), writes
// grad_gamma / grad_beta and the dx coefficients coef = {a, mean g, mean g*xhat}.
template <class A, class P>
__global__ void bn_backward_finalize_kernel(const A* __restrict__ part, int gy, int64_t C, int64_t M, int training,
                                            const P* __restrict__ gamma, const P* __restrict__ inv,
                                            P* __restrict__ dgamma, P* __restrict__ dbeta, A* __restrict__ coef) {
  const int64_t c = global_thread();
  if (c >= C) return;
  double sg = 0, sgx = 0;
  for (int k = 0; k < gy; ++k) {
    sg += double(part[int64_t(k) * 2 * C + c]);
    sgx += double(part[int64_t(k) * 2 * C + C + c]);
  }
  dbeta[c] = P(sg);
  dgamma[c] = P(sgx);
  coef[c] = A(gamma[c]) * A(inv[c]);
  coef[C + c] = training ? A(sg / double(M)) : A(0);
  coef[2 * C + c] = training ? A(sgx / double(M)) : A(0);
}

template <class T, class P>
__global__ void bn_backward_apply_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                                         const P* __restrict__ mean, const P* __restrict__ inv,
                                         const acc_t<T>* __restrict__ coef, int64_t C, int64_t n, int training,
                                         T* __restrict__ dx, T* __restrict__ pre) {
  using A = acc_t<T>;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const int64_t c = i % C;
    A g = Num<T>::load(dy[i]);
    if (y && !(Num<T>::load(y[i]) > A(0))) g = A(0);
    if (pre) pre[i] = Num<T>::store(g);
    A d;
    if (training) {
      const A xh = (Num<T>::load(x[i]) - A(mean[c])) * A(inv[c]);
      d = coef[c] * (g - coef[C + c] - xh * coef[2 * C + c]);
    } else {
      d = coef[c] * g;
    }
    dx[i] = Num<T>::store(d);
  }
}

}  // namespace

Tensor batchnorm_forward_cuda(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                              const Tensor& running_var, const Tensor& residual, const BatchNormOptions& o,
                              BatchNormSaved* saved) {
  check_act_cuda(x, "batchnorm input");
  const int64_t C = x.size(4), M = C ? x.numel() / C : 0;
  const DType pdt = param_dtype(x.dtype());
  check_vec_cuda(gamma, C, pdt, x, "batchnorm weight (gamma)");
  check_vec_cuda(beta, C, pdt, x, "batchnorm bias (beta)");
  check_vec_cuda(running_mean, C, pdt, x, "batchnorm running_mean");
  check_vec_cuda(running_var, C, pdt, x, "batchnorm running_var");
  if (residual.defined()) check_like_cuda(x, residual, "batchnorm input", "batchnorm residual");
  DS_CHECK(o.eps > 0, "batchnorm: eps must be > 0, got ", o.eps);
  DS_CHECK(o.momentum >= 0 && o.momentum <= 1, "batchnorm: momentum must be in [0, 1], got ", o.momentum);
  if (o.training)
    DS_CHECK(M > 1, "batchnorm (training): each channel needs more than one value (N*D1*D2*D3 = ", M,
             " for input ", x.describe(), "); use a larger batch or patch, or eval mode");
  const Device dev = x.device();
  DeviceGuard guard(dev.index);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor mean = Tensor::empty({C}, pdt, dev), invstd = Tensor::empty({C}, pdt, dev);
  if (C > 0) {
    cudaStream_t st = stream_for(x);
    dispatch_gpu_float(x.dtype(), "batchnorm", [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      using P = param_t<T>;
      const DType adt = sizeof(A) == 8 ? DType::Float64 : DType::Float32;
      const int gy = o.training ? row_blocks(M, C, 1) : 1;
      Tensor part = o.training ? Tensor::empty({int64_t(gy) * 3 * C}, adt, dev) : Tensor();
      Tensor coef = Tensor::empty({2 * C}, adt, dev);
      if (o.training) {
        dim3 grid(unsigned((C + kTX - 1) / kTX), unsigned(gy), 1), block(kTX, kTY);
        col_welford_kernel<T><<<grid, block, 0, st>>>(dptr<const T>(x), M, C, dptr<A>(part));
        DS_CUDA_LAUNCH_CHECK();
      }
      bn_finalize_kernel<A, P><<<grid_for(C), kThreads, 0, st>>>(
          o.training ? dptr<const A>(part) : nullptr, gy, C, M, o.training ? 1 : 0, o.momentum, o.eps,
          dptr<const P>(gamma), dptr<const P>(beta), dptr<P>(running_mean), dptr<P>(running_var), dptr<P>(mean),
          dptr<P>(invstd), dptr<A>(coef));
      DS_CUDA_LAUNCH_CHECK();
      const int64_t n = x.numel();
      if (n)
        bn_apply_kernel<T><<<grid_for(n), kThreads, 0, st>>>(
            dptr<const T>(x), residual.defined() ? dptr<const T>(residual) : nullptr, dptr<const A>(coef), C, n,
            o.relu ? 1 : 0, dptr<T>(y));
      DS_CUDA_LAUNCH_CHECK();
    });
  }
  if (saved) *saved = {mean, invstd};
  return y;
}

NormGrads batchnorm_backward_cuda(const Tensor& x, const Tensor& y, const Tensor& gamma, const BatchNormSaved& saved,
                                  const Tensor& dy, const BatchNormOptions& o, bool want_grad_pre) {
  check_act_cuda(x, "batchnorm backward input");
  const int64_t C = x.size(4), M = C ? x.numel() / C : 0;
  const DType pdt = param_dtype(x.dtype());
  check_like_cuda(x, dy, "batchnorm input", "batchnorm output gradient");
  if (o.relu) check_like_cuda(x, y, "batchnorm input", "batchnorm output (for the ReLU mask)");
  check_vec_cuda(gamma, C, pdt, x, "batchnorm weight (gamma)");
  check_vec_cuda(saved.mean, C, pdt, x, "batchnorm saved mean");
  check_vec_cuda(saved.invstd, C, pdt, x, "batchnorm saved invstd");
  if (o.training) DS_CHECK(M > 1, "batchnorm backward (training): each channel needs more than one value");
  const Device dev = x.device();
  DeviceGuard guard(dev.index);
  NormGrads g;
  g.grad_input = Tensor::empty(x.shape(), x.dtype(), dev);
  g.grad_gamma = Tensor::empty({C}, pdt, dev);
  g.grad_beta = Tensor::empty({C}, pdt, dev);
  if (want_grad_pre) g.grad_pre = o.relu ? Tensor::empty(x.shape(), x.dtype(), dev) : dy;
  if (C == 0) return g;
  cudaStream_t st = stream_for(x);
  dispatch_gpu_float(x.dtype(), "batchnorm backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    using P = param_t<T>;
    const DType adt = sizeof(A) == 8 ? DType::Float64 : DType::Float32;
    const int gy = row_blocks(M, C, 1);
    Tensor part = Tensor::empty({int64_t(gy) * 2 * C}, adt, dev);
    Tensor coef = Tensor::empty({3 * C}, adt, dev);
    const T* py = o.relu ? dptr<const T>(y) : nullptr;
    dim3 grid(unsigned((C + kTX - 1) / kTX), unsigned(gy), 1), block(kTX, kTY);
    col_grad_sums_kernel<T, P><<<grid, block, 0, st>>>(dptr<const T>(x), py, dptr<const T>(dy),
                                                       dptr<const P>(saved.mean), dptr<const P>(saved.invstd), M, C,
                                                       C, 1, dptr<A>(part));
    DS_CUDA_LAUNCH_CHECK();
    bn_backward_finalize_kernel<A, P><<<grid_for(C), kThreads, 0, st>>>(
        dptr<const A>(part), gy, C, M, o.training ? 1 : 0, dptr<const P>(gamma), dptr<const P>(saved.invstd),
        dptr<P>(g.grad_gamma), dptr<P>(g.grad_beta), dptr<A>(coef));
    DS_CUDA_LAUNCH_CHECK();
    const int64_t n = x.numel();
    T* pre = (want_grad_pre && o.relu) ? dptr<T>(g.grad_pre) : nullptr;
    bn_backward_apply_kernel<T, P><<<grid_for(n), kThreads, 0, st>>>(
        dptr<const T>(x), py, dptr<const T>(dy), dptr<const P>(saved.mean), dptr<const P>(saved.invstd),
        dptr<const A>(coef), C, n, o.training ? 1 : 0, dptr<T>(g.grad_input), pre);
    DS_CUDA_LAUNCH_CHECK();
  });
  return g;
}

}  // namespace ds::nn
