// CPU <-> GPU parity of the basic ops: casts, add / accumulate, ReLU,
// reductions and the fused multi-tensor SGD (see tests/parity.h).
#include "nn/activation.h"
#include "nn/elementwise.h"
#include "nn/nn_cuda.h"
#include "nn/reduce.h"
#include "nn/sgd_multi.h"
#include "tests/harness.h"
#include "tests/parity.h"

using namespace ds;
using namespace ds::testing;

namespace {

bool on_gpu(const Tensor& t) { return !t.device().is_cpu(); }

// Odd, tiny, non-multiple-of-block and large sizes (elements).
const std::vector<std::vector<int64_t>> kFlatSizes = {{1}, {7}, {1000}, {65537}, {3000017}};

Tensor scalar(double v) { return Tensor::full({1}, v, DType::Float64); }

std::vector<ParityCase> basic_cases() {
  std::vector<ParityCase> cs;
  {
    ParityCase c;
    c.name = "add";
    c.sizes = kFlatSizes;
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_tensor({s[0]}, DType::Float32, r), random_tensor({s[0]}, DType::Float32, r)};
    };
    c.run = [](Inputs& in) {
      return Inputs{on_gpu(in[0]) ? nn::add_cuda(in[0], in[1]) : nn::add(in[0], in[1])};
    };
    c.outputs = {"y"};
    // 16-bit: the sum is rounded once (half an ulp of the output).
    c.tol = {DTypeTols{{1e-7, 1e-6}, {0, 1e-15}, {1e-4, 1e-3}, {1e-3, 8e-3}}};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "axpy_";
    c.sizes = kFlatSizes;
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_tensor({s[0]}, DType::Float32, r), random_tensor({s[0]}, DType::Float32, r)};
    };
    c.run = [](Inputs& in) {
      Tensor d = in[0].clone();
      if (on_gpu(d)) nn::axpy_cuda_(d, -0.37, in[1]);
      else nn::axpy_(d, -0.37, in[1]);
      return Inputs{d};
    };
    c.outputs = {"dst"};
    c.tol = {DTypeTols{{1e-7, 1e-6}, {1e-15, 1e-14}, {1e-3, 2e-3}, {8e-3, 1.6e-2}}};
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "relu";
    c.sizes = kFlatSizes;
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_tensor({s[0]}, DType::Float32, r), random_tensor({s[0]}, DType::Float32, r)};
    };
    c.run = [](Inputs& in) {
      Tensor y = on_gpu(in[0]) ? nn::relu_forward_cuda(in[0]) : nn::relu_forward(in[0]);
      Tensor dx = on_gpu(in[0]) ? nn::relu_backward_cuda(y, in[1]) : nn::relu_backward(y, in[1]);
      return Inputs{y, dx};
    };
    c.outputs = {"y", "dx"};
    c.tol = {DTypeTols{{0, 0}, {0, 0}, {0, 0}, {0, 0}}};  // selections: exact
    cs.push_back(c);
  }
  {
    ParityCase c;
    c.name = "reductions";
    c.sizes = kFlatSizes;
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_tensor({s[0]}, DType::Float32, r, -2.0, 3.0)};
    };
    c.run = [](Inputs& in) {
      const Tensor& x = in[0];
      return Inputs{scalar(nn::sum(x)), scalar(nn::sum_squares(x)), scalar(nn::max_abs(x)),
                    scalar(double(nn::count_nonfinite(x)))};
    };
    c.outputs = {"sum", "sum_sq", "max_abs", "nonfinite"};
    // Inputs are identical on both sides and both accumulate in double; only
    // the summation order differs. A float32 CPU self-check sees the input rounding.
    c.tol = {DTypeTols{{1e-3, 1e-5}, {1e-9, 1e-10}, {1e-6, 1e-6}, {1e-6, 1e-6}}};
    cs.push_back(c);
  }
  {
    // Casts between all dtypes: exact (both sides round to nearest even).
    ParityCase c;
    c.name = "cast";
    c.sizes = {{1}, {1001}, {2000003}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      return Inputs{random_tensor({s[0]}, DType::Float32, r, -70000.0, 70000.0),
                    random_tensor({s[0]}, DType::Float32, r, 0.0, 200.0),
                    random_tensor({s[0]}, DType::Int32, r, -100000.0, 100000.0)};
    };
    c.run = [](Inputs& in) {
      Inputs out;
      for (DType t : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) out.push_back(in[0].to(t, true));
      for (DType t : {DType::Int32, DType::Int64, DType::UInt8}) out.push_back(in[1].to(t, true));
      for (DType t : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int64})
        out.push_back(in[2].to(t, true));
      return out;
    };
    c.outputs = {"f->f32", "f->f64", "f->f16", "f->bf16", "f->i32", "f->i64", "f->u8",
                 "i->f32", "i->f64", "i->f16", "i->bf16", "i->i64"};
    // The reference converts from the same (already rounded) values, so every
    // output is exact; against a float64 CPU self-check only f->f32 may differ.
    c.tol = {DTypeTols{{0, 0}, {0, 0}, {0, 0}, {0, 0}}};
    c.dtypes = {DType::Float32, DType::Float16, DType::BFloat16};
    cs.push_back(c);
  }
  {
    // Fused SGD: three parameters (1, 1000, 70001 elements), two steps
    // (momentum buffers allocated on the first), weight decay, Nesterov,
    // gradient scale and a 16-bit compute copy.
    ParityCase c;
    c.name = "sgd_multi";
    c.sizes = {{1, 1000, 70001}};
    c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
      Inputs in;
      for (int64_t n : s) in.push_back(random_tensor({n}, DType::Float32, r));
      for (int64_t n : s) in.push_back(random_tensor({n}, DType::Float32, r, -100.0, 100.0));  // scaled grads
      return in;
    };
    // Parameters stay float32 (master weights) when gradients are 16-bit.
    c.input_dtype = [](size_t i, DType dt) {
      if (i < 3) return dt == DType::Float64 ? DType::Float64 : DType::Float32;
      return dt;
    };
    c.run = [](Inputs& in) {
      nn::SgdMultiArgs a;
      for (int k = 0; k < 3; ++k) {
        a.params.push_back(in[size_t(k)].clone());
        a.grads.push_back(in[size_t(3 + k)]);
      }
      a.opt.lr = 0.05;
      a.opt.momentum = 0.9;
      a.opt.weight_decay = 1e-4;
      a.opt.nesterov = true;
      a.grad_scale = 1.0 / 64.0;
      if (a.params[0].dtype() == DType::Float32) {
        const DType cdt = a.grads[0].dtype() == DType::BFloat16 ? DType::BFloat16 : DType::Float16;
        for (auto& p : a.params) a.compute.push_back(Tensor::empty(p.shape(), cdt, p.device()));
      }
      nn::sgd_multi_step(a);
      nn::sgd_multi_step(a);
      Inputs out = a.params;
      for (auto& b : a.bufs) out.push_back(b);
      for (auto& cp : a.compute) out.push_back(cp.to(DType::Float32));
      if (a.compute.empty()) out.insert(out.end(), 3, Tensor());
      return out;
    };
    c.outputs = {"p0", "p1", "p2", "buf0", "buf1", "buf2", "copy0", "copy1", "copy2"};
    DTypeTols t;
    t.f32 = {1e-6, 1e-5};
    t.f16 = {1e-6, 1e-5};   // float32 arithmetic on identical values on both sides
    t.bf16 = {1e-6, 1e-5};
    DTypeTols tc = t;       // compute copies: one rounding to 16 bits
    tc.f16 = {1e-6, 1e-3};
    tc.bf16 = {1e-6, 8e-3};
    c.tol = {t, t, t, t, t, t, tc, tc, tc};
    cs.push_back(c);
  }
  return cs;
}

}  // namespace

DS_TEST(parity_basic_ops) { run_parity_cases(basic_cases()); }
