#include "core/cpu_features.h"

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace ds {
namespace {

SimdLevel detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the wider registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return SimdLevel::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::AVX2;
#endif
  return SimdLevel::Scalar;
}

SimdLevel initial() {
  SimdLevel s = detect();
  if (const char* e = std::getenv("DETSEG3D_SIMD")) {
    try {
      SimdLevel want = simd_from_name(e);
      if (int(want) < int(s)) s = want;
    } catch (const Error&) {
      // An unknown value is ignored: the supported level is used.
    }
  }
  return s;
}

std::atomic<int>& current() {
  static std::atomic<int> c{int(initial())};
  return c;
}

}  // namespace

SimdLevel cpu_simd_support() {
  static SimdLevel s = detect();
  return s;
}

SimdLevel simd_level() { return SimdLevel(current().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) {
  DS_CHECK(int(level) <= int(cpu_simd_support()), "this CPU does not support ", simd_name(level),
           " (it supports up to ", simd_name(cpu_simd_support()), ")");
  current().store(int(level));
}

const char* simd_name(SimdLevel l) {
  switch (l) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::AVX2: return "avx2";
    case SimdLevel::AVX512: return "avx512";
  }
  return "unknown";
}

SimdLevel simd_from_name(const std::string& n) {
  if (n == "scalar") return SimdLevel::Scalar;
  if (n == "avx2") return SimdLevel::AVX2;
  if (n == "avx512") return SimdLevel::AVX512;
  DS_FAIL("unknown SIMD level '", n, "': use scalar, avx2 or avx512");
}

}  // namespace ds
