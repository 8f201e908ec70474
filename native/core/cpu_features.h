// Run-time choice of SIMD code paths. Kernels compiled for AVX2+FMA and for
// AVX-512 live in files named *_avx2.cpp / *_avx512.cpp (built with those
// instruction sets); everything else is baseline x86-64 (or the host's
// baseline elsewhere), so the library loads on any CPU and picks the widest
// path the CPU and OS support.
#pragma once
#include <string>

namespace ds {

enum class SimdLevel { Scalar = 0, AVX2 = 1, AVX512 = 2 };

// What this CPU supports.
SimdLevel cpu_simd_support();
// What kernels use now: the supported level, or lower when overridden by
// DETSEG3D_SIMD=scalar|avx2|avx512 or set_simd_level() (tests use this to
// exercise every path).
SimdLevel simd_level();
void set_simd_level(SimdLevel level);  // throws ds::Error when the CPU lacks it
const char* simd_name(SimdLevel l);
SimdLevel simd_from_name(const std::string& name);

}  // namespace ds
