// GroupNorm forward / backward on CUDA (semantics: nn/groupnorm.h).
// Forward: per (sample, group) Welford over S*Cg values, split over several
// blocks (partials combined in order by a finalize kernel that also folds
// gamma/beta into per-(sample, channel) scale/shift), then one elementwise
// pass. Backward: per (sample, channel) sums of g and g*xhat with the column
// kernel (batch = sample), reduced to grad_gamma / grad_beta and per
// (sample, group) coefficients, then one elementwise pass.
#include "nn/nn_cuda.h"
#include "nn/norm_cuda_common.cuh"

namespace ds::nn {
namespace {
using namespace ds::cuda;
using namespace ds::nn::normcuda;

// grid (N*G, nb), 1-D blocks of kThreads. Partial [(ng*nb + by)*3 + k].
template <class T>
__global__ void gn_stats_kernel(const T* __restrict__ x, int64_t S, int64_t C, int64_t G, int64_t Cg,
                                acc_t<T>* __restrict__ part) {
  using A = acc_t<T>;
  const int64_t ng = blockIdx.x, n = ng / G, g = ng % G, nb = gridDim.y;
  const int64_t count = S * Cg;
  Welford<A> w;
  for (int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; j < count; j += nb * blockDim.x) {
    const int64_t s = j / Cg, cc = j - s * Cg;
    w.add(Num<T>::load(x[(n * S + s) * C + g * Cg + cc]));
  }
  w = block_welford(w);
  if (threadIdx.x == 0) {
    A* p = part + (ng * nb + blockIdx.y) * 3;
    p[0] = w.n;
    p[1] = w.mean;
    p[2] = w.m2;
  }
}

// One thread per (n, g).
template <class A, class P>
__global__ void gn_finalize_kernel(const A* __restrict__ part, int nb, int64_t N, int64_t C, int64_t G, int64_t Cg,
                                   double eps, const P* __restrict__ gamma, const P* __restrict__ beta,
                                   P* __restrict__ smean, P* __restrict__ srstd, A* __restrict__ coef) {
  const int64_t ng = global_thread();
  if (ng >= N * G) return;
  Welford<A> w;
  for (int k = 0; k < nb; ++k) {
    const A* p = part + (ng * nb + k) * 3;
    Welford<A> o;
    o.n = p[0];
    o.mean = p[1];
    o.m2 = p[2];
    w.merge(o);
  }
  const A rstd = A(1) / sqrt(w.m2 / w.n + A(eps));
  smean[ng] = P(w.mean);
  srstd[ng] = P(rstd);
  const int64_t n = ng / G, g = ng % G;
  for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
    const A sc = A(gamma[c]) * rstd;
    coef[n * C + c] = sc;                              // scale
    coef[N * C + n * C + c] = A(beta[c]) - w.mean * sc;  // shift
  }
}

template <class T>
__global__ void gn_apply_kernel(const T* __restrict__ x, const acc_t<T>* __restrict__ coef, int64_t SC, int64_t C,
                                int64_t NC, int64_t total, int relu, T* __restrict__ y) {
  using A = acc_t<T>;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t k = (i / SC) * C + i % C;  // n*C + c
    A v = Num<T>::load(x[i]) * coef[k] + coef[NC + k];
    if (relu) v = v > A(0) ? v : A(0);
    y[i] = Num<T>::store(v);
  }
}

// One thread per (n, c): combines the column partials into nc[(n*2 + k)*C + c] (double).
template <class A>
__global__ void gn_bwd_nc_kernel(const A* __restrict__ part, int gy, int64_t N, int64_t C, double* __restrict__ nc) {
  const int64_t i = global_thread();
  if (i >= N * C) return;
  const int64_t n = i / C, c = i % C;
  double s0 = 0, s1 = 0;
  for (int k = 0; k < gy; ++k) {
    const A* p = part + (n * gy + k) * 2 * C;
    s0 += double(p[c]);
    s1 += double(p[C + c]);
  }
  nc[(n * 2) * C + c] = s0;
  nc[(n * 2 + 1) * C + c] = s1;
}

// One thread per channel: grad_beta = sum_n sum g, grad_gamma = sum_n sum g*xhat.
template <class P>
__global__ void gn_bwd_param_kernel(const double* __restrict__ nc, int64_t N, int64_t C, P* __restrict__ dgamma,
                                    P* __restrict__ dbeta) {
  const int64_t c = global_thread();
  if (c >= C) return;
  double b = 0, g = 0;
  for (int64_t n = 0; n < N; ++n) {
    b += nc[(n * 2) * C + c];
    g += nc[(n * 2 + 1) * C + c];
  }
  dbeta[c] = P(b);
  dgamma[c] = P(g);
}

// One thread per (n, g): coef[ng] = mean of gamma*g, coef[NG + ng] = mean of gamma*g*xhat.
template <class A, class P>
__global__ void gn_bwd_group_kernel(const double* __restrict__ nc, const P* __restrict__ gamma, int64_t N, int64_t C,
                                    int64_t G, int64_t Cg, double cnt, A* __restrict__ coef) {
  const int64_t ng = global_thread();
  if (ng >= N * G) return;
  const int64_t n = ng / G, g = ng % G;
  double sg = 0, sgx = 0;
  for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
    sg += nc[(n * 2) * C + c] * double(gamma[c]);
    sgx += nc[(n * 2 + 1) * C + c] * double(gamma[c]);
  }
  coef[ng] = A(sg / cnt);
  coef[N * G + ng] = A(sgx / cnt);
}

template <class T, class P>
__global__ void gn_bwd_apply_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                                    const P* __restrict__ gamma, const P* __restrict__ mean,
                                    const P* __restrict__ rstd, const acc_t<T>* __restrict__ coef, int64_t SC,
                                    int64_t C, int64_t G, int64_t Cg, int64_t NG, int64_t total, T* __restrict__ dx) {
  using A = acc_t<T>;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t c = i % C, n = i / SC, ng = n * G + c / Cg;
    A g = Num<T>::load(dy[i]);
    if (y && !(Num<T>::load(y[i]) > A(0))) g = A(0);
    const A r = A(rstd[ng]);
    const A xh = (Num<T>::load(x[i]) - A(mean[ng])) * r;
    dx[i] = Num<T>::store(r * (g * A(gamma[c]) - coef[ng] - xh * coef[NG + ng]));
  }
}

void check_groups(int64_t C, int64_t groups) {
  DS_CHECK(groups >= 1 && C % groups == 0, "groupnorm: ", C, " channels cannot be split into ", groups,
           " groups; the number of groups must divide the channel count");
}

}  // namespace

Tensor groupnorm_forward_cuda(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps,
                              bool relu, GroupNormSaved* saved) {
  check_act_cuda(x, "groupnorm input");
  const int64_t N = x.size(0), C = x.size(4);
  check_groups(C, groups);
  const DType pdt = param_dtype(x.dtype());
  check_vec_cuda(gamma, C, pdt, x, "groupnorm weight (gamma)");
  check_vec_cuda(beta, C, pdt, x, "groupnorm bias (beta)");
  DS_CHECK(eps > 0, "groupnorm: eps must be > 0, got ", eps);
  const Device dev = x.device();
  DeviceGuard guard(dev.index);
  const int64_t G = groups, Cg = C / G, S = (N && C) ? x.numel() / (N * C) : 0;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor mean = Tensor::empty({N, G}, pdt, dev), rstd = Tensor::empty({N, G}, pdt, dev);
  if (N > 0 && S > 0) {
    cudaStream_t st = stream_for(x);
    dispatch_gpu_float(x.dtype(), "groupnorm", [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      using P = param_t<T>;
      const DType adt = sizeof(A) == 8 ? DType::Float64 : DType::Float32;
      const int64_t count = S * Cg;
      const int nb = int(std::min<int64_t>(std::max<int64_t>(1, (count + 4095) / 4096), 256));
      Tensor part = Tensor::empty({N * G * nb * 3}, adt, dev);
      Tensor coef = Tensor::empty({2 * N * C}, adt, dev);
      DS_CHECK(N * G < (int64_t(1) << 31), "groupnorm: too many (sample, group) pairs");
      gn_stats_kernel<T><<<dim3(unsigned(N * G), unsigned(nb)), kThreads, 0, st>>>(dptr<const T>(x), S, C, G, Cg,
                                                                                 dptr<A>(part));
      DS_CUDA_LAUNCH_CHECK();
      gn_finalize_kernel<A, P><<<grid_for(N * G), kThreads, 0, st>>>(dptr<const A>(part), nb, N, C, G, Cg, eps,
                                                                    dptr<const P>(gamma), dptr<const P>(beta),
                                                                    dptr<P>(mean), dptr<P>(rstd), dptr<A>(coef));
      DS_CUDA_LAUNCH_CHECK();
      const int64_t total = x.numel();
      gn_apply_kernel<T><<<grid_for(total), kThreads, 0, st>>>(dptr<const T>(x), dptr<const A>(coef), S * C, C, N * C,
                                                               total, relu ? 1 : 0, dptr<T>(y));
      DS_CUDA_LAUNCH_CHECK();
    });
  }
  if (saved) *saved = {mean, rstd};
  return y;
}

NormGrads groupnorm_backward_cuda(const Tensor& x, const Tensor& y, const Tensor& gamma, int64_t groups,
                                  const GroupNormSaved& saved, const Tensor& dy, bool relu) {
  check_act_cuda(x, "groupnorm backward input");
  const int64_t N = x.size(0), C = x.size(4);
  check_groups(C, groups);
  const DType pdt = param_dtype(x.dtype());
  check_like_cuda(x, dy, "groupnorm input", "groupnorm output gradient");
  if (relu) check_like_cuda(x, y, "groupnorm input", "groupnorm output (for the ReLU mask)");
  check_vec_cuda(gamma, C, pdt, x, "groupnorm weight (gamma)");
  DS_CHECK(saved.mean.defined() && saved.mean.shape() == Shape({N, groups}) && saved.rstd.defined() &&
               saved.rstd.shape() == Shape({N, groups}) && saved.mean.dtype() == pdt && saved.rstd.dtype() == pdt &&
               saved.mean.device() == x.device() && saved.rstd.device() == x.device(),
           "groupnorm backward: saved statistics must be ", dtype_name(pdt), "[", N, ", ", groups, "] on ",
           x.device().str());
  const Device dev = x.device();
  DeviceGuard guard(dev.index);
  const int64_t G = groups, Cg = C / G, S = (N && C) ? x.numel() / (N * C) : 0;
  NormGrads g;
  g.grad_input = Tensor::empty(x.shape(), x.dtype(), dev);
  g.grad_gamma = Tensor::empty({C}, pdt, dev);
  g.grad_beta = Tensor::empty({C}, pdt, dev);
  if (C == 0) return g;
  cudaStream_t st = stream_for(x);
  dispatch_gpu_float(x.dtype(), "groupnorm backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    using P = param_t<T>;
    const DType adt = sizeof(A) == 8 ? DType::Float64 : DType::Float32;
    const int gy = row_blocks(S, C, N);
    Tensor part = Tensor::empty({std::max<int64_t>(1, N * gy * 2 * C)}, adt, dev);
    Tensor nc = Tensor::empty({std::max<int64_t>(1, N * 2 * C)}, DType::Float64, dev);
    Tensor coef = Tensor::empty({std::max<int64_t>(1, 2 * N * G)}, adt, dev);
    const T* py = relu ? dptr<const T>(y) : nullptr;
    if (N > 0) {
      DS_CHECK(N < 65536, "groupnorm backward: batch size ", N, " exceeds the GPU kernel's limit of 65535");
      dim3 grid(unsigned((C + kTX - 1) / kTX), unsigned(gy), unsigned(N)), block(kTX, kTY);
      col_grad_sums_kernel<T, P><<<grid, block, 0, st>>>(dptr<const T>(x), py, dptr<const T>(dy),
                                                         dptr<const P>(saved.mean), dptr<const P>(saved.rstd), S, C,
                                                         G, Cg, dptr<A>(part));
      DS_CUDA_LAUNCH_CHECK();
      gn_bwd_nc_kernel<A><<<grid_for(N * C), kThreads, 0, st>>>(dptr<const A>(part), gy, N, C, dptr<double>(nc));
      DS_CUDA_LAUNCH_CHECK();
    }
    gn_bwd_param_kernel<P><<<grid_for(C), kThreads, 0, st>>>(dptr<const double>(nc), N, C, dptr<P>(g.grad_gamma),
                                                            dptr<P>(g.grad_beta));
    DS_CUDA_LAUNCH_CHECK();
    const int64_t total = x.numel();
    if (total) {
      gn_bwd_group_kernel<A, P><<<grid_for(N * G), kThreads, 0, st>>>(dptr<const double>(nc), dptr<const P>(gamma), N,
                                                                     C, G, Cg, double(S * Cg), dptr<A>(coef));
      DS_CUDA_LAUNCH_CHECK();
      gn_bwd_apply_kernel<T, P><<<grid_for(total), kThreads, 0, st>>>(
          dptr<const T>(x), py, dptr<const T>(dy), dptr<const P>(gamma), dptr<const P>(saved.mean),
          dptr<const P>(saved.rstd), dptr<const A>(coef), S * C, C, G, Cg, N * G, total, dptr<T>(g.grad_input));
      DS_CUDA_LAUNCH_CHECK();
    }
  });
  return g;
}

}  // namespace ds::nn
