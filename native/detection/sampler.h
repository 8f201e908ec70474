// Hard-negative sampler with MONAI's HardNegativeSampler semantics, and the
// small seeded RNG it uses.
//
// Per image, with labels from the matcher (>= 0 foreground, -1 background,
// < -1 ignored):
//   num_pos = min(#foreground, int(batch_size_per_image * positive_fraction))
//   num_neg = min(#background, max(min_neg, int(max(1, num_pos) * |1 - 1/positive_fraction|)))
// Positives are drawn uniformly at random; negatives are drawn uniformly at
// random from the min(#background, num_neg * pool_size) background anchors
// with the highest score (the max classification logit over classes; ties:
// lower index first).
#pragma once
#include <cstdint>
#include <vector>

namespace ds::det {

struct SamplerOptions {
  int64_t batch_size_per_image = 64;
  double positive_fraction = 0.3;
  int64_t min_neg = 16;
  int64_t pool_size = 20;
};

void check_sampler_options(const SamplerOptions& o);

// xoshiro256** seeded through splitmix64: fast, reproducible across platforms.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform integer in [0, n) (n > 0), without modulo bias.
  uint64_t below(uint64_t n);

 private:
  uint64_t s_[4];
};

struct Sample {
  std::vector<int32_t> pos;  // ascending anchor indices
  std::vector<int32_t> neg;  // ascending anchor indices
};

// matched: n labels from the matcher; score: n hardness scores.
Sample sample_hard_negatives(const int32_t* matched, const float* score, int64_t n, const SamplerOptions& o,
                             Rng& rng);

// The counts used above (exposed for tests and documentation).
int64_t sampler_num_pos(int64_t num_fg, const SamplerOptions& o);
int64_t sampler_num_neg(int64_t num_bg, int64_t num_pos, const SamplerOptions& o);

}  // namespace ds::det
