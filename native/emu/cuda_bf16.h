// CUDA emulator: __nv_bfloat16 as 16 raw bits with the conversions the
// kernels use (round to nearest even, as the hardware does).
#pragma once
#include <cstdint>

#include "core/dtype.h"

struct __nv_bfloat16 {
  uint16_t x = 0;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : x(ds::float_to_bf16(f)) {}
  operator float() const { return ds::bf16_to_float(x); }
};
static_assert(sizeof(__nv_bfloat16) == 2, "__nv_bfloat16 must be 16 bits");
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  __nv_bfloat16 h;
  h.x = u;
  return h;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
