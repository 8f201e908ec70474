#include "nn/groupnorm.h"

#include <cmath>

#include "core/thread_pool.h"
#include "nn/nn_cuda.h"
#include "nn/nn_util.h"

namespace ds::nn {
namespace {

void check_groups(const Tensor& x, int64_t groups) {
  const int64_t C = x.size(4);
  DS_CHECK(groups >= 1 && C % groups == 0, "groupnorm: ", C, " channels cannot be split into ", groups,
           " groups; the number of groups must divide the channel count");
}

// y = act(gamma * (x - mean) * rstd + beta) from given per-(sample, group)
// statistics. Forward and recompute share it, so both give identical bits.
template <class T>
void gn_apply(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t G, const Tensor& mean_t,
              const Tensor& rstd_t, bool relu, Tensor& y) {
  const int64_t N = x.size(0), C = x.size(4), S = x.numel() / (N * C), Cg = C / G;
  const T* pg = gamma.data<T>();
  const T* pb = beta.data<T>();
  for (int64_t n = 0; n < N; ++n) {
    std::vector<T> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
    for (int64_t g = 0; g < G; ++g) {
      const double m = double(mean_t.data<T>()[n * G + g]), rs = double(rstd_t.data<T>()[n * G + g]);
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
        scale[c] = T(double(pg[c]) * rs);
        shift[c] = T(double(pb[c]) - m * double(pg[c]) * rs);
      }
    }
    const T* px = x.data<T>() + n * S * C;
    T* py = y.data<T>() + n * S * C;
    parallel_for(0, S, 256, [&](int64_t r0, int64_t r1) {
      const T* __restrict sc = scale.data();
      const T* __restrict sh = shift.data();
      for (int64_t r = r0; r < r1; ++r) {
        const T* __restrict xr = px + r * C;
        T* __restrict yr = py + r * C;
        if (relu)
          for (int64_t c = 0; c < C; ++c) {
            const T v = xr[c] * sc[c] + sh[c];
            yr[c] = v > T(0) ? v : T(0);
          }
        else
          for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * sc[c] + sh[c];
      }
    });
  }
}

template <class T>
void gn_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t G, double eps, bool relu,
                Tensor& y, Tensor& mean_t, Tensor& rstd_t) {
  const int64_t N = x.size(0), C = x.size(4), S = x.numel() / (N * C), Cg = C / G;
  const double cnt = double(S * Cg);
  for (int64_t n = 0; n < N; ++n) {
    const T* px = x.data<T>() + n * S * C;
    std::vector<double> sum = reduce_rows_local<T>(S, G, [&](int64_t r0, int64_t r1, T* __restrict acc) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t g = 0; g < G; ++g) {
          const T* __restrict xr = px + r * C + g * Cg;
          T s = 0;
          for (int64_t j = 0; j < Cg; ++j) s += xr[j];
          acc[g] += s;
        }
    });
    std::vector<double> mean(static_cast<size_t>(G));
    for (int64_t g = 0; g < G; ++g) mean[g] = sum[g] / cnt;
    std::vector<double> ss = reduce_rows_local<T>(S, G, [&](int64_t r0, int64_t r1, T* __restrict acc) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t g = 0; g < G; ++g) {
          const T* __restrict xr = px + r * C + g * Cg;
          const T m = T(mean[g]);
          T s = 0;
          for (int64_t j = 0; j < Cg; ++j) {
            const T d = xr[j] - m;
            s += d * d;
          }
          acc[g] += s;
        }
    });
    for (int64_t g = 0; g < G; ++g) {
      mean_t.data<T>()[n * G + g] = T(mean[g]);
      rstd_t.data<T>()[n * G + g] = T(1.0 / std::sqrt(ss[g] / cnt + eps));
    }
  }
  gn_apply<T>(x, gamma, beta, G, mean_t, rstd_t, relu, y);
}

template <class T, bool RELU>
void gn_backward_impl(const Tensor& x, const Tensor& y, const Tensor& gamma, int64_t G, const GroupNormSaved& s,
                      const Tensor& dy, NormGrads& out) {
  const int64_t N = x.size(0), C = x.size(4), S = x.numel() / (N * C), Cg = C / G;
  const double cnt = double(S * Cg);
  const T* pgam = gamma.data<T>();
  std::vector<double> dgamma(static_cast<size_t>(C), 0.0), dbeta(static_cast<size_t>(C), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const T* px = x.data<T>() + n * S * C;
    const T* py = RELU ? y.data<T>() + n * S * C : nullptr;
    const T* pdy = dy.data<T>() + n * S * C;
    T* pdx = out.grad_input.data<T>() + n * S * C;
    const T* pm = s.mean.data<T>() + n * G;
    const T* pr = s.rstd.data<T>() + n * G;
    // Per channel: sum g, sum g*xhat (for gamma/beta and, reduced per group, for dx).
    std::vector<double> acc = reduce_rows_local<T>(S, 2 * C, [&](int64_t r0, int64_t r1, T* __restrict a) {
      T* __restrict sg = a;
      T* __restrict sgx = a + C;
      for (int64_t r = r0; r < r1; ++r) {
        const T* __restrict xr = px + r * C;
        const T* __restrict dr = pdy + r * C;
        const T* __restrict yr = RELU ? py + r * C : nullptr;
        for (int64_t g = 0; g < G; ++g) {
          const T m = pm[g], rs = pr[g];
          for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
            T gv = dr[c];
            if constexpr (RELU) gv = yr[c] > T(0) ? gv : T(0);
            sg[c] += gv;
            sgx[c] += gv * ((xr[c] - m) * rs);
          }
        }
      }
    });
    std::vector<T> mg(static_cast<size_t>(G)), mgx(static_cast<size_t>(G));
    for (int64_t g = 0; g < G; ++g) {
      double sg = 0, sgx = 0;
      for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
        sg += acc[c] * double(pgam[c]);
        sgx += acc[C + c] * double(pgam[c]);
      }
      mg[g] = T(sg / cnt);
      mgx[g] = T(sgx / cnt);
    }
    for (int64_t c = 0; c < C; ++c) {
      dbeta[c] += acc[c];
      dgamma[c] += acc[C + c];
    }
    parallel_for(0, S, 256, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* __restrict xr = px + r * C;
        const T* __restrict dr = pdy + r * C;
        const T* __restrict yr = RELU ? py + r * C : nullptr;
        T* __restrict out = pdx + r * C;
        for (int64_t g = 0; g < G; ++g) {
          const T m = pm[g], rs = pr[g], a = mg[g], b = mgx[g];
          for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
            T gv = dr[c];
            if constexpr (RELU) gv = yr[c] > T(0) ? gv : T(0);
            const T xh = (xr[c] - m) * rs;
            out[c] = rs * (gv * pgam[c] - a - xh * b);
          }
        }
      }
    });
  }
  for (int64_t c = 0; c < C; ++c) {
    out.grad_gamma.data<T>()[c] = T(dgamma[c]);
    out.grad_beta.data<T>()[c] = T(dbeta[c]);
  }
}

template <class T>
void gn_backward(const Tensor& x, const Tensor& y, const Tensor& gamma, int64_t G, const GroupNormSaved& s,
                 const Tensor& dy, bool relu, NormGrads& out) {
  if (relu)
    gn_backward_impl<T, true>(x, y, gamma, G, s, dy, out);
  else
    gn_backward_impl<T, false>(x, y, gamma, G, s, dy, out);
}

}  // namespace

Tensor groupnorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps,
                         bool relu, GroupNormSaved* saved) {
  // Tensors on a CUDA device go to the CUDA implementation (nn/nn_cuda.h).
  if (x.defined() && !x.device().is_cpu()) return groupnorm_forward_cuda(x, gamma, beta, groups, eps, relu, saved);
  check_activation(x, "groupnorm input");
  const int64_t C = x.size(4), N = x.size(0);
  check_groups(x, groups);
  check_vector(gamma, C, x.dtype(), "groupnorm weight (gamma)");
  check_vector(beta, C, x.dtype(), "groupnorm bias (beta)");
  DS_CHECK(eps > 0, "groupnorm: eps must be > 0, got ", eps);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor mean = Tensor::empty({N, groups}, x.dtype()), rstd = Tensor::empty({N, groups}, x.dtype());
  dispatch_float(x.dtype(), "groupnorm",
                 [&](auto tag) { gn_forward<decltype(tag)>(x, gamma, beta, groups, eps, relu, y, mean, rstd); });
  if (saved) *saved = {mean, rstd};
  return y;
}

Tensor groupnorm_recompute(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups, double eps,
                           const GroupNormSaved& saved, bool relu) {
  if (x.defined() && !x.device().is_cpu()) {
    // No CUDA apply-only kernel: recomputing the statistics gives the same values up to rounding.
    return groupnorm_forward_cuda(x, gamma, beta, groups, eps, relu, nullptr);
  }
  check_activation(x, "groupnorm input");
  const int64_t C = x.size(4), N = x.size(0);
  check_groups(x, groups);
  check_vector(gamma, C, x.dtype(), "groupnorm weight (gamma)");
  check_vector(beta, C, x.dtype(), "groupnorm bias (beta)");
  DS_CHECK(saved.mean.defined() && saved.mean.shape() == Shape({N, groups}) && saved.rstd.defined() &&
               saved.rstd.shape() == Shape({N, groups}),
           "groupnorm recompute: saved statistics must have shape [", N, ", ", groups, "]");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), "groupnorm",
                 [&](auto tag) { gn_apply<decltype(tag)>(x, gamma, beta, groups, saved.mean, saved.rstd, relu, y); });
  return y;
}

NormGrads groupnorm_backward(const Tensor& x, const Tensor& y, const Tensor& gamma, int64_t groups,
                             const GroupNormSaved& saved, const Tensor& dy, bool relu) {
  if (x.defined() && !x.device().is_cpu()) return groupnorm_backward_cuda(x, y, gamma, groups, saved, dy, relu);
  check_activation(x, "groupnorm backward input");
  const int64_t C = x.size(4), N = x.size(0);
  check_groups(x, groups);
  check_same_shape(x, dy, "groupnorm input", "groupnorm output gradient");
  if (relu) check_same_shape(x, y, "groupnorm input", "groupnorm output (for the ReLU mask)");
  check_vector(gamma, C, x.dtype(), "groupnorm weight (gamma)");
  DS_CHECK(saved.mean.defined() && saved.mean.shape() == Shape({N, groups}) && saved.rstd.defined() &&
               saved.rstd.shape() == Shape({N, groups}),
           "groupnorm backward: saved statistics must have shape [", N, ", ", groups, "]");
  NormGrads g;
  g.grad_input = Tensor::empty(x.shape(), x.dtype());
  g.grad_gamma = Tensor::empty({C}, x.dtype());
  g.grad_beta = Tensor::empty({C}, x.dtype());
  dispatch_float(x.dtype(), "groupnorm backward",
                 [&](auto tag) { gn_backward<decltype(tag)>(x, y, gamma, groups, saved, dy, relu, g); });
  return g;
}

}  // namespace ds::nn
