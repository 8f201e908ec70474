// CUDA emulator: __half as 16 raw bits with the conversions the kernels use
// (round to nearest even, as the hardware does).
#pragma once
#include <cstdint>

#include "core/dtype.h"

struct __half {
  uint16_t x = 0;
  __half() = default;
  __half(float f) : x(ds::float_to_half(f)) {}
  operator float() const { return ds::half_to_float(x); }
};
static_assert(sizeof(__half) == 2, "__half must be 16 bits");
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __half __ushort_as_half(unsigned short u) {
  __half h;
  h.x = u;
  return h;
}
inline unsigned short __half_as_ushort(__half h) { return h.x; }
