// Shared setup of the conv3d path tests (test_conv3d_winograd.cpp,
// test_conv3d_reuse.cpp): a scoped environment variable (the paths read their
// DETSEG3D_* switches per call) and seeded uniform float32 tensors.
#pragma once
#include <cstdlib>
#include <random>
#include <string>

#include "core/tensor.h"

namespace ds_test {

// Sets environment variable `name` to v (unsets it when v is null) for the scope; restores it after.
struct ScopedEnv {
  std::string name, old;
  bool had;
  ScopedEnv(const char* name_, const char* v) : name(name_) {
    const char* o = std::getenv(name.c_str());
    had = o != nullptr;
    if (had) old = o;
    if (v)
      setenv(name.c_str(), v, 1);
    else
      unsetenv(name.c_str());
  }
  ~ScopedEnv() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
};

// A float32 tensor of shape s, uniform in [-1, 1) from std::mt19937(seed).
inline ds::Tensor random_f32(ds::Shape s, unsigned seed) {
  ds::Tensor t = ds::Tensor::empty(s, ds::DType::Float32);
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(g);
  return t;
}

}  // namespace ds_test
