// CUDA emulator: the 16-bit float types (__half, __nv_bfloat16) as 16 raw bits
// with the core's round-to-nearest-even conversions (what the hardware does).
#pragma once
#include <cstdint>

#include "core/dtype.h"

// Global namespace on purpose: in the emulator namespace, argument-dependent
// lookup would find its PTX helpers beside the kernels' own.
template <uint16_t (*Encode)(float), float (*Decode)(uint16_t)>
struct DetSeg3dEmuFloat16 {
  uint16_t x = 0;
  DetSeg3dEmuFloat16() = default;
  DetSeg3dEmuFloat16(float f) : x(Encode(f)) {}
  operator float() const { return Decode(x); }
};
