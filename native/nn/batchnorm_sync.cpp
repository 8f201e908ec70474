// SyncBatchNorm for tensors on any device, composed from the device's own
// BatchNorm kernels (batchnorm_forward / batchnorm_backward without sync) and
// per-channel host arithmetic on [C] vectors; see batchnorm.h. The CPU takes
// the fused path in batchnorm.cpp; CUDA tensors come here, so SyncBatchNorm
// needs no CUDA kernel of its own:
//   forward   1. a training-mode pass into scratch running statistics with
//                momentum 1 yields this rank's mean and unbiased variance
//             2. (count, mean, M2) combined over the ranks (Chan, float64)
//             3. an eval-mode pass with the global mean / biased variance as
//                its "running" statistics normalises (and saves them)
//             4. the real running statistics updated on the host
//   backward  1. an eval-mode backward: dx0 = gamma*invstd*g and this rank's
//                sum g, sum g*xhat (= grad_beta, grad_gamma)
//             2. those sums and the count all-reduced
//             3. dx = dx0 - gamma*invstd*(mean g + xhat * mean g*xhat): an
//                eval-mode forward of x with the saved statistics, a folded
//                gamma'/beta' and dx0 as the residual.
// About two BatchNorm passes each way instead of one, plus two tiny
// device-host copies per layer.
#include <algorithm>
#include <cmath>

#include "nn/batchnorm.h"

namespace ds::nn {
namespace {

std::vector<double> host_values(const Tensor& t) {
  Tensor h = t.to(Device::cpu()).to(DType::Float64, true);
  const double* p = h.data<double>();
  return std::vector<double>(p, p + h.numel());
}

// A [C] tensor like `like` (dtype, device) holding `v`.
Tensor like_values(const std::vector<double>& v, const Tensor& like) {
  Tensor h = Tensor::empty({int64_t(v.size())}, DType::Float64);
  std::copy(v.begin(), v.end(), h.data<double>());
  return h.to(like.dtype()).to(like.device());
}

}  // namespace

Tensor sync_batchnorm_forward_composed(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var, const Tensor& residual,
                                       const BatchNormOptions& o, BatchNormSaved* saved) {
  DS_CHECK(o.training && o.sync, "internal: sync_batchnorm_forward_composed needs training mode and a sync object");
  const int64_t C = x.size(4), M = C ? x.numel() / C : 0;
  BatchNormOptions plain = o;
  plain.sync = nullptr;
  plain.relu = false;
  double count = double(M);
  std::vector<double> mean(static_cast<size_t>(C), 0.0), m2(static_cast<size_t>(C), 0.0);
  if (M > 1) {
    Tensor lm = Tensor::zeros({C}, running_mean.dtype(), running_mean.device());
    Tensor lv = Tensor::zeros({C}, running_var.dtype(), running_var.device());
    plain.momentum = 1.0;  // the scratch statistics become exactly this batch's mean and unbiased variance
    batchnorm_forward(x, gamma, beta, lm, lv, Tensor(), plain, nullptr);
    mean = host_values(lm);
    m2 = host_values(lv);
    for (auto& v : m2) v *= double(M - 1);
  } else if (M == 1) {
    mean = host_values(x.reshape({C}));
  }
  combine_batchnorm_stats(*o.sync, count, mean, m2);
  DS_CHECK(count > 1, "SyncBatchNorm (training): each channel needs more than one value over all ranks (", count,
           " for local input ", x.describe(), "); use a larger batch or patch, or eval mode");
  std::vector<double> var(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) var[size_t(c)] = m2[size_t(c)] / count;
  BatchNormOptions ev = o;
  ev.sync = nullptr;
  ev.training = false;
  Tensor y = batchnorm_forward(x, gamma, beta, like_values(mean, running_mean), like_values(var, running_var), residual,
                               ev, saved);
  std::vector<double> rm = host_values(running_mean), rv = host_values(running_var);
  for (int64_t c = 0; c < C; ++c) {
    rm[size_t(c)] = (1.0 - o.momentum) * rm[size_t(c)] + o.momentum * mean[size_t(c)];
    rv[size_t(c)] = (1.0 - o.momentum) * rv[size_t(c)] + o.momentum * m2[size_t(c)] / (count - 1.0);
  }
  Tensor rm_out = running_mean, rv_out = running_var;  // shared storage: updated in place
  rm_out.copy_from(like_values(rm, running_mean));
  rv_out.copy_from(like_values(rv, running_var));
  return y;
}

NormGrads sync_batchnorm_backward_composed(const Tensor& x, const Tensor& y, const Tensor& gamma,
                                           const BatchNormSaved& saved, const Tensor& dy, const BatchNormOptions& o,
                                           bool want_grad_pre) {
  DS_CHECK(o.training && o.sync, "internal: sync_batchnorm_backward_composed needs training mode and a sync object");
  const int64_t C = x.size(4), M = C ? x.numel() / C : 0;
  BatchNormOptions ev = o;
  ev.sync = nullptr;
  ev.training = false;
  NormGrads g = batchnorm_backward(x, y, gamma, saved, dy, ev, want_grad_pre);
  std::vector<double> sums = host_values(g.grad_beta), sgx = host_values(g.grad_gamma);
  sums.insert(sums.end(), sgx.begin(), sgx.end());
  sums.push_back(double(M));
  o.sync->all_reduce_sum(sums.data(), sums.size());
  const double count = sums[size_t(2 * C)];
  DS_CHECK(count > 1, "SyncBatchNorm backward (training): each channel needs more than one value over all ranks");
  const std::vector<double> gam = host_values(gamma), mu = host_values(saved.mean), inv = host_values(saved.invstd);
  // x*scale' + shift' with scale' = g'*inv', shift' = b' - mean*scale' (the eval-mode fold): choose the
  // "running variance" rv' from the saved invstd (inv' = inv up to rounding), then g' and b' on the host.
  std::vector<double> rv(static_cast<size_t>(C)), gp(static_cast<size_t>(C)), bp(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const size_t k = size_t(c);
    const double mg = sums[k] / count, mgx = sums[size_t(C) + k] / count;
    rv[k] = std::max(0.0, 1.0 / (inv[k] * inv[k]) - o.eps);
    const double inv_p = 1.0 / std::sqrt(rv[k] + o.eps);
    gp[k] = -gam[k] * inv[k] * inv[k] * mgx / inv_p;  // times (x - mean) * inv'
    bp[k] = -gam[k] * inv[k] * mg;
  }
  BatchNormOptions fo = ev;
  fo.relu = false;
  g.grad_input = batchnorm_forward(x, like_values(gp, gamma), like_values(bp, gamma), saved.mean,
                                   like_values(rv, saved.invstd), g.grad_input, fo, nullptr);
  return g;
}

}  // namespace ds::nn
