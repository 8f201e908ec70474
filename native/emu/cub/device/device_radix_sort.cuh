// CUDA emulator: cub::DeviceRadixSort::SortPairs / SortPairsDescending with
// CUB's semantics (stable; only key bits [begin_bit, end_bit) compared;
// floating-point keys ordered by their radix-twiddled bits, so -0.0 sorts
// below +0.0 and NaNs with the sign bit clear above +infinity), run on the CPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cuda_runtime.h"

namespace cub {
namespace emu_detail {
template <class K>
uint64_t radix_bits(K k) {
  static_assert(sizeof(K) <= 8, "key too wide");
  if constexpr (std::is_floating_point<K>::value) {
    using U = std::conditional_t<sizeof(K) == 4, uint32_t, uint64_t>;
    U u;
    std::memcpy(&u, &k, sizeof u);
    const U sign = U(1) << (8 * sizeof(U) - 1);
    u = (u & sign) ? U(~u) : U(u | sign);
    return uint64_t(u);
  } else if constexpr (std::is_signed<K>::value) {
    using U = std::make_unsigned_t<K>;
    return uint64_t(U(k) ^ (U(1) << (8 * sizeof(U) - 1)));
  } else {
    return uint64_t(k);
  }
}
template <class K, class V>
cudaError_t sort_pairs(void* temp, size_t& temp_bytes, const K* kin, K* kout, const V* vin, V* vout, int n,
                       int begin_bit, int end_bit, bool descending) {
  if (!temp) {
    temp_bytes = 256;  // the caller allocates some scratch, as with CUB
    return cudaSuccess;
  }
  if (n <= 0) return cudaSuccess;
  const uint64_t mask = (end_bit - begin_bit >= 64 ? ~uint64_t(0) : ((uint64_t(1) << (end_bit - begin_bit)) - 1))
                        << begin_bit;
  std::vector<uint64_t> key(static_cast<size_t>(n), 0);
  for (int i = 0; i < n; ++i) key[size_t(i)] = radix_bits(kin[i]) & mask;
  std::vector<int> ord(static_cast<size_t>(n));
  std::iota(ord.begin(), ord.end(), 0);
  std::stable_sort(ord.begin(), ord.end(), [&](int a, int b) {
    return descending ? key[size_t(a)] > key[size_t(b)] : key[size_t(a)] < key[size_t(b)];
  });
  std::vector<K> ks(static_cast<size_t>(n));
  std::vector<V> vs(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    ks[size_t(i)] = kin[ord[size_t(i)]];
    vs[size_t(i)] = vin[ord[size_t(i)]];
  }
  std::copy(ks.begin(), ks.end(), kout);
  std::copy(vs.begin(), vs.end(), vout);
  return cudaSuccess;
}
}  // namespace emu_detail

struct DeviceRadixSort {
  template <class K, class V>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* kin, K* kout, const V* vin, V* vout, int n,
                               int begin_bit = 0, int end_bit = int(sizeof(K) * 8), cudaStream_t = nullptr) {
    return emu_detail::sort_pairs(temp, temp_bytes, kin, kout, vin, vout, n, begin_bit, end_bit, false);
  }
  template <class K, class V>
  static cudaError_t SortPairsDescending(void* temp, size_t& temp_bytes, const K* kin, K* kout, const V* vin,
                                         V* vout, int n, int begin_bit = 0, int end_bit = int(sizeof(K) * 8),
                                         cudaStream_t = nullptr) {
    return emu_detail::sort_pairs(temp, temp_bytes, kin, kout, vin, vout, n, begin_bit, end_bit, true);
  }
};
}  // namespace cub
