#include "nn/batchnorm.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "nn/nn_cuda.h"
#include "nn/nn_util.h"

namespace ds::nn {
namespace {

constexpr int64_t kGrain = 256;  // rows per parallel task for elementwise passes

}  // namespace

// SyncBatchNorm forward: replaces this rank's (count, mean[C], M2[C]) by those
// of the union of every rank's batch. One all-reduce of a W*(2C+1) buffer in
// which each rank fills only its own slot (adding zeros is exact, so every
// rank receives all slots bit for bit), then Chan et al.'s pairwise update in
// rank order: the same float64 result on every rank, and no catastrophic
// cancellation (unlike combining sums of squares).
void combine_batchnorm_stats(BatchNormSync& s, double& count, std::vector<double>& mean, std::vector<double>& m2) {
  const int W = s.world_size(), R = s.rank();
  DS_CHECK(W >= 1 && R >= 0 && R < W, "SyncBatchNorm: rank ", R, " is not in [0, world size ", W, ")");
  const size_t C = mean.size(), slot = 2 * C + 1;
  std::vector<double> buf(slot * size_t(W), 0.0);
  double* mine = buf.data() + slot * size_t(R);
  mine[0] = count;
  std::copy(mean.begin(), mean.end(), mine + 1);
  std::copy(m2.begin(), m2.end(), mine + 1 + C);
  s.all_reduce_sum(buf.data(), buf.size());
  double n = 0;
  for (int r = 0; r < W; ++r) {
    const double* p = buf.data() + slot * size_t(r);
    const double nb = p[0];
    if (nb <= 0) continue;  // a rank with an empty batch contributes nothing
    const double tot = n + nb;
    for (size_t c = 0; c < C; ++c) {
      const double mb = p[1 + c], m2b = p[1 + C + c];
      if (n == 0) {
        mean[c] = mb;
        m2[c] = m2b;
      } else {
        const double delta = mb - mean[c];
        mean[c] += delta * (nb / tot);
        m2[c] += m2b + delta * delta * (n * nb / tot);
      }
    }
    n = tot;
  }
  count = n;
}

namespace {

template <class T>
void bn_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm, const Tensor& rv,
                const Tensor& res, const BatchNormOptions& o, Tensor& y, Tensor& mean_t, Tensor& invstd_t) {
  const int64_t C = x.size(4), M = x.numel() / C;
  const T* px = x.data<T>();
  T* pm = mean_t.data<T>();
  T* pi = invstd_t.data<T>();
  T* prm = rm.data<T>();
  T* prv = rv.data<T>();
  if (o.training) {
    const bool synced = o.sync && o.sync->world_size() > 1;
    if (!synced)
      DS_CHECK(M > 1, "batchnorm (training): each channel needs more than one value (N*D1*D2*D3 = ", M,
               " for input ", x.describe(), "); use a larger batch or patch, or eval mode");
    // Two passes (mean, then centred squares) in double for accuracy.
    std::vector<double> sum = reduce_rows_local<T>(M, C, [&](int64_t r0, int64_t r1, T* __restrict acc) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* __restrict xr = px + r * C;
        for (int64_t c = 0; c < C; ++c) acc[c] += xr[c];
      }
    });
    std::vector<double> mean(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) mean[c] = M > 0 ? sum[c] / double(M) : 0.0;
    std::vector<T> mean_t(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) mean_t[c] = T(mean[c]);
    std::vector<double> ss = reduce_rows_local<T>(M, C, [&](int64_t r0, int64_t r1, T* __restrict acc) {
      const T* __restrict mt = mean_t.data();
      for (int64_t r = r0; r < r1; ++r) {
        const T* __restrict xr = px + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const T d = xr[c] - mt[c];
          acc[c] += d * d;
        }
      }
    });
    double count = double(M);
    if (synced) {
      // ss is centred on the rounded mean_t; Chan's formula needs M2 about the exact mean (smaller by M * d^2).
      for (int64_t c = 0; c < C; ++c) {
        const double d = mean[c] - double(mean_t[c]);
        ss[c] = std::max(0.0, ss[c] - double(M) * d * d);
      }
      combine_batchnorm_stats(*o.sync, count, mean, ss);
      DS_CHECK(count > 1, "SyncBatchNorm (training): each channel needs more than one value over all ranks (",
               count, " for local input ", x.describe(), "); use a larger batch or patch, or eval mode");
    }
    for (int64_t c = 0; c < C; ++c) {
      const double var = ss[c] / count;
      pm[c] = T(mean[c]);
      pi[c] = T(1.0 / std::sqrt(var + o.eps));
      prm[c] = T((1.0 - o.momentum) * double(prm[c]) + o.momentum * mean[c]);
      prv[c] = T((1.0 - o.momentum) * double(prv[c]) + o.momentum * ss[c] / (count - 1.0));
    }
  } else {
    for (int64_t c = 0; c < C; ++c) {
      pm[c] = prm[c];
      pi[c] = T(1.0 / std::sqrt(double(prv[c]) + o.eps));
    }
  }
  // Fold into y = x * scale + shift (+ residual), then ReLU.
  std::vector<T> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  const T* pg = gamma.data<T>();
  const T* pb = beta.data<T>();
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = pg[c] * pi[c];
    shift[c] = pb[c] - pm[c] * scale[c];
  }
  T* py = y.data<T>();
  const T* pr = res.defined() ? res.data<T>() : nullptr;
  const bool relu = o.relu;
  parallel_for(0, M, kGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = px + r * C;
      T* yr = py + r * C;
      const T* rr = pr ? pr + r * C : nullptr;
      for (int64_t c = 0; c < C; ++c) {
        T v = xr[c] * scale[c] + shift[c];
        if (rr) v += rr[c];
        yr[c] = relu ? (v > T(0) ? v : T(0)) : v;
      }
    }
  });
}

// RELU: mask the gradient with y > 0 (branch-free select); PRE: write the masked gradient out.
template <class T, bool RELU, bool PRE>
void bn_backward_impl(const Tensor& x, const Tensor& y, const Tensor& gamma, const BatchNormSaved& s, const Tensor& dy,
                      bool training, BatchNormSync* sync, NormGrads& g) {
  const int64_t C = x.size(4), M = x.numel() / C;
  const T* px = x.data<T>();
  const T* py = RELU ? y.data<T>() : nullptr;
  const T* pdy = dy.data<T>();
  const T* pm = s.mean.data<T>();
  const T* pi = s.invstd.data<T>();
  const T* pgam = gamma.data<T>();
  T* pre = PRE ? g.grad_pre.data<T>() : nullptr;
  // sums[c] = sum g, sums[C + c] = sum g * xhat
  std::vector<double> sums = reduce_rows_local<T>(M, 2 * C, [&](int64_t r0, int64_t r1, T* __restrict acc) {
    T* __restrict sg = acc;
    T* __restrict sgx = acc + C;
    for (int64_t r = r0; r < r1; ++r) {
      const T* __restrict xr = px + r * C;
      const T* __restrict dr = pdy + r * C;
      const T* __restrict yr = RELU ? py + r * C : nullptr;
      T* __restrict pr = PRE ? pre + r * C : nullptr;
      for (int64_t c = 0; c < C; ++c) {
        T gv = dr[c];
        if constexpr (RELU) gv = yr[c] > T(0) ? gv : T(0);
        if constexpr (PRE) pr[c] = gv;
        sg[c] += gv;
        sgx[c] += gv * ((xr[c] - pm[c]) * pi[c]);
      }
    }
  });
  T* pgg = g.grad_gamma.data<T>();
  T* pgb = g.grad_beta.data<T>();
  for (int64_t c = 0; c < C; ++c) {
    pgb[c] = T(sums[c]);
    pgg[c] = T(sums[C + c]);
  }
  // The mean gradient terms below are over the batch the statistics came
  // from: with SyncBatchNorm, every rank's batch (sums and count all-reduced,
  // one collective); dgamma / dbeta above stay this rank's own.
  double count = double(M);
  if (training && sync && sync->world_size() > 1) {
    sums.push_back(count);
    sync->all_reduce_sum(sums.data(), sums.size());
    count = sums[2 * C];
  }
  T* pdx = g.grad_input.data<T>();
  std::vector<T> a(static_cast<size_t>(C)), mg(static_cast<size_t>(C)), mgx(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    a[c] = pgam[c] * pi[c];
    mg[c] = training ? T(sums[c] / count) : T(0);
    mgx[c] = training ? T(sums[C + c] / count) : T(0);
  }
  parallel_for(0, M, kGrain, [&](int64_t r0, int64_t r1) {
    const T* __restrict pa = a.data();
    const T* __restrict pmg = mg.data();
    const T* __restrict pmgx = mgx.data();
    for (int64_t r = r0; r < r1; ++r) {
      const T* __restrict xr = px + r * C;
      const T* __restrict dr = PRE ? pre + r * C : pdy + r * C;
      const T* __restrict yr = RELU && !PRE ? py + r * C : nullptr;
      T* __restrict out = pdx + r * C;
      for (int64_t c = 0; c < C; ++c) {
        T gv = dr[c];
        if constexpr (RELU && !PRE) gv = yr[c] > T(0) ? gv : T(0);
        const T xh = (xr[c] - pm[c]) * pi[c];
        out[c] = pa[c] * (gv - pmg[c] - xh * pmgx[c]);
      }
    }
  });
}

template <class T>
void bn_backward(const Tensor& x, const Tensor& y, const Tensor& gamma, const BatchNormSaved& s, const Tensor& dy,
                 const BatchNormOptions& o, NormGrads& g) {
  const bool pre = g.grad_pre.defined();
  if (o.relu && pre)
    bn_backward_impl<T, true, true>(x, y, gamma, s, dy, o.training, o.sync, g);
  else if (o.relu)
    bn_backward_impl<T, true, false>(x, y, gamma, s, dy, o.training, o.sync, g);
  else
    bn_backward_impl<T, false, false>(x, y, gamma, s, dy, o.training, o.sync, g);
}

// SyncBatchNorm on a device: composed from the device kernels (batchnorm_sync.cpp).
bool synced(const BatchNormOptions& o) { return o.training && o.sync && o.sync->world_size() > 1; }

}  // namespace

Tensor batchnorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                         const Tensor& running_var, const Tensor& residual, const BatchNormOptions& o,
                         BatchNormSaved* saved) {
  // Tensors on a CUDA device go to the CUDA implementation (nn/nn_cuda.h).
  if (x.defined() && !x.device().is_cpu()) {
    if (synced(o)) return sync_batchnorm_forward_composed(x, gamma, beta, running_mean, running_var, residual, o, saved);
    return batchnorm_forward_cuda(x, gamma, beta, running_mean, running_var, residual, o, saved);
  }
  check_activation(x, "batchnorm input");
  const int64_t C = x.size(4);
  check_vector(gamma, C, x.dtype(), "batchnorm weight (gamma)");
  check_vector(beta, C, x.dtype(), "batchnorm bias (beta)");
  check_vector(running_mean, C, x.dtype(), "batchnorm running_mean");
  check_vector(running_var, C, x.dtype(), "batchnorm running_var");
  if (residual.defined()) check_same_shape(x, residual, "batchnorm input", "batchnorm residual");
  DS_CHECK(o.eps > 0, "batchnorm: eps must be > 0, got ", o.eps);
  DS_CHECK(o.momentum >= 0 && o.momentum <= 1, "batchnorm: momentum must be in [0, 1], got ", o.momentum);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor mean = Tensor::empty({C}, x.dtype()), invstd = Tensor::empty({C}, x.dtype());
  dispatch_float(x.dtype(), "batchnorm", [&](auto tag) {
    bn_forward<decltype(tag)>(x, gamma, beta, running_mean, running_var, residual, o, y, mean, invstd);
  });
  if (saved) *saved = {mean, invstd};
  return y;
}

NormGrads batchnorm_backward(const Tensor& x, const Tensor& y, const Tensor& gamma, const BatchNormSaved& saved,
                             const Tensor& dy, const BatchNormOptions& o, bool want_grad_pre) {
  if (x.defined() && !x.device().is_cpu()) {
    if (synced(o)) return sync_batchnorm_backward_composed(x, y, gamma, saved, dy, o, want_grad_pre);
    return batchnorm_backward_cuda(x, y, gamma, saved, dy, o, want_grad_pre);
  }
  check_activation(x, "batchnorm backward input");
  const int64_t C = x.size(4);
  check_same_shape(x, dy, "batchnorm input", "batchnorm output gradient");
  if (o.relu) check_same_shape(x, y, "batchnorm input", "batchnorm output (for the ReLU mask)");
  check_vector(gamma, C, x.dtype(), "batchnorm weight (gamma)");
  check_vector(saved.mean, C, x.dtype(), "batchnorm saved mean");
  check_vector(saved.invstd, C, x.dtype(), "batchnorm saved invstd");
  if (o.training && !(o.sync && o.sync->world_size() > 1))
    DS_CHECK(x.numel() / C > 1, "batchnorm backward (training): each channel needs more than one value");
  NormGrads g;
  g.grad_input = Tensor::empty(x.shape(), x.dtype());
  g.grad_gamma = Tensor::empty({C}, x.dtype());
  g.grad_beta = Tensor::empty({C}, x.dtype());
  if (want_grad_pre) g.grad_pre = o.relu ? Tensor::empty(x.shape(), x.dtype()) : dy;
  // With no ReLU the masked gradient is dy itself; nothing needs writing.
  NormGrads work = g;
  if (!o.relu) work.grad_pre = Tensor();
  dispatch_float(x.dtype(), "batchnorm backward",
                 [&](auto tag) { bn_backward<decltype(tag)>(x, y, gamma, saved, dy, o, work); });
  return g;
}

}  // namespace ds::nn
