// CUDA emulator: the tensor-core PTX the convolution kernels use, built on
// the warp collectives of sched.cpp: ldmatrix (.m8n8 .b16, x1/x2/x4, with or
// without .trans) and mma.sync.m16n8k16 with float16 or bfloat16 inputs and
// float32 accumulation, with the PTX ISA's fragment layouts.
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "emu_internal.h"

namespace detseg3d_emu {

void ldmatrix(unsigned* regs, int count, unsigned addr, bool trans) {
  if (count != 1 && count != 2 && count != 4) trap("ldmatrix: count must be 1, 2 or 4");
  const unsigned* all = static_cast<const unsigned*>(warp_exchange(&addr, sizeof addr));
  const int l = lane_id();
  for (int j = 0; j < count; ++j) {
    for (int r = 0; r < 8; ++r)
      if (all[8 * j + r] % 16) trap("ldmatrix: row address not 16-byte aligned");
    uint16_t lo, hi;
    if (!trans) {
      const unsigned char* row = shared_pointer(all[8 * j + l / 4], 16);
      std::memcpy(&lo, row + 4 * (l % 4), 2);
      std::memcpy(&hi, row + 4 * (l % 4) + 2, 2);
    } else {
      std::memcpy(&lo, shared_pointer(all[8 * j + 2 * (l % 4)], 16) + 2 * (l / 4), 2);
      std::memcpy(&hi, shared_pointer(all[8 * j + 2 * (l % 4) + 1], 16) + 2 * (l / 4), 2);
    }
    regs[j] = unsigned(lo) | unsigned(hi) << 16;
  }
}

namespace {
// 16-bit float -> float (exact); float16 through a table built once.
float b16_to_float(uint16_t v, bool bf16) {
  static const std::vector<float> half_table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = ds::half_to_float(uint16_t(i));
    return t;
  }();
  if (bf16) return ds::bf16_to_float(v);
  return half_table[v];
}
}  // namespace

void mma16816(float* d, const unsigned* a, unsigned b0, unsigned b1, bool bf16) {
  struct Dep {
    unsigned a[4], b[2];
  } mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
  const Dep* all = static_cast<const Dep*>(warp_exchange(&mine, sizeof mine));
  WarpScratch& w = warp_scratch();
  const long gen = warp_generation();
  // The first lane to resume computes the product for the whole warp.
  if (w.gen != gen) {
    // A 16x16 row-major, B 16x8 (k x n); PTX fragment layouts for m16n8k16:
    // lane = 4*group + t; a0..a3 = A[g][2t..], A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..];
    // b0, b1 = B[2t..][g], B[2t+8..][g]; d = D[g][2t..], D[g+8][2t..].
    float A[16][16], B[16][8];
    for (int L = 0; L < 32; ++L) {
      const int g = L >> 2, t = L & 3;
      for (int h = 0; h < 2; ++h) {
        auto half = [&](unsigned r) { return b16_to_float(uint16_t(r >> (16 * h)), bf16); };
        A[g][2 * t + h] = half(all[L].a[0]);
        A[g + 8][2 * t + h] = half(all[L].a[1]);
        A[g][2 * t + 8 + h] = half(all[L].a[2]);
        A[g + 8][2 * t + 8 + h] = half(all[L].a[3]);
        B[2 * t + h][g] = half(all[L].b[0]);
        B[2 * t + 8 + h][g] = half(all[L].b[1]);
      }
    }
    for (int L = 0; L < 32; ++L) {
      const int g = L >> 2, t = L & 3;
      for (int i = 0; i < 4; ++i) {
        const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
        float s = 0.f;  // products of 16-bit values are exact in float
        for (int k = 0; k < 16; ++k) s += A[row][k] * B[k][col];
        w.mma[L][i] = s;
      }
    }
    w.gen = gen;
  }
  const int l = lane_id();
  for (int i = 0; i < 4; ++i) d[i] += w.mma[l][i];
}

}  // namespace detseg3d_emu
