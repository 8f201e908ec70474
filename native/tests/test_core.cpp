// Core self-checks: float16/bfloat16 conversion round trips, tensor
// conversions, the thread pool's coverage of ranges and its error propagation.
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "tests/harness.h"

using namespace ds;

DS_TEST(half_round_trip_all_bit_patterns) {
  // Every finite float16 converts to float32 and back to the same bits.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaN payloads may be canonicalised
    float f = half_to_float(uint16_t(h));
    DS_EXPECT(float_to_half(f) == h, "bits ", h);
  }
}

DS_TEST(bf16_round_trip_and_rounding) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    if ((b & 0x7f80) == 0x7f80 && (b & 0x7f)) continue;
    DS_EXPECT(float_to_bf16(bf16_to_float(uint16_t(b))) == b, "bits ", b);
  }
  // Halfway between 1.0 (0x3F80) and the next bfloat16: ties to even.
  DS_EXPECT(float_to_bf16(1.0f + 1.0f / 256.0f) == 0x3F80, "tie to even");
}

DS_TEST(tensor_conversions) {
  Tensor t = Tensor::empty({2, 3}, DType::Float32);
  for (int i = 0; i < 6; ++i) t.data<float>()[i] = float(i) - 2.5f;
  Tensor d = t.to(DType::Float64);
  for (int i = 0; i < 6; ++i) DS_EXPECT(d.data<double>()[i] == double(i) - 2.5, "value ", i);
  Tensor h = t.to(DType::Float16).to(DType::Float32);
  for (int i = 0; i < 6; ++i) DS_EXPECT(h.data<float>()[i] == t.data<float>()[i], "half exact for small halves");
  bool threw = false;
  try {
    t.reshape({3, 2, 1});
  } catch (const Error&) {
    threw = true;
  }
  DS_EXPECT(!threw, "reshape with equal count works");
  threw = false;
  try {
    t.reshape({5});
  } catch (const Error&) {
    threw = true;
  }
  DS_EXPECT(threw, "reshape with a different count throws");
}

DS_TEST(parallel_for_covers_range_once) {
  for (int64_t n : {0, 1, 7, 1000, 100003}) {
    std::vector<std::atomic<int>> hits(size_t(n > 0 ? n : 1));
    for (auto& h : hits) h = 0;
    parallel_for(0, n, 3, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (int64_t i = 0; i < n; ++i) DS_EXPECT(hits[size_t(i)] == 1, "index ", i, " of ", n);
  }
}

DS_TEST(parallel_for_propagates_errors) {
  bool caught = false;
  try {
    parallel_for(0, 100, 1, [&](int64_t b, int64_t) {
      if (b <= 50) DS_FAIL("boom at ", b);
    });
  } catch (const Error& e) {
    caught = std::strstr(e.what(), "boom") != nullptr;
  }
  DS_EXPECT(caught, "the worker's error reaches the caller");
  // The pool still works afterwards.
  std::atomic<int64_t> sum{0};
  parallel_for(0, 1000, 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  DS_EXPECT(sum == 499500, "sum ", sum.load());
}
