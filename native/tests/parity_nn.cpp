// CPU <-> GPU parity of the normalisation and resampling layers: BatchNorm3d
// (training with residual + ReLU, eval), GroupNorm (+ReLU), MaxPool3d and
// nearest upsampling, forward and backward (see tests/parity.h).
#include "nn/batchnorm.h"
#include "nn/groupnorm.h"
#include "nn/maxpool.h"
#include "nn/nn_cuda.h"
#include "nn/upsample.h"
#include "tests/harness.h"
#include "tests/parity.h"

using namespace ds;
using namespace ds::testing;

namespace {

bool on_gpu(const Tensor& t) { return !t.device().is_cpu(); }

// Per-channel tensors stay float32 when activations are 16-bit.
DType act_or_param(bool is_param, DType dt) {
  if (!is_param) return dt;
  return dt == DType::Float64 ? DType::Float64 : DType::Float32;
}

// Forward outputs: one rounding of the result plus the float32 statistics.
DTypeTols fwd_tol() {
  DTypeTols t;
  t.f32 = {2e-5, 2e-5};
  t.f16 = {4e-3, 4e-3};
  t.bf16 = {3e-2, 2e-2};
  return t;
}
// Gradients: sums over many elements and a cancellation (g - mean g - xhat*mean gx).
DTypeTols bwd_tol() {
  DTypeTols t;
  t.f32 = {1e-4, 1e-4};
  t.f16 = {1e-2, 1e-2};
  t.bf16 = {6e-2, 4e-2};
  return t;
}

// Activation shapes [N, D1, D2, D3, C]: odd, single-channel, wide and large.
const std::vector<std::vector<int64_t>> kActSizes = {
    {2, 5, 7, 3, 33}, {1, 9, 10, 11, 1}, {3, 4, 4, 4, 130}, {2, 24, 24, 24, 32}};

// y for the backward tests: only its sign matters (the ReLU mask), so it is an
// input kept away from 0, where the forward outputs of two implementations
// could legitimately disagree by a rounding.
Tensor relu_mask_source(const Shape& s, std::mt19937_64& r) {
  Tensor y = random_tensor(s, DType::Float32, r);
  float* p = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) p[i] = p[i] < 0 ? p[i] - 0.1f : p[i] + 0.1f;
  return y;
}

ParityCase batchnorm_fwd_case(bool training) {
  ParityCase c;
  c.name = training ? "batchnorm_fwd_train_res_relu" : "batchnorm_fwd_eval";
  c.sizes = kActSizes;
  c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
    const Shape xs(s.begin(), s.begin() + 5);
    const int64_t C = s[4];
    // Offset inputs (mean ~3) exercise the numerically stable statistics.
    return Inputs{random_tensor(xs, DType::Float32, r, 2.0, 4.0),      // x
                  random_tensor({C}, DType::Float32, r, 0.5, 1.5),     // gamma
                  random_tensor({C}, DType::Float32, r, -0.5, 0.5),    // beta
                  random_tensor({C}, DType::Float32, r, 2.5, 3.5),     // running_mean
                  random_tensor({C}, DType::Float32, r, 0.2, 0.5),     // running_var
                  random_tensor(xs, DType::Float32, r, -0.5, 0.5)};    // residual
  };
  c.input_dtype = [](size_t i, DType dt) { return act_or_param(i >= 1 && i <= 4, dt); };
  c.run = [training](Inputs& in) {
    nn::BatchNormOptions o;
    o.training = training;
    o.relu = training;
    o.momentum = 0.1;
    Tensor rm = in[3].clone(), rv = in[4].clone();
    Tensor res = training ? in[5] : Tensor();
    nn::BatchNormSaved saved;
    Tensor y = on_gpu(in[0]) ? nn::batchnorm_forward_cuda(in[0], in[1], in[2], rm, rv, res, o, &saved)
                             : nn::batchnorm_forward(in[0], in[1], in[2], rm, rv, res, o, &saved);
    return Inputs{y, saved.mean, saved.invstd, rm, rv};
  };
  c.outputs = {"y", "mean", "invstd", "running_mean", "running_var"};
  c.tol = {fwd_tol()};
  return c;
}

ParityCase batchnorm_bwd_case(bool training) {
  ParityCase c;
  c.name = training ? "batchnorm_bwd_train_relu" : "batchnorm_bwd_eval";
  c.sizes = kActSizes;
  c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
    const Shape xs(s.begin(), s.begin() + 5);
    const int64_t C = s[4];
    return Inputs{random_tensor(xs, DType::Float32, r, 2.0, 4.0),   // x
                  relu_mask_source(xs, r),                          // y (mask)
                  random_tensor({C}, DType::Float32, r, 0.5, 1.5),  // gamma
                  random_tensor({C}, DType::Float32, r, 2.8, 3.2),  // saved mean
                  random_tensor({C}, DType::Float32, r, 1.5, 2.0),  // saved invstd
                  random_tensor(xs, DType::Float32, r)};            // dy
  };
  c.input_dtype = [](size_t i, DType dt) { return act_or_param(i >= 2 && i <= 4, dt); };
  c.run = [training](Inputs& in) {
    nn::BatchNormOptions o;
    o.training = training;
    o.relu = training;
    nn::BatchNormSaved saved{in[3], in[4]};
    nn::NormGrads g = on_gpu(in[0]) ? nn::batchnorm_backward_cuda(in[0], in[1], in[2], saved, in[5], o, true)
                                    : nn::batchnorm_backward(in[0], in[1], in[2], saved, in[5], o, true);
    return Inputs{g.grad_input, g.grad_gamma, g.grad_beta, g.grad_pre};
  };
  c.outputs = {"dx", "dgamma", "dbeta", "grad_pre"};
  c.tol = {bwd_tol(), bwd_tol(), bwd_tol(), DTypeTols{{0, 0}, {0, 0}, {0, 0}, {0, 0}}};
  return c;
}

// {N, D1, D2, D3, C, groups}
const std::vector<std::vector<int64_t>> kGroupSizes = {
    {2, 5, 7, 3, 33, 3}, {1, 9, 10, 11, 1, 1}, {3, 4, 4, 4, 130, 13}, {2, 24, 24, 24, 32, 8}};

Tensor int_scalar(int64_t v) { return Tensor::full({1}, double(v), DType::Int64); }

ParityCase groupnorm_fwd_case() {
  ParityCase c;
  c.name = "groupnorm_fwd_relu";
  c.sizes = kGroupSizes;
  c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
    const Shape xs(s.begin(), s.begin() + 5);
    const int64_t C = s[4];
    return Inputs{random_tensor(xs, DType::Float32, r, 2.0, 4.0), random_tensor({C}, DType::Float32, r, 0.5, 1.5),
                  random_tensor({C}, DType::Float32, r, -0.5, 0.5), int_scalar(s[5])};
  };
  c.input_dtype = [](size_t i, DType dt) { return act_or_param(i == 1 || i == 2, dt); };
  c.run = [](Inputs& in) {
    const int64_t G = in[3].data<int64_t>()[0];
    nn::GroupNormSaved saved;
    Tensor y = on_gpu(in[0]) ? nn::groupnorm_forward_cuda(in[0], in[1], in[2], G, 1e-5, true, &saved)
                             : nn::groupnorm_forward(in[0], in[1], in[2], G, 1e-5, true, &saved);
    return Inputs{y, saved.mean, saved.rstd};
  };
  c.outputs = {"y", "mean", "rstd"};
  c.tol = {fwd_tol()};
  return c;
}

ParityCase groupnorm_bwd_case() {
  ParityCase c;
  c.name = "groupnorm_bwd_relu";
  c.sizes = kGroupSizes;
  c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
    const Shape xs(s.begin(), s.begin() + 5);
    const int64_t N = s[0], C = s[4], G = s[5];
    return Inputs{random_tensor(xs, DType::Float32, r, 2.0, 4.0),     // x
                  relu_mask_source(xs, r),                            // y (mask)
                  random_tensor({C}, DType::Float32, r, 0.5, 1.5),    // gamma
                  random_tensor({N, G}, DType::Float32, r, 2.8, 3.2), // saved mean
                  random_tensor({N, G}, DType::Float32, r, 1.5, 2.0), // saved rstd
                  random_tensor(xs, DType::Float32, r),               // dy
                  int_scalar(G)};
  };
  c.input_dtype = [](size_t i, DType dt) { return act_or_param(i >= 2 && i <= 4, dt); };
  c.run = [](Inputs& in) {
    const int64_t G = in[6].data<int64_t>()[0];
    nn::GroupNormSaved saved{in[3], in[4]};
    nn::NormGrads g = on_gpu(in[0]) ? nn::groupnorm_backward_cuda(in[0], in[1], in[2], G, saved, in[5], true)
                                    : nn::groupnorm_backward(in[0], in[1], in[2], G, saved, in[5], true);
    return Inputs{g.grad_input, g.grad_gamma, g.grad_beta};
  };
  c.outputs = {"dx", "dgamma", "dbeta"};
  c.tol = {bwd_tol()};
  return c;
}

ParityCase maxpool_case() {
  ParityCase c;
  c.name = "maxpool3d";
  // {N, D1, D2, D3, C, kernel, stride, padding}: the ResNet stem (3, 2, 1),
  // the FPN extra level (1, 2, 0) and non-overlapping 2x2x2.
  c.sizes = {{2, 9, 8, 7, 5, 3, 2, 1}, {1, 5, 6, 7, 33, 1, 2, 0}, {2, 8, 10, 6, 3, 2, 2, 0}, {2, 32, 32, 32, 16, 3, 2, 1}};
  c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
    const Shape xs(s.begin(), s.begin() + 5);
    Shape ys = xs;
    for (int i = 0; i < 3; ++i) ys[1 + i] = (xs[1 + i] + 2 * s[7] - s[5]) / s[6] + 1;
    Tensor geo = Tensor::empty({3}, DType::Int64);
    for (int i = 0; i < 3; ++i) geo.data<int64_t>()[i] = s[5 + size_t(i)];
    return Inputs{random_tensor(xs, DType::Float32, r), random_tensor(ys, DType::Float32, r), geo};
  };
  c.run = [](Inputs& in) {
    const int64_t* g = in[2].data<int64_t>();
    nn::MaxPoolParams p;
    p.kernel = {g[0], g[0], g[0]};
    p.stride = {g[1], g[1], g[1]};
    p.padding = {g[2], g[2], g[2]};
    Tensor am;
    const bool gpu = on_gpu(in[0]);
    Tensor y = gpu ? nn::maxpool3d_forward_cuda(in[0], p, &am) : nn::maxpool3d_forward(in[0], p, &am);
    Tensor dx = gpu ? nn::maxpool3d_backward_cuda(in[1], am, in[0].shape()) : nn::maxpool3d_backward(in[1], am, in[0].shape());
    return Inputs{y, am, dx};
  };
  c.outputs = {"y", "argmax", "dx"};
  DTypeTols exact{{0, 0}, {0, 0}, {0, 0}, {0, 0}};
  // dx: at most 8 overlapping windows summed in a different order (atomics).
  DTypeTols sum8{{1e-6, 1e-6}, {1e-14, 1e-14}, {2e-3, 2e-3}, {1.6e-2, 1.6e-2}};
  c.tol = {exact, exact, sum8};
  // The geometry tensor (index 2) is integer and passed through unchanged.
  return c;
}

ParityCase upsample_case() {
  ParityCase c;
  c.name = "upsample_nearest";
  // {N, D1, D2, D3, C, O1, O2, O3}: x2 (FPN), non-integer ratios, shrinking.
  c.sizes = {{2, 4, 5, 3, 7, 8, 10, 6}, {1, 5, 7, 3, 33, 7, 3, 5}, {2, 16, 16, 16, 32, 32, 32, 32}};
  c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
    const Shape xs(s.begin(), s.begin() + 5);
    const Shape ys = {s[0], s[5], s[6], s[7], s[4]};
    return Inputs{random_tensor(xs, DType::Float32, r), random_tensor(ys, DType::Float32, r)};
  };
  c.run = [](Inputs& in) {
    const std::array<int64_t, 3> sz = {in[1].size(1), in[1].size(2), in[1].size(3)};
    const bool gpu = on_gpu(in[0]);
    Tensor y = gpu ? nn::upsample_nearest_forward_cuda(in[0], sz) : nn::upsample_nearest_forward(in[0], sz);
    Tensor dx = gpu ? nn::upsample_nearest_backward_cuda(in[1], in[0].shape())
                    : nn::upsample_nearest_backward(in[1], in[0].shape());
    return Inputs{y, dx};
  };
  c.outputs = {"y", "dx"};
  // y is a copy (exact); dx sums up to 8 values in the CPU's order: exact in
  // float32/64, one final rounding for 16-bit.
  c.tol = {DTypeTols{{0, 0}, {0, 0}, {0, 0}, {0, 0}}, DTypeTols{{2e-6, 1e-6}, {0, 0}, {1e-3, 1e-3}, {8e-3, 8e-3}}};
  return c;
}

}  // namespace

DS_TEST(parity_batchnorm) {
  run_parity_cases({batchnorm_fwd_case(true), batchnorm_fwd_case(false), batchnorm_bwd_case(true),
                    batchnorm_bwd_case(false)});
}
DS_TEST(parity_groupnorm) { run_parity_cases({groupnorm_fwd_case(), groupnorm_bwd_case()}); }
DS_TEST(parity_pool_upsample) { run_parity_cases({maxpool_case(), upsample_case()}); }
