// CPU <-> GPU parity harness. A ParityCase describes one op: how to make
// random inputs for a size, how to run it on whatever device its inputs are
// on, and tolerances per dtype. run_parity() then, for every size and dtype:
//   1. makes fresh random float32 inputs, rounds them to the tested dtype (so
//      CPU and GPU see identical values);
//   2. reference: the CPU op in float32 (float64 when testing float64);
//   3. GPU: the inputs in the tested dtype on cuda:0, with every new device
//      allocation poisoned with NaN bytes (unwritten outputs show up), and
//      the outputs copied back;
//   4. compares each output element-wise: ok when |gpu - ref| <= atol + rtol*|ref|
//      (NaN/inf must match exactly), printing one line per op / output / dtype
//      / shape with the max abs and max relative error.
// Without a GPU it runs the CPU self-check instead (the op in float32 against
// float64 with the float32 tolerance) and the test reports the GPU part as
// skipped. Adding an op = adding one ParityCase.
#pragma once
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ds::testing {

struct Tol {
  double atol, rtol;
};

// Tolerances of one output per tested dtype. float32: ~1e-5 relative (the
// issue's bound); 16-bit: the output's own rounding (2^-11 resp. 2^-8
// relative) plus the op's internal roundings, set per op.
struct DTypeTols {
  Tol f32{1e-6, 1e-5};
  Tol f64{1e-12, 1e-10};
  Tol f16{2e-3, 2e-3};
  Tol bf16{1.6e-2, 1.6e-2};
  Tol of(DType dt) const;
};

using Inputs = std::vector<Tensor>;

struct ParityCase {
  std::string name;
  std::vector<DType> dtypes{DType::Float32, DType::Float64, DType::Float16, DType::BFloat16};
  // Size cases (interpreted by make), e.g. {N, D1, D2, D3, C}.
  std::vector<std::vector<int64_t>> sizes;
  // Fresh random inputs for a size (CPU; float inputs float32, others any
  // dtype). int64 inputs are host-side parameters and are not moved to the GPU.
  std::function<Inputs(const std::vector<int64_t>& size, std::mt19937_64& rng)> make;
  // Runs the op on the inputs' device and returns its outputs (undefined ones are skipped).
  std::function<Inputs(Inputs& in)> run;
  std::vector<std::string> outputs;  // names, one per output
  std::vector<DTypeTols> tol;        // one per output (the last one repeats)
  // dtype that float input i gets when the op is tested in dt (default dt;
  // e.g. BatchNorm keeps gamma and running stats float32 for 16-bit activations).
  std::function<DType(size_t input, DType dt)> input_dtype;
};

bool gpu_available();
// "no GPU (reason)" for skip messages.
std::string no_gpu_reason();

// CPU tensor with uniform values in [lo, hi) (integer dtypes: integers in [lo, hi)).
Tensor random_tensor(const Shape& shape, DType dt, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0);

struct CompareStats {
  double max_abs = 0, max_rel = 0, worst = 0;  // worst = max |err| / (atol + rtol |ref|)
  int64_t bad = 0, first_bad = -1, count = 0;
  double first_got = 0, first_ref = 0;
};
// Element-wise comparison of two tensors of equal numel (any devices / dtypes).
CompareStats compare(const Tensor& got, const Tensor& ref, Tol tol);

// Runs the case; returns the number of failing comparisons. Calls DS_SKIP
// (after the CPU self-check) when there is no GPU.
int run_parity(const ParityCase& c);

// A DS_TEST body for a list of cases: runs all, fails when any comparison failed.
void run_parity_cases(const std::vector<ParityCase>& cases);

}  // namespace ds::testing
