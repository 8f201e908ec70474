// CPU <-> GPU parity of conv3d (tests/parity.h): forward (+bias), the fused
// forward (accumulate + ReLU, ops/conv3d_cuda.h), backward (grad input /
// weight / bias), the float32-master-gradient path for 16-bit inputs, the
// 1x1x1 GEMM path, the 7x7x7 single-channel stem and the generic path (odd
// channel counts, stride 2, dilation 2), plus every autotuner candidate on one
// shape. The GPU side goes through the public conv3d_* entry points, which
// dispatch on the input's device (except the fused form, called directly).
//
// Tolerances (conv_tol): the harness gives CPU and GPU identically rounded
// inputs, uniform in [-1, 1), so a product of two has rms 1/3 (a sum of dy
// terms: rms 1/sqrt(3)), and the partial sums of a reduction of length L are
// typically P = sqrt(L) * rms (plus the magnitude of an accumulated initial
// value). Both sides accumulate in float32 (float64 for float64) in different
// orders; each addition errs by <= eps * |partial sum|, and these errors add
// like a random walk, so atol = 4 * sqrt(L) * eps * P (eps = 2^-24 resp. 2^-53):
// about 4x the expected difference, yet far below one missing or doubled term
// (~rms). The GPU float32 path is plain FP32 (no TF32). 16-bit inputs run on
// tensor cores, whose float32 accumulation (mma.sync) truncates toward zero when
// it aligns and normalises: a biased error that grows with the number of mma
// steps (L / 16) rather than as a random walk (the worst-case model in
// benchmarks/gpu/conv_cuda_emulate.py tcround reaches ~2x the atol above for
// float16 at L = 864), so 16-bit dtypes add 8 * 2^-24 * P per step (still
// >= 50x below one term). 16-bit outputs add one rounding of the
// result: rtol = 2 * 2^-11 (float16) resp. 2 * 2^-8 (bfloat16). float32 master
// gradients of 16-bit inputs are never rounded to 16 bits (rtol 1e-5).
#include <algorithm>
#include <cmath>

#include "ops/conv3d.h"
#include "ops/conv3d_cuda.h"
#include "tests/harness.h"
#include "tests/parity.h"

using namespace ds;
using namespace ds::testing;

namespace {

bool on_gpu(const Tensor& t) { return t.defined() && !t.device().is_cpu(); }

// Size = {N, D1, D2, D3, Cin, Cout, k1, k2, k3, s1, s2, s3, p1, p2, p3, d1, d2, d3}.
using Size = std::vector<int64_t>;

Conv3dParams params_of(const Size& s) {
  Conv3dParams p;
  for (int i = 0; i < 3; ++i) {
    p.stride[i] = s[9 + i];
    p.padding[i] = s[12 + i];
    p.dilation[i] = s[15 + i];
  }
  return p;
}
int64_t out_extent(const Size& s, int i) {
  return (s[1 + i] + 2 * s[12 + i] - s[15 + i] * (s[6 + i] - 1) - 1) / s[9 + i] + 1;
}
Shape x_shape(const Size& s) { return {s[0], s[1], s[2], s[3], s[4]}; }
Shape w_shape(const Size& s) { return {s[5], s[6], s[7], s[8], s[4]}; }
Shape y_shape(const Size& s) { return {s[0], out_extent(s, 0), out_extent(s, 1), out_extent(s, 2), s[5]}; }
int64_t taps(const Size& s) { return s[6] * s[7] * s[8]; }
int64_t positions(const Size& s) { return s[0] * out_extent(s, 0) * out_extent(s, 1) * out_extent(s, 2); }

// The parameters travel as an int64 input (int64 inputs stay on the host).
Tensor params_tensor(const Size& s) {
  Tensor t = Tensor::empty({18}, DType::Int64);
  for (int i = 0; i < 18; ++i) t.data<int64_t>()[i] = s[i];
  return t;
}
Size size_of(const Tensor& t) {
  const int64_t* p = t.data<int64_t>();
  return Size(p, p + 18);
}

// See the file comment. `len`: the longest reduction over the case's sizes;
// `rms`: rms of one term; `offset`: magnitude of an accumulated initial value.
DTypeTols conv_tol(double len, double rms = 1.0 / 3.0, double offset = 0, bool out16 = true) {
  const double P = std::sqrt(len) * rms + offset;
  DTypeTols t;
  const double a32 = 4 * std::sqrt(len) * std::ldexp(1.0, -24) * P;
  t.f32 = {a32, 1e-5};
  t.f64 = {4 * std::sqrt(len) * std::ldexp(1.0, -53) * P, 1e-12};
  const double a16 = a32 + 8 * std::ceil(len / 16) * std::ldexp(1.0, -24) * P;  // tensor-core accumulation
  t.f16 = out16 ? Tol{a16 + std::ldexp(1.0, -24), 2 * std::ldexp(1.0, -11)} : Tol{a16, t.f32.rtol};
  t.bf16 = out16 ? Tol{a16, 2 * std::ldexp(1.0, -8)} : Tol{a16, t.f32.rtol};
  return t;
}

double max_over(const std::vector<Size>& sizes, int64_t (*f)(const Size&)) {
  double m = 1;
  for (const auto& s : sizes) m = std::max(m, double(f(s)));
  return m;
}
int64_t fwd_len(const Size& s) { return taps(s) * s[4]; }
int64_t dgrad_len(const Size& s) { return taps(s) * s[5]; }

// Mixed shapes: tensor-core eligible (channels % 8 == 0), odd channels
// (generic), stride 2, dilation 2 with padding 2, 1x1x1 (GEMM path),
// anisotropic kernels, several tiles and Cout above one tile.
const std::vector<Size> kSizes = {
    {2, 5, 7, 6, 16, 24, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {1, 6, 5, 7, 3, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 9, 8, 7, 8, 16, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1},
    {1, 7, 9, 8, 16, 8, 3, 3, 3, 1, 1, 1, 2, 2, 2, 2, 2, 2},
    {3, 4, 5, 6, 24, 40, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1},
    {2, 6, 6, 5, 40, 72, 3, 1, 3, 1, 2, 1, 0, 1, 0, 1, 1, 2},
    {1, 5, 7, 9, 13, 11, 3, 3, 3, 2, 1, 2, 1, 0, 1, 1, 2, 1},
    {1, 12, 20, 20, 32, 136, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
};
// Single input channel, 7x7x7, stride (1, 2, 2), padding 3: the stem.
const std::vector<Size> kStemSizes = {
    {1, 10, 24, 22, 1, 16, 7, 7, 7, 1, 2, 2, 3, 3, 3, 1, 1, 1},
    {2, 8, 12, 14, 1, 72, 7, 7, 7, 1, 2, 2, 3, 3, 3, 1, 1, 1},
};

DType param_dtype(DType dt) { return dt == DType::Float64 ? DType::Float64 : DType::Float32; }

ParityCase forward_case(const std::string& name, const std::vector<Size>& sizes) {
  ParityCase c;
  c.name = name;
  c.sizes = sizes;
  c.make = [](const Size& s, std::mt19937_64& r) {
    return Inputs{random_tensor(x_shape(s), DType::Float32, r), random_tensor(w_shape(s), DType::Float32, r),
                  random_tensor({s[5]}, DType::Float32, r), params_tensor(s)};
  };
  // float32 bias with 16-bit activations (the mixed-precision layout).
  c.input_dtype = [](size_t i, DType dt) { return i == 2 ? param_dtype(dt) : dt; };
  c.run = [](Inputs& in) { return Inputs{conv3d_forward(in[0], in[1], in[2], params_of(size_of(in[3])))}; };
  c.outputs = {"y"};
  c.tol = {conv_tol(max_over(sizes, fwd_len), 1.0 / 3.0, 1.0)};  // + bias
  return c;
}

// y = relu(y0 + conv + bias), bias in x's dtype: fused on the GPU, composed on the CPU.
ParityCase fused_case(const std::vector<Size>& sizes) {
  ParityCase c;
  c.name = "conv_fwd_acc_relu";
  c.sizes = sizes;
  c.make = [](const Size& s, std::mt19937_64& r) {
    return Inputs{random_tensor(x_shape(s), DType::Float32, r), random_tensor(w_shape(s), DType::Float32, r),
                  random_tensor({s[5]}, DType::Float32, r), random_tensor(y_shape(s), DType::Float32, r, -4, 4),
                  params_tensor(s)};
  };
  c.run = [](Inputs& in) {
    const Conv3dParams p = params_of(size_of(in[4]));
    Tensor y = in[3].clone();
    if (on_gpu(in[0])) {
      conv3d_forward_cuda_into(in[0], in[1], in[2], p, y, /*accumulate=*/true, /*relu=*/true);
      return Inputs{y};
    }
    conv3d_forward_into(in[0], in[1], in[2], p, y, /*accumulate=*/true);
    const int64_t n = y.numel();
    if (y.dtype() == DType::Float32)
      for (float* v = y.data<float>(); v < y.data<float>() + n; ++v) *v = *v > 0 ? *v : 0;
    else
      for (double* v = y.data<double>(); v < y.data<double>() + n; ++v) *v = *v > 0 ? *v : 0;
    return Inputs{y};
  };
  c.outputs = {"y"};
  c.tol = {conv_tol(max_over(sizes, fwd_len), 1.0 / 3.0, 5.0)};  // + y0 in [-4, 4) + bias
  return c;
}

// Fresh gradients (grad_weight / grad_bias in x's dtype).
ParityCase backward_case(const std::string& name, const std::vector<Size>& sizes) {
  ParityCase c;
  c.name = name;
  c.sizes = sizes;
  c.make = [](const Size& s, std::mt19937_64& r) {
    return Inputs{random_tensor(x_shape(s), DType::Float32, r), random_tensor(w_shape(s), DType::Float32, r),
                  random_tensor(y_shape(s), DType::Float32, r), params_tensor(s)};
  };
  c.run = [](Inputs& in) {
    Conv3dGrads g = conv3d_backward(in[0], in[1], in[2], params_of(size_of(in[3])), true, true, true);
    return Inputs{g.grad_input, g.grad_weight, g.grad_bias};
  };
  c.outputs = {"dx", "dw", "db"};
  c.tol = {conv_tol(max_over(sizes, dgrad_len)), conv_tol(max_over(sizes, positions)),
           conv_tol(max_over(sizes, positions), 0.58)};
  return c;
}

// Gradient accumulation into existing gradients; for 16-bit inputs the weight
// and bias gradients are float32 master tensors.
ParityCase master_case(const std::vector<Size>& sizes) {
  ParityCase c;
  c.name = "conv_bwd_acc_master";
  c.sizes = sizes;
  c.make = [](const Size& s, std::mt19937_64& r) {
    return Inputs{random_tensor(x_shape(s), DType::Float32, r), random_tensor(w_shape(s), DType::Float32, r),
                  random_tensor(y_shape(s), DType::Float32, r), random_tensor(x_shape(s), DType::Float32, r),
                  random_tensor(w_shape(s), DType::Float32, r, -8, 8), random_tensor({s[5]}, DType::Float32, r, -8, 8),
                  params_tensor(s)};
  };
  c.input_dtype = [](size_t i, DType dt) { return (i == 4 || i == 5) ? param_dtype(dt) : dt; };
  c.run = [](Inputs& in) {
    Conv3dGrads g{in[3].clone(), in[4].clone(), in[5].clone()};
    conv3d_backward_into(in[0], in[1], in[2], params_of(size_of(in[6])), g, /*accumulate=*/true);
    return Inputs{g.grad_input, g.grad_weight, g.grad_bias};
  };
  c.outputs = {"dx", "dw_f32", "db_f32"};
  c.tol = {conv_tol(max_over(sizes, dgrad_len), 1.0 / 3.0, 1.0),
           conv_tol(max_over(sizes, positions), 1.0 / 3.0, 8.0, false),
           conv_tol(max_over(sizes, positions), 0.58, 8.0, false)};
  return c;
}

// Every candidate the autotuner may pick, forced in turn, on one shape. The
// output list is fixed (candidates not eligible for a dtype fall back to the
// automatic choice, which is still compared); eligible ones must really run.
const std::vector<std::string> kCandNames = {"tc128x128", "tc128x64", "tc64x128", "tc64x64", "simt128", "generic"};

ParityCase candidates_case() {
  ParityCase c;
  c.name = "conv_candidates";
  c.sizes = {{2, 6, 7, 5, 16, 24, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}};
  c.make = [](const Size& s, std::mt19937_64& r) {
    return Inputs{random_tensor(x_shape(s), DType::Float32, r), random_tensor(w_shape(s), DType::Float32, r),
                  random_tensor(y_shape(s), DType::Float32, r), params_tensor(s)};
  };
  c.run = [](Inputs& in) {
    const Conv3dParams p = params_of(size_of(in[3]));
    Inputs out;
    for (const std::string& name : kCandNames) {
      if (on_gpu(in[0])) conv3d_cuda_force_algo(name);
      Tensor y;
      Conv3dGrads g;
      try {
        y = conv3d_forward(in[0], in[1], Tensor(), p);
        g = conv3d_backward(in[0], in[1], in[2], p, true, true, false);
      } catch (...) {
        conv3d_cuda_force_algo("");
        throw;
      }
      if (on_gpu(in[0])) {
        conv3d_cuda_force_algo("");
        const Conv3dPass passes[3] = {Conv3dPass::Forward, Conv3dPass::GradInput, Conv3dPass::GradWeight};
        for (Conv3dPass ps : passes) {
          const auto cands = conv3d_cuda_candidates(in[0], in[1], p, ps);
          const bool eligible = std::find(cands.begin(), cands.end(), name) != cands.end();
          DS_EXPECT(!eligible || conv3d_cuda_last_algo(ps) == name, "forced conv3d kernel ", name, " for pass ",
                    int(ps), " but ", conv3d_cuda_last_algo(ps), " ran");
        }
      }
      out.push_back(y);
      out.push_back(g.grad_input);
      out.push_back(g.grad_weight);
    }
    return out;
  };
  const Size& s = c.sizes[0];
  for (const std::string& name : kCandNames) {
    c.outputs.push_back(name + "/y");
    c.outputs.push_back(name + "/dx");
    c.outputs.push_back(name + "/dw");
    c.tol.push_back(conv_tol(double(fwd_len(s))));
    c.tol.push_back(conv_tol(double(dgrad_len(s))));
    c.tol.push_back(conv_tol(double(positions(s))));
  }
  return c;
}

}  // namespace

DS_TEST(parity_conv_forward) {
  run_parity_cases({forward_case("conv_fwd_bias", kSizes), fused_case({kSizes[0], kSizes[1], kSizes[2], kSizes[5]})});
}
DS_TEST(parity_conv_backward) {
  run_parity_cases({backward_case("conv_bwd", kSizes), master_case({kSizes[0], kSizes[1], kSizes[4], kSizes[6]})});
}
DS_TEST(parity_conv_stem) {
  run_parity_cases({forward_case("conv_stem_fwd", kStemSizes), backward_case("conv_stem_bwd", kStemSizes)});
}
DS_TEST(parity_conv_candidates) { run_parity_cases({candidates_case()}); }

// Runs everywhere (no GPU needed): the CUDA entry points refuse CPU tensors
// with an error naming the problem, in CUDA builds and in CPU-only builds.
DS_TEST(parity_conv_cuda_rejects_cpu_tensors) {
  std::mt19937_64 r(3);
  Tensor x = random_tensor({1, 4, 4, 4, 8}, DType::Float32, r), w = random_tensor({8, 3, 3, 3, 8}, DType::Float32, r);
  bool threw = false;
  try {
    conv3d_forward_cuda(x, w, Tensor(), Conv3dParams{});
  } catch (const Error& e) {
    const std::string m = e.what();
    threw = m.find("GPU") != std::string::npos || m.find("CUDA") != std::string::npos;
  }
  DS_EXPECT(threw, "conv3d_forward_cuda accepted a CPU tensor or gave an unclear error");
}
