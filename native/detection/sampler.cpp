#include "detection/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace ds::det {

void check_sampler_options(const SamplerOptions& o) {
  DS_CHECK(o.batch_size_per_image >= 1, "sampler: batchSizePerImage must be >= 1, got ", o.batch_size_per_image);
  DS_CHECK(std::isfinite(o.positive_fraction) && o.positive_fraction > 0 && o.positive_fraction <= 1,
           "sampler: positiveFraction must be in (0, 1], got ", o.positive_fraction);
  DS_CHECK(o.min_neg >= 0, "sampler: minNeg must be >= 0, got ", o.min_neg);
  DS_CHECK(o.pool_size >= 1, "sampler: poolSize must be >= 1, got ", o.pool_size);
}

static uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Rng::next() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);  // reject the biased tail
  uint64_t r;
  do r = next();
  while (r >= limit);
  return r % n;
}

int64_t sampler_num_pos(int64_t num_fg, const SamplerOptions& o) {
  auto cap = int64_t(double(o.batch_size_per_image) * o.positive_fraction);
  return std::min(num_fg, cap);
}

int64_t sampler_num_neg(int64_t num_bg, int64_t num_pos, const SamplerOptions& o) {
  double ratio = std::fabs(1.0 - 1.0 / o.positive_fraction);
  auto n = int64_t(double(std::max<int64_t>(1, num_pos)) * ratio);
  return std::min(num_bg, std::max(n, o.min_neg));
}

// Moves k uniformly chosen elements of v to its front (partial Fisher-Yates).
static void choose_front(std::vector<int32_t>& v, int64_t k, Rng& rng) {
  for (int64_t i = 0; i < k; ++i) {
    auto j = int64_t(i + int64_t(rng.below(uint64_t(int64_t(v.size()) - i))));
    std::swap(v[size_t(i)], v[size_t(j)]);
  }
}

Sample sample_hard_negatives(const int32_t* matched, const float* score, int64_t n, const SamplerOptions& o,
                             Rng& rng) {
  check_sampler_options(o);
  // Pass 1: counts (cheap), so that the pool size is known before pass 2.
  int64_t n_fg = 0, n_bg = 0;
  for (int64_t i = 0; i < n; ++i) {
    n_fg += matched[i] >= 0;
    n_bg += matched[i] == -1;
  }
  Sample s;
  const int64_t num_pos = sampler_num_pos(n_fg, o);
  const int64_t num_neg = sampler_num_neg(n_bg, num_pos, o);
  const int64_t pool = std::min<int64_t>(n_bg, num_neg * o.pool_size);
  // Hardest `pool` negatives in a deterministic order: score desc, index asc
  // (NaN ranks like -inf). A running cutoff rejects most anchors with one
  // comparison; since indices only grow, a tie with the cutoff loses too.
  auto key = [&](int32_t i) {
    float v = score[i];
    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
  };
  auto harder = [&](int32_t a, int32_t b) {
    float sa = key(a), sb = key(b);
    return sa > sb || (sa == sb && a < b);
  };
  std::vector<int32_t> fg, top;
  fg.reserve(size_t(n_fg));
  if (pool > 0) top.reserve(size_t(2 * pool + 1));
  bool have_cut = false;
  float cut = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (matched[i] >= 0) {
      fg.push_back(int32_t(i));
      continue;
    }
    if (matched[i] != -1 || pool == 0) continue;
    if (have_cut && !(key(int32_t(i)) > cut)) continue;
    top.push_back(int32_t(i));
    if (int64_t(top.size()) >= 2 * pool) {
      std::nth_element(top.begin(), top.begin() + (pool - 1), top.end(), harder);
      top.resize(size_t(pool));
      cut = key(top[size_t(pool - 1)]);
      have_cut = true;
    }
  }
  choose_front(fg, num_pos, rng);
  s.pos.assign(fg.begin(), fg.begin() + num_pos);
  if (int64_t(top.size()) > pool) {
    std::nth_element(top.begin(), top.begin() + (pool - 1), top.end(), harder);
    top.resize(size_t(pool));
  }
  std::vector<int32_t>& bg = top;
  std::sort(bg.begin(), bg.end(), harder);
  choose_front(bg, num_neg, rng);
  s.neg.assign(bg.begin(), bg.begin() + num_neg);
  std::sort(s.pos.begin(), s.pos.end());
  std::sort(s.neg.begin(), s.neg.end());
  return s;
}

}  // namespace ds::det
