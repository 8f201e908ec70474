// CUDA emulator: __half and the conversions the kernels use.
#pragma once
#include "emu_float16.h"

using __half = DetSeg3dEmuFloat16<ds::float_to_half, ds::half_to_float>;
static_assert(sizeof(__half) == 2, "__half must be 16 bits");
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
