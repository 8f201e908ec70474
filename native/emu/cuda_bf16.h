// CUDA emulator: __nv_bfloat16 and the conversions the kernels use.
#pragma once
#include "emu_float16.h"

using __nv_bfloat16 = DetSeg3dEmuFloat16<ds::float_to_bf16, ds::bf16_to_float>;
static_assert(sizeof(__nv_bfloat16) == 2, "__nv_bfloat16 must be 16 bits");
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
