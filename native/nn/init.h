// Reproducible weight initialisation. The generator is a 64-bit
// SplitMix64 stream and normals come from Box-Muller, both defined here, so
// a seed gives the same weights on every platform and standard library.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace ds::nn {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();   // standard normal

 private:
  uint64_t state_;
  bool have_spare_ = false;
  double spare_ = 0;
};

// Fills t (float32/float64) with U(lo, hi).
void init_uniform(Tensor& t, Rng& rng, double lo, double hi);
// Fills t with N(0, std^2).
void init_normal(Tensor& t, Rng& rng, double std);
// Receptive field size of a conv weight [Cout, k1, k2, k3, Cin]: k1*k2*k3.
int64_t conv_taps(const Tensor& w);
// torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (Cout * taps)).
void init_kaiming_normal_fan_out(Tensor& w, Rng& rng);
// torch.nn.init.kaiming_uniform_(a): bound = sqrt(6 / ((1 + a^2) * Cin * taps)).
void init_kaiming_uniform(Tensor& w, Rng& rng, double a);
// PyTorch's default conv bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = Cin * taps of the weight.
void init_conv_bias_default(Tensor& b, const Tensor& w, Rng& rng);

}  // namespace ds::nn
