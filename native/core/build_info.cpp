#include "core/build_info.h"

#ifndef DETSEG3D_VERSION
#define DETSEG3D_VERSION "0.0.0"
#endif
#ifndef DETSEG3D_BUILD_TYPE
#define DETSEG3D_BUILD_TYPE "unknown"
#endif
#ifndef DETSEG3D_CUDA_ARCHS
#define DETSEG3D_CUDA_ARCHS ""
#endif

namespace ds {

const char* version() { return DETSEG3D_VERSION; }

std::string build_flags() {
  std::string s = "build=" DETSEG3D_BUILD_TYPE;
#if defined(__clang__)
  s += " compiler=clang-" __clang_version__;
#elif defined(__GNUC__)
  s += " compiler=gcc-" __VERSION__;
#endif
#ifdef DETSEG3D_WITH_CUDA
  s += " cuda=on archs=" DETSEG3D_CUDA_ARCHS;
#else
  s += " cuda=off";
#endif
  s += " simd-paths=scalar";
#ifdef DETSEG3D_HAVE_X86_SIMD
  s += ",avx2,avx512";
#endif
  return s;
}

}  // namespace ds
