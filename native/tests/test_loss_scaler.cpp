// Dynamic loss scaling: the policy (2^16 start, halve on inf/NaN, double
// after 2000 clean steps), checkpoint state, the disabled (bfloat16) mode, the
// CPU unscale/check kernel, and GPU parity of that kernel.
#include <cmath>
#include <cstring>

#include "nn/loss_scaler.h"
#include "tests/harness.h"
#include "tests/parity.h"

using namespace ds;
using namespace ds::testing;

DS_TEST(loss_scaler_growth_and_backoff) {
  nn::LossScaler s;
  DS_EXPECT(s.scale() == 65536.0, "starts at 2^16");
  for (int i = 0; i < 1999; ++i) DS_EXPECT(s.update(false), "clean steps are applied");
  DS_EXPECT(s.scale() == 65536.0 && s.state().growth_tracker == 1999, "no growth before 2000 clean steps");
  s.update(false);
  DS_EXPECT(s.scale() == 131072.0 && s.state().growth_tracker == 0, "doubled after 2000 clean steps");
  for (int i = 0; i < 1500; ++i) s.update(false);
  DS_EXPECT(!s.update(true), "a step with inf/NaN gradients is skipped");
  DS_EXPECT(s.scale() == 65536.0 && s.state().growth_tracker == 0, "halved and the count restarts");
  for (int i = 0; i < 1999; ++i) s.update(false);
  DS_EXPECT(s.scale() == 65536.0, "the 1500 steps before the overflow do not count");
  s.update(false);
  DS_EXPECT(s.scale() == 131072.0, "doubled again");
  DS_EXPECT(s.scale_loss(0.25) == 32768.0, "scale_loss multiplies");
}

DS_TEST(loss_scaler_state_round_trip) {
  nn::LossScaler a;
  for (int i = 0; i < 10; ++i) a.update(true);  // 2^16 / 2^10 = 64
  for (int i = 0; i < 123; ++i) a.update(false);
  nn::LossScalerState st = a.state();
  DS_EXPECT(st.scale == 64.0 && st.growth_tracker == 123, "state ", st.scale, " ", st.growth_tracker);
  nn::LossScaler b;
  b.load_state(st);
  for (int i = 0; i < 1877; ++i) {
    a.update(false);
    b.update(false);
  }
  DS_EXPECT(a.scale() == 128.0 && b.scale() == 128.0, "restored scaler continues identically");
  bool threw = false;
  try {
    b.load_state({-1.0, 0});
  } catch (const Error&) {
    threw = true;
  }
  DS_EXPECT(threw, "a negative scale is rejected");
}

DS_TEST(loss_scaler_disabled_for_bf16) {
  nn::LossScalerOptions o;
  o.enabled = false;
  nn::LossScaler s(o);
  DS_EXPECT(s.scale() == 1.0, "no scaling");
  DS_EXPECT(!s.update(true) && s.scale() == 1.0, "inf still skips the step, scale stays 1");
  for (int i = 0; i < 5000; ++i) s.update(false);
  DS_EXPECT(s.scale() == 1.0, "never grows");
}

DS_TEST(loss_scaler_unscale_cpu) {
  nn::LossScaler s;
  // A gradient of 1e-8 flushes to zero in float16 (smallest subnormal ~6e-8),
  // but survives scaled by 2^16, and unscales exactly in float32.
  DS_EXPECT(half_to_float(float_to_half(1e-8f)) == 0.f, "float16 underflow without scaling");
  Tensor g16 = Tensor::full({5}, 1e-8 * 65536.0, DType::Float16);
  const float scaled = half_to_float(g16.data_u16()[0]);
  Tensor g32 = g16.to(DType::Float32);
  std::vector<Tensor> grads = {g32};
  DS_EXPECT(!s.unscale_and_check(grads), "finite");
  DS_EXPECT(g32.data<float>()[0] == scaled / 65536.0f && std::fabs(g32.data<float>()[0] - 1e-8f) < 1e-10f,
            "unscaled to ", g32.data<float>()[0]);
  // Detection of inf and NaN in any tensor and dtype; check() leaves values alone.
  Tensor a = Tensor::full({1000}, 2.0, DType::Float32), b = Tensor::full({77}, 4.0, DType::BFloat16);
  b.data_u16()[76] = float_to_bf16(NAN);
  std::vector<Tensor> two = {a, b};
  DS_EXPECT(s.check(two), "NaN in the bfloat16 gradient is found");
  DS_EXPECT(a.data<float>()[0] == 2.0f, "check does not scale");
  b.data_u16()[76] = float_to_bf16(1.0f);
  a.data<float>()[999] = INFINITY;
  DS_EXPECT(s.check(two), "inf in the float32 gradient is found");
  a.data<float>()[999] = 2.0f;
  DS_EXPECT(!s.unscale_and_check(two), "all finite");
  DS_EXPECT(a.data<float>()[5] == 2.0f / 65536.0f && bf16_to_float(b.data_u16()[3]) == 4.0f / 65536.0f, "unscaled");
}

DS_TEST(parity_loss_scaler_unscale) {
  ParityCase c;
  c.name = "unscale_check";
  // {sizes..., index of an element set to inf (-1: none)}
  c.sizes = {{1, 1000, 70001, -1}, {5, 16385, 3, 16384}};
  c.make = [](const std::vector<int64_t>& s, std::mt19937_64& r) {
    Inputs in;
    for (int k = 0; k < 3; ++k) in.push_back(random_tensor({s[size_t(k)]}, DType::Float32, r, -1000.0, 1000.0));
    if (s[3] >= 0) in[1].data<float>()[s[3]] = INFINITY;
    return in;
  };
  c.run = [](Inputs& in) {
    std::vector<Tensor> g;
    for (auto& t : in) g.push_back(t.clone());
    const bool found = nn::scale_and_check_nonfinite_(g, 1.0 / 1024.0);
    Inputs out = g;
    out.push_back(Tensor::full({1}, found ? 1.0 : 0.0, DType::Float64));
    return out;
  };
  c.outputs = {"g0", "g1", "g2", "found_inf"};
  // Scaling by a power of two is exact, except that float16 results below
  // 2^-14 are subnormal: the device rounds them to a multiple of 2^-24 while
  // the float32 reference keeps them, so a correctly rounded result is within
  // half that spacing (2^-25) of the reference. The gradients and the flag
  // are otherwise compared exactly.
  const Tol f16_subnormal{std::ldexp(1.0, -25), 0};
  c.tol = {DTypeTols{{0, 0}, {0, 0}, f16_subnormal, {0, 0}}, DTypeTols{{0, 0}, {0, 0}, f16_subnormal, {0, 0}},
           DTypeTols{{0, 0}, {0, 0}, f16_subnormal, {0, 0}}, DTypeTols{{0, 0}, {0, 0}, {0, 0}, {0, 0}}};
  run_parity_cases({c});
}
