#include "nn/init.h"

#include <cmath>

#include "nn/nn_util.h"

namespace ds::nn {

uint64_t Rng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

double Rng::normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
  spare_ = r * std::sin(th);
  have_spare_ = true;
  return r * std::cos(th);
}

namespace {
template <class F>
void fill(Tensor& t, F&& gen) {
  dispatch_float(t.dtype(), "weight initialisation", [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = T(gen());
  });
}
}  // namespace

void init_uniform(Tensor& t, Rng& rng, double lo, double hi) { fill(t, [&] { return lo + (hi - lo) * rng.uniform(); }); }

void init_normal(Tensor& t, Rng& rng, double std) { fill(t, [&] { return std * rng.normal(); }); }

int64_t conv_taps(const Tensor& w) { return w.size(1) * w.size(2) * w.size(3); }

void init_kaiming_normal_fan_out(Tensor& w, Rng& rng) {
  init_normal(w, rng, std::sqrt(2.0 / double(w.size(0) * conv_taps(w))));
}

void init_kaiming_uniform(Tensor& w, Rng& rng, double a) {
  const double bound = std::sqrt(6.0 / ((1.0 + a * a) * double(w.size(4) * conv_taps(w))));
  init_uniform(w, rng, -bound, bound);
}

void init_conv_bias_default(Tensor& b, const Tensor& w, Rng& rng) {
  const double bound = 1.0 / std::sqrt(double(w.size(4) * conv_taps(w)));
  init_uniform(b, rng, -bound, bound);
}

}  // namespace ds::nn
