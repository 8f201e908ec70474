// Winograd fast path for float32 3x3x3, stride-1, dilation-1 convolutions
// with many channels: F(2,3)^3 tiles, or mixed F(2,3) x F(4,3)^2 tiles for
// large layers (see conv3d_winograd.cpp for the design, accuracy and speed).
// conv3d.cpp dispatches here; nothing else should.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace ds::winograd {

enum class Pass { Forward, GradInput, GradWeight };

// The forward problem: x [N, D1, D2, D3, Ci], w [Co, k1, k2, k3, Ci], output [N, O1, O2, O3, Co].
struct Problem {
  int64_t N = 0, D[3] = {0, 0, 0}, Ci = 0, Co = 0;
  int64_t K[3] = {0, 0, 0}, stride[3] = {0, 0, 0}, dilation[3] = {0, 0, 0}, pad[3] = {0, 0, 0};
  int64_t O[3] = {0, 0, 0};
};

// True when `pass` of this float32 problem should take the Winograd path:
// kernel 3x3x3, stride 1, dilation 1, padding <= 2, Ci >= 64, Co >= 64,
// simd_level() AVX2 or AVX-512, and (unless forced) large enough spatially to
// win. Environment DETSEG3D_WINOGRAD (read per call): "0" never, "1" whenever
// the shape is eligible (ignores the size threshold; tests use it), unset or
// anything else: automatic. The tile shape is chosen per pass by size;
// DETSEG3D_WINOGRAD_TILE "2" or "4" forces F(2,3)^3 or the mixed tiles.
// weights_cached: the caller holds a WeightCache (below), so the weight
// transform of a tile shape is paid once for several problems; the size
// threshold is then lower (small pyramid levels win too).
bool use(Pass pass, const Problem& pr, bool weights_cached = false);

// Transformed and packed weights kept across calls: an entry per (weight data
// pointer, channels, tile shape, forward / grad input). The caller guarantees
// that the weights behind a cached pointer do not change while the cache
// lives (conv3d.h's Conv3dWeightReuse scope). Using the cache gives results
// bit-identical to calls without it (the same transforms, packed the same way).
class WeightCache {
 public:
  WeightCache();
  ~WeightCache();
  WeightCache(const WeightCache&) = delete;
  WeightCache& operator=(const WeightCache&) = delete;
  struct Entry;  // conv3d_winograd.cpp
  std::vector<std::unique_ptr<Entry>> entries;
};

// y (=, or += with acc) conv(x, w) + bias (bias may be null). Requires use(Forward, pr)'s shape conditions.
// cache (optional) supplies / keeps the transformed weights.
void forward(const Problem& pr, const float* x, const float* w, const float* bias, float* y, bool acc,
             WeightCache* cache = nullptr);
// dx (=, or += with acc) the input gradient of the forward problem for output gradient dy.
void grad_input(const Problem& pr, const float* w, const float* dy, float* dx, bool acc,
                WeightCache* cache = nullptr);
// dw (=, or += with acc) the weight gradient of the forward problem for input x and output gradient dy.
void grad_weight(const Problem& pr, const float* x, const float* dy, float* dw, bool acc);

}  // namespace ds::winograd
