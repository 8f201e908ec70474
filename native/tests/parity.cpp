#include "tests/parity.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/cuda_allocator.h"
#include "core/cuda_runtime.h"
#include "core/device_copy.h"
#include "tests/harness.h"

namespace ds::testing {

Tol DTypeTols::of(DType dt) const {
  switch (dt) {
    case DType::Float64: return f64;
    case DType::Float16: return f16;
    case DType::BFloat16: return bf16;
    case DType::Float32: return f32;
    default: return Tol{0, 0};  // integers: exact
  }
}

bool gpu_available() { return cuda::available(); }

std::string no_gpu_reason() {
  return "no GPU (" + (cuda::compiled() ? cuda::unavailable_reason() : std::string("built without CUDA")) + ")";
}

Tensor random_tensor(const Shape& shape, DType dt, std::mt19937_64& rng, double lo, double hi) {
  Tensor t = Tensor::empty(shape, DType::Float64);
  std::uniform_real_distribution<double> u(lo, hi);
  double* p = t.data<double>();
  const bool integer = !dtype_is_float(dt);
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = integer ? std::floor(u(rng)) : u(rng);
  return t.to(dt);
}

static double value_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::Float32: return t.data<float>()[i];
    case DType::Float64: return t.data<double>()[i];
    case DType::Float16: return half_to_float(t.data_u16()[i]);
    case DType::BFloat16: return bf16_to_float(t.data_u16()[i]);
    case DType::Int32: return t.data<int32_t>()[i];
    case DType::Int64: return double(t.data<int64_t>()[i]);
    case DType::UInt8: return t.data<uint8_t>()[i];
  }
  return 0;
}

CompareStats compare(const Tensor& got_any, const Tensor& ref_any, Tol tol) {
  DS_CHECK(got_any.numel() == ref_any.numel(), "parity: output has ", got_any.numel(), " elements, reference ",
           ref_any.numel());
  const Tensor got = got_any.to(Device::cpu()), ref = ref_any.to(Device::cpu());
  CompareStats s;
  s.count = got.numel();
  for (int64_t i = 0; i < s.count; ++i) {
    const double a = value_at(got, i), b = value_at(ref, i);
    bool ok;
    double err = 0;
    if (!std::isfinite(b) || !std::isfinite(a)) {
      ok = (std::isnan(a) && std::isnan(b)) || a == b;
      err = ok ? 0 : INFINITY;
    } else {
      err = std::fabs(a - b);
      const double bound = tol.atol + tol.rtol * std::fabs(b);
      ok = err <= bound;
      s.worst = std::max(s.worst, bound > 0 ? err / bound : (err > 0 ? INFINITY : 0));
      s.max_rel = std::max(s.max_rel, err / std::max(std::fabs(b), tol.rtol > 0 ? tol.atol / tol.rtol : 1e-30));
    }
    s.max_abs = std::max(s.max_abs, err);
    if (!ok) {
      if (s.first_bad < 0) {
        s.first_bad = i;
        s.first_got = a;
        s.first_ref = b;
      }
      ++s.bad;
    }
  }
  return s;
}

namespace {

std::string size_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

// Inputs for a run in dtype dt: float inputs converted per input_dtype; rounded
// copies (back to float32 / float64) for the CPU reference.
Inputs convert_inputs(const ParityCase& c, const Inputs& base, DType dt, bool for_reference) {
  Inputs out;
  for (size_t i = 0; i < base.size(); ++i) {
    const Tensor& t = base[i];
    if (!t.defined() || !dtype_is_float(t.dtype())) {
      out.push_back(t.defined() ? t.clone() : t);
      continue;
    }
    const DType want = c.input_dtype ? c.input_dtype(i, dt) : dt;
    Tensor r = t.to(want, true);  // rounded to the tested dtype
    if (for_reference) r = r.to(dt == DType::Float64 ? DType::Float64 : DType::Float32, true);
    out.push_back(r);
  }
  return out;
}

int compare_outputs(const ParityCase& c, const Inputs& got, const Inputs& ref, DType dt, const std::string& what,
                    const std::vector<int64_t>& size, DType tol_dt) {
  int failures = 0;
  DS_CHECK(got.size() == ref.size(), c.name, ": ", got.size(), " outputs vs ", ref.size(), " in the reference");
  for (size_t o = 0; o < got.size(); ++o) {
    if (!got[o].defined() && !ref[o].defined()) continue;
    const std::string oname = o < c.outputs.size() ? c.outputs[o] : "out" + std::to_string(o);
    // The float64 side of the CPU self-check may lack 16-bit-only outputs.
    if (what == "cpu-self" && !ref[o].defined()) continue;
    if (got[o].defined() != ref[o].defined()) {
      std::printf("  %-26s %-9s %-18s output defined on one side only  FAIL\n", (c.name + "/" + oname).c_str(),
                  dtype_name(dt), size_str(size).c_str());
      ++failures;
      continue;
    }
    const DTypeTols& tt = c.tol.empty() ? DTypeTols{} : c.tol[std::min(o, c.tol.size() - 1)];
    const Tol tol = dtype_is_float(got[o].dtype()) ? tt.of(tol_dt) : Tol{0, 0};
    CompareStats s = compare(got[o], ref[o], tol);
    const bool ok = s.bad == 0;
    std::printf("  %-26s %-9s %-18s %-8s max_abs %.2e max_rel %.2e (tol %.0e + %.0e|ref|)  %s", (c.name + "/" + oname).c_str(),
                dtype_name(dt), size_str(size).c_str(), what.c_str(), s.max_abs, s.max_rel, tol.atol, tol.rtol,
                ok ? "ok\n" : "FAIL");
    if (!ok)
      std::printf(": %lld of %lld bad, first at %lld: got %.9g, want %.9g\n", (long long)s.bad, (long long)s.count,
                  (long long)s.first_bad, s.first_got, s.first_ref);
    failures += ok ? 0 : 1;
  }
  return failures;
}

}  // namespace

int run_parity(const ParityCase& c) {
  const bool gpu = gpu_available();
  int failures = 0;
  std::mt19937_64 rng(0x5eedULL ^ std::hash<std::string>()(c.name));
  // DETSEG3D_PARITY_QUICK=1 (used under compute-sanitizer): the first two sizes only.
  const char* quick = std::getenv("DETSEG3D_PARITY_QUICK");
  const size_t nsizes = (quick && quick[0] == '1') ? std::min<size_t>(2, c.sizes.size()) : c.sizes.size();
  for (size_t si = 0; si < nsizes; ++si) {
    const auto& size = c.sizes[si];
    const Inputs base = c.make(size, rng);
    if (!gpu) {
      // CPU self-check: float32 against float64 with the float32 tolerance.
      Inputs in32 = convert_inputs(c, base, DType::Float32, true);
      Inputs in64 = convert_inputs(c, base, DType::Float64, true);
      Inputs o32 = c.run(in32), o64 = c.run(in64);
      failures += compare_outputs(c, o32, o64, DType::Float32, "cpu-self", size, DType::Float32);
      continue;
    }
    for (DType dt : c.dtypes) {
      Inputs ref_in = convert_inputs(c, base, dt, true);
      Inputs ref = c.run(ref_in);
      Inputs dev_in = convert_inputs(c, base, dt, false);
      // int64 inputs are host-side parameters (sizes, group counts): they stay on the CPU.
      for (auto& t : dev_in)
        if (t.defined() && t.dtype() != DType::Int64) t = t.to(Device::cuda(0));
      Inputs got;
      cuda::set_poison_allocations(true);
      try {
        got = c.run(dev_in);
        cuda::synchronize(0);
      } catch (...) {
        cuda::set_poison_allocations(false);
        throw;
      }
      cuda::set_poison_allocations(false);
      failures += compare_outputs(c, got, ref, dt, "gpu", size, dt);
    }
  }
  return failures;
}

void run_parity_cases(const std::vector<ParityCase>& cases) {
  int failures = 0;
  for (const auto& c : cases) failures += run_parity(c);
  DS_EXPECT(failures == 0, failures, " parity comparison(s) failed (see the lines above)");
  if (!gpu_available()) DS_SKIP("CPU self-checks passed; GPU part skipped: ", no_gpu_reason());
}

}  // namespace ds::testing
